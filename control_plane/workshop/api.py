"""The workshop's HTTP API: donations, machines and their journey, diagnostics, erasures, impact.

Everything sits under ``/api/v1/workshop``. A refused request answers problem+json with the
field to fix, a stable ``code`` and the reason in English (``detail``) and Italian
(``detail_it``); nothing is stored half-way.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from sqlalchemy import func, select

from ..api.deps import SessionDep, SettingsDep, require_roles
from ..models import User
from . import access, deployment, records, reports, service
from .config import WorkshopConfig
from .errors import WorkshopError
from .impact import impact_csv
from .models import Donation
from .schemas import (
    DiagnosticsResult,
    DonationCreate,
    DonationPage,
    DonationPublic,
    EnrollmentPublic,
    ErasureCreate,
    ErasurePublic,
    FindingPublic,
    ImpactPublic,
    MachineDetail,
    MachinePage,
    MachineSummary,
    TransitionCreate,
    TransitionPublic,
    TransitionResult,
    donation_spec,
)

router = APIRouter(prefix="/workshop", tags=["workshop"])

Reader = Annotated[User, Depends(require_roles(*access.READERS))]
Staff = Annotated[User, Depends(require_roles(*access.STAFF))]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, description="items to skip")]


def get_config(request: Request) -> WorkshopConfig:
    """The workshop's configuration, set by the feature's install."""
    config: WorkshopConfig = request.app.state.workshop_config
    return config


ConfigDep = Annotated[WorkshopConfig, Depends(get_config)]


def pdf_response(content: bytes, filename: str) -> Response:
    """A PDF shown in the browser, saved under ``filename``."""
    return Response(
        content,
        media_type="application/pdf",
        headers={"content-disposition": f'inline; filename="{filename}"'},
    )


# -- donations -------------------------------------------------------------------------------


@router.post("/donations", status_code=status.HTTP_201_CREATED, response_model=DonationPublic)
def receive(
    body: DonationCreate, session: SessionDep, config: ConfigDep, user: Staff
) -> DonationPublic:
    """Receive a donation: every item gets an asset tag and starts as "received"."""
    spec = donation_spec(body, service.workshop_today(config))
    donation = service.receive_donation(session, config, spec=spec, user=user, notes=body.notes)
    return DonationPublic.of(donation)


@router.get("/donations", response_model=DonationPage)
def list_donations(
    session: SessionDep, _user: Reader, limit: Limit = 50, offset: Offset = 0
) -> DonationPage:
    """Donations, newest first."""
    total = int(session.execute(select(func.count()).select_from(Donation)).scalar_one())
    rows = session.execute(
        select(Donation).order_by(Donation.id.desc()).limit(limit).offset(offset)
    ).scalars()
    return DonationPage(
        items=[DonationPublic.of(d) for d in rows], total=total, limit=limit, offset=offset
    )


@router.get("/donations/{donation_id}", response_model=DonationPublic)
def get_donation(donation_id: int, session: SessionDep, _user: Reader) -> DonationPublic:
    """One donation and its machines."""
    return DonationPublic.of(service.get_donation(session, donation_id))


@router.get("/donations/{donation_id}/labels.pdf", response_class=Response)
def donation_labels(
    donation_id: int, session: SessionDep, settings: SettingsDep, config: ConfigDep, _user: Reader
) -> Response:
    """Labels for every machine of a donation, each with a QR code to its page."""
    donation = service.get_donation(session, donation_id)
    pdf = reports.labels_for(donation.machines, settings, config)
    return pdf_response(pdf, f"labels-{donation.reference}.pdf")


@router.get("/donations/{donation_id}/erasure-summary.pdf", response_class=Response)
def donation_erasure_summary(
    donation_id: int, session: SessionDep, config: ConfigDep, _user: Staff
) -> Response:
    """The erasure summary of a donation, for the donor or an auditor."""
    donation = service.get_donation(session, donation_id)
    pdf = records.erasure_summary_pdf(session, donation, config)
    return pdf_response(pdf, f"erasure-summary-{donation.reference}.pdf")


# -- machines --------------------------------------------------------------------------------


@router.get("/board", response_model=dict[str, int])
def board(session: SessionDep, _user: Reader) -> dict[str, int]:
    """How many machines are in each state."""
    return service.board_counts(session)


@router.get("/machines", response_model=MachinePage)
def list_machines(
    session: SessionDep,
    _user: Reader,
    q: Annotated[str | None, Query(max_length=100, description="part of a tag or serial")] = None,
    state: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> MachinePage:
    """Machines, searched by tag or serial number and filtered by state."""
    rows, total = service.find_machines(session, q=q, state=state, limit=limit, offset=offset)
    return MachinePage(
        items=[MachineSummary.of(m) for m in rows], total=total, limit=limit, offset=offset
    )


@router.get("/machines/{tag}", response_model=MachineDetail)
def get_machine(tag: str, session: SessionDep, user: Reader) -> MachineDetail:
    """One machine: its journey, diagnostics, erasures and where it may go next."""
    return MachineDetail.build(service.get_machine(session, tag), user)


@router.get("/machines/{tag}/label.pdf", response_class=Response)
def machine_label(
    tag: str, session: SessionDep, settings: SettingsDep, config: ConfigDep, _user: Reader
) -> Response:
    """The label of one machine (a reprint)."""
    machine = service.get_machine(session, tag)
    return pdf_response(
        reports.labels_for([machine], settings, config), f"label-{machine.asset_tag}.pdf"
    )


@router.post("/machines/{tag}/transitions", response_model=TransitionResult)
def move_machine(
    tag: str,
    body: TransitionCreate,
    session: SessionDep,
    settings: SettingsDep,
    config: ConfigDep,
    user: Reader,
) -> TransitionResult:
    """Move a machine to its next state; refused with the reason when the rules say no."""
    machine = service.get_machine(session, tag)
    change = service.change_state(
        session,
        settings,
        config,
        machine=machine,
        to=body.to,
        user=user,
        notes=body.notes,
        beneficiary_id=body.beneficiary_id,
        buyer=body.buyer,
        recipient=body.recipient,
        recycler=body.recycler,
        recycling_certificate_ref=body.recycling_certificate_ref,
    )
    session.refresh(machine)
    return TransitionResult(
        machine=MachineDetail.build(machine, user),
        transition=TransitionPublic.of(change.record),
        enrollment=None if change.enrollment is None else EnrollmentPublic.of(change.enrollment),
        linked_device_id=change.linked_device,
    )


@router.post("/machines/{tag}/enrollment-token", response_model=EnrollmentPublic)
def reissue_enrollment(
    tag: str, session: SessionDep, settings: SettingsDep, config: ConfigDep, user: Staff
) -> EnrollmentPublic:
    """A new enrollment token for a deployed PC that has not enrolled yet (the old one stops)."""
    machine = service.get_machine(session, tag)
    enrollment = deployment.reissue_enrollment(
        session, settings, config, machine=machine, user=user
    )
    return EnrollmentPublic.of(enrollment)


@router.post("/machines/{tag}/diagnostics", response_model=DiagnosticsResult)
def upload_diagnostics(
    tag: str,
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    user: Staff,
    report: Annotated[dict[str, Any], Body(description="the difronte-edge diagnose report")],
    replace_serial: bool = False,
) -> DiagnosticsResult:
    """Store the edge's diagnostics report: inventory, telecare findings, disks to certify.

    This is what ``difronte-edge diagnose --upload URL --token-file F`` posts.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > config.max_report_bytes:
        raise WorkshopError(
            413,
            "report",
            f"the report is larger than {config.max_report_bytes} bytes",
            f"il rapporto supera i {config.max_report_bytes} byte",
        )
    machine = service.get_machine(session, tag)
    assessment = records.record_diagnostics(
        session, machine=machine, report=report, user=user, replace_serial=replace_serial
    )
    return DiagnosticsResult(
        asset_tag=machine.asset_tag,
        serial_number=machine.serial_number,
        suitable_for_telecare=assessment.suitable_for_telecare,
        blockers=[FindingPublic(**records.finding_json(f)) for f in assessment.blockers],
        warnings=[FindingPublic(**records.finding_json(f)) for f in assessment.warnings],
        disks_needing_certificate=service.uncertified_disks(machine),
    )


@router.post(
    "/machines/{tag}/erasures", status_code=status.HTTP_201_CREATED, response_model=ErasurePublic
)
def add_erasure(tag: str, body: ErasureCreate, session: SessionDep, user: Reader) -> ErasurePublic:
    """Record how one disk of the machine was erased and verified."""
    machine = service.get_machine(session, tag)
    row = records.record_erasure(session, machine=machine, user=user, **body.model_dump())
    return ErasurePublic.of(row)


@router.get("/machines/{tag}/certificate.pdf", response_class=Response)
def erasure_certificate(tag: str, session: SessionDep, config: ConfigDep, _user: Staff) -> Response:
    """The machine's erasure certificate, every disk on it, tied to the machine's serial."""
    machine = service.get_machine(session, tag)
    pdf = records.certificate_pdf(machine, config)
    return pdf_response(pdf, f"erasure-certificate-{machine.asset_tag}.pdf")


# -- impact ----------------------------------------------------------------------------------


def _period(
    start: dt.date | None, end: dt.date | None, config: WorkshopConfig
) -> tuple[dt.date, dt.date]:
    today = service.workshop_today(config)
    end = end or today
    start = start or end.replace(month=1, day=1)
    reports.check_period(start, end)
    return start, end


@router.get("/impact", response_model=ImpactPublic)
def impact(
    session: SessionDep,
    config: ConfigDep,
    _user: Staff,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> ImpactPublic:
    """The impact figures of a period (default: this year so far)."""
    start, end = _period(start, end, config)
    return ImpactPublic.of(reports.impact_for(session, config, start=start, end=end))


@router.get("/impact.csv", response_class=Response)
def impact_as_csv(
    session: SessionDep,
    config: ConfigDep,
    _user: Staff,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> Response:
    """The impact figures as CSV."""
    start, end = _period(start, end, config)
    figures = reports.impact_for(session, config, start=start, end=end)
    return Response(
        impact_csv(figures),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="impact-{start}-{end}.csv"'},
    )


@router.get("/impact.pdf", response_class=Response)
def impact_as_pdf(
    session: SessionDep,
    config: ConfigDep,
    _user: Staff,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> Response:
    """The impact report as a PDF with a chart."""
    start, end = _period(start, end, config)
    figures = reports.impact_for(session, config, start=start, end=end)
    return pdf_response(reports.impact_pdf_for(figures, config), f"impact-{start}-{end}.pdf")
