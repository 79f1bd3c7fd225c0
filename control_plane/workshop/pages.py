"""The workshop's console pages: the board, machines and their journey, donations, impact.

Built for the bench: one obvious action per screen, big buttons, usable on a phone. A
trainee sees the board and the machines and records the bench steps; leads and technicians
also receive donations, decide where machines go, and read the impact report. Every
refusal is shown next to the field it is about, in the reader's language.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import __version__
from ..api.deps import SessionDep, SettingsDep
from ..models import Beneficiary, Role
from ..web.i18n import N_
from ..web.nav import register_nav
from ..web.pages import Page, PageError, console_router, page_for_roles
from . import access, deployment, records, reports, service
from .api import ConfigDep
from .certificates import ErasureMethod, method_names
from .config import WorkshopConfig
from .errors import WorkshopError
from .impact import ImpactFigures
from .lifecycle import MachineState, allowed_targets
from .models import Machine
from .workorders import SKILLS, STATUS_LABELS, visible_work_orders

router = console_router(prefix="/workshop")
# The stylesheet needs no session: a plain router, outside the console's CSRF machinery.
assets_router = APIRouter(prefix="/workshop/assets", include_in_schema=False)

register_nav(
    "/workshop",
    N_("Workshop"),
    [Role.WORKSHOP_LEAD, Role.TECHNICIAN, Role.TRAINEE],
    description_msgid=N_("Donated computers from intake to their new home, and the work on them."),
    order=60,
)

ReaderPage = Annotated[Page, Depends(page_for_roles(*access.READERS))]
StaffPage = Annotated[Page, Depends(page_for_roles(*access.STAFF))]

#: State names on the board and in histories: state → (Italian, English).
STATE_LABELS: dict[str, tuple[str, str]] = {
    "received": ("Ricevuta", "Received"),
    "triaged": ("Valutata", "Triaged"),
    "wiped": ("Dati cancellati", "Wiped"),
    "tested": ("Collaudata", "Tested"),
    "imaged": ("Sistema installato", "Imaged"),
    "quality_checked": ("Controllo qualità superato", "Quality checked"),
    "ready": ("Pronta", "Ready"),
    "deployed": ("Consegnata a casa", "Deployed"),
    "sold": ("Venduta", "Sold"),
    "donated_on": ("Donata a un ente", "Donated on"),
    "recycled": ("Riciclata", "Recycled"),
}

# What the button that moves a machine to a state says.
_ACTION_LABELS: dict[str, tuple[str, str]] = {
    "triaged": ("Triage fatto", "Mark as triaged"),
    "wiped": ("Dati cancellati", "Mark as wiped"),
    "tested": ("Collaudo fatto", "Mark as tested"),
    "imaged": ("Sistema installato", "Mark as imaged"),
    "quality_checked": ("Controllo qualità superato", "Quality check passed"),
    "ready": ("Pronta per l'uscita", "Mark as ready"),
    "deployed": ("Consegna a un beneficiario", "Deploy to a beneficiary"),
    "sold": ("Registra la vendita", "Record the sale"),
    "donated_on": ("Dona a un altro ente", "Donate on"),
    "recycled": ("Manda al riciclo", "Send to recycling"),
}
_REWORK_LABEL = ("Rimanda al triage (da rifare)", "Send back to triage (rework)")

KIND_LABELS: dict[str, tuple[str, str]] = {
    "desktop": ("Computer fisso", "Desktop"),
    "laptop": ("Portatile", "Laptop"),
    "all_in_one": ("Tutto in uno", "All-in-one"),
    "monitor": ("Monitor", "Monitor"),
    "webcam": ("Webcam", "Webcam"),
    "other": ("Altro", "Other"),
}

# The main road through the workshop, for the machine's journey picture.
JOURNEY: tuple[str, ...] = (
    "received",
    "triaged",
    "wiped",
    "tested",
    "imaged",
    "quality_checked",
    "ready",
)


@dataclass(frozen=True)
class Labels:
    """Names of states, kinds, skills and methods in the reader's language."""

    lang: str

    def pick(self, pair: tuple[str, str]) -> str:
        """The Italian or English half of ``pair``."""
        return pair[1] if self.lang == "en" else pair[0]

    def state(self, code: str) -> str:
        """A machine state."""
        return self.pick(STATE_LABELS.get(code, (code, code)))

    def action(self, current: str, target: str) -> str:
        """The button moving a machine in ``current`` to ``target``."""
        if target == "triaged" and current != "received":
            return self.pick(_REWORK_LABEL)
        return self.pick(_ACTION_LABELS.get(target, (target, target)))

    def kind(self, code: str) -> str:
        """A kind of equipment."""
        return self.pick(KIND_LABELS.get(code, (code, code)))

    def skill(self, code: str) -> str:
        """A skill practised."""
        return self.pick(SKILLS.get(code, (code, code)))

    def status(self, code: str) -> str:
        """A work order's status."""
        return self.pick(STATUS_LABELS.get(code, (code, code)))

    def method(self, code: str) -> str:
        """An erasure method."""
        try:
            return self.pick(method_names(code))
        except ValueError:
            return code


def labels(page: Page) -> Labels:
    """The labels for this page's reader."""
    return Labels(page.lang)


def format_hours(page: Page, minutes: int) -> str:
    """Minutes as hours the way people say them: "2", "1,5", "0,75"."""
    hours = minutes / 60
    decimals = 0 if hours.is_integer() else 1 if (hours * 10).is_integer() else 2
    return page.fmt.number(hours, decimals)


def common(page: Page, **context: Any) -> dict[str, Any]:
    """What every workshop template gets: labels, the stylesheet, who may do what."""
    user = page.user
    assert user is not None
    return {
        "t": labels(page),
        "css": f"/workshop/assets/workshop.css?v={__version__}",
        "is_staff": access.is_staff(user),
        "is_lead": access.is_lead(user),
        "hours": lambda minutes: format_hours(page, int(minutes)),
        **context,
    }


def config_of(request: Request) -> WorkshopConfig:
    """The workshop configuration of this app."""
    config: WorkshopConfig = request.app.state.workshop_config
    return config


def not_found_page(page: Page, exc: WorkshopError) -> PageError:
    """A 404 page with the reason ``exc`` gives, in the reader's language."""
    return PageError(page, 404, N_("Not found"), N_("%(reason)s"), reason=exc.message(page.lang))


@assets_router.get("/workshop.css")
def stylesheet() -> Response:
    """The workshop pages' own styles (the console's stylesheet covers the rest)."""
    css = files("control_plane").joinpath("templates/workshop/workshop.css").read_text()
    return Response(css, media_type="text/css", headers={"cache-control": "max-age=86400"})


# -- the board -------------------------------------------------------------------------------


@router.get("")
def board(page: ReaderPage, db: SessionDep) -> Response:
    """The board: how many machines are at each step, a search box, the way to everything."""
    user = page.user
    assert user is not None
    counts = service.board_counts(db)
    my_work: list[Any] = []
    if access.is_trainee(user):
        my_work, _ = visible_work_orders(db, viewer=user, limit=20)
        my_work = [o for o in my_work if o.status not in ("done", "cancelled")]
    recent, _ = service.find_machines(db, limit=10)
    return page.render(
        "workshop/board.html",
        **common(
            page,
            counts=counts,
            road=[*JOURNEY, "deployed", "sold", "donated_on", "recycled"],
            recent=recent,
            my_work=my_work,
        ),
    )


@router.get("/machines")
def machines(
    page: ReaderPage,
    db: SessionDep,
    q: Annotated[str, Query(max_length=100)] = "",
    state: str = "",
) -> Response:
    """Machines found by tag or serial (straight to the machine when exactly one matches)."""
    try:
        rows, total = service.find_machines(db, q=q, state=state or None, limit=200)
    except WorkshopError as exc:
        raise PageError(
            page, 400, N_("Something went wrong"), N_("%(reason)s"), reason=exc.message(page.lang)
        ) from exc
    if q.strip() and total == 1:
        return page.redirect(f"/workshop/machines/{rows[0].asset_tag}")
    return page.render(
        "workshop/machines.html",
        **common(page, rows=rows, total=total, q=q, state=state, states=list(STATE_LABELS)),
    )


# -- one machine -----------------------------------------------------------------------------


def _machine(page: Page, db: Session, tag: str) -> Machine:
    try:
        return service.get_machine(db, tag)
    except WorkshopError as exc:
        raise not_found_page(page, exc) from exc


def _beneficiaries(db: Session) -> list[tuple[int, str]]:
    return [
        (int(i), str(n))
        for i, n in db.execute(select(Beneficiary.id, Beneficiary.name).order_by(Beneficiary.name))
    ]


def machine_context(
    page: Page,
    db: Session,
    machine: Machine,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    open_form: str = "",
) -> dict[str, Any]:
    """Everything the machine page shows, with a failed form's errors and values."""
    user = page.user
    assert user is not None
    current = MachineState(machine.state)
    targets = [
        t.value
        for t in sorted(allowed_targets(current), key=lambda s: list(MachineState).index(s))
        if access.may_move(user, current, t)
    ]
    # Forward first, the way back to triage and recycling last: the obvious next step on top.
    targets.sort(key=lambda t: (t == "recycled", t == "triaged" and current.value != "received"))
    findings = machine.findings or []
    position = JOURNEY.index(machine.state) if machine.state in JOURNEY else len(JOURNEY)
    return common(
        page,
        machine=machine,
        donation=machine.donation,
        history=list(reversed(service.history(machine))),
        targets=targets,
        blockers=[f for f in findings if f.get("severity") == "blocker"],
        warnings=[f for f in findings if f.get("severity") == "warning"],
        uncertified=service.uncertified_disks(machine),
        beneficiaries=_beneficiaries(db) if "deployed" in targets else [],
        methods=[m.value for m in ErasureMethod],
        journey=JOURNEY,
        position=position,
        errors=errors or {},
        form=form or {},
        open_form=open_form,
        inventory=machine.inventory or {},
        now_local=page.now.astimezone(config_of(page.request).tz).strftime("%Y-%m-%dT%H:%M"),
    )


@router.get("/machines/{tag}")
def machine_page(tag: str, page: ReaderPage, db: SessionDep) -> Response:
    """One machine: where it is in its journey, what to do next, its history and records."""
    machine = _machine(page, db, tag)
    if machine.asset_tag != tag:
        return page.redirect(f"/workshop/machines/{machine.asset_tag}")
    return page.render("workshop/machine.html", **machine_context(page, db, machine))


def _failed(
    page: Page,
    db: Session,
    machine: Machine,
    exc: WorkshopError,
    form: dict[str, str],
    open_form: str,
) -> Response:
    # The failed request may have flushed nothing, but a clean session is the safe bet.
    db.rollback()
    machine = service.get_machine(db, machine.asset_tag)
    status = exc.status if exc.status in (403, 409, 413, 422) else 422
    return page.render(
        "workshop/machine.html",
        status_code=status,
        **machine_context(
            page,
            db,
            machine,
            errors={exc.field: exc.message(page.lang)},
            form=form,
            open_form=open_form,
        ),
    )


@router.post("/machines/{tag}/transition")
def move(
    tag: str,
    page: ReaderPage,
    db: SessionDep,
    settings: SettingsDep,
    config: ConfigDep,
    to: Annotated[str, Form(max_length=32)] = "",
    notes: Annotated[str, Form(max_length=2000)] = "",
    beneficiary_id: Annotated[str, Form(max_length=12)] = "",
    buyer: Annotated[str, Form(max_length=200)] = "",
    recipient: Annotated[str, Form(max_length=200)] = "",
    recycler: Annotated[str, Form(max_length=200)] = "",
    recycling_certificate_ref: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Move the machine one step; a refusal is shown on the machine page with its reason."""
    user = page.user
    assert user is not None
    machine = _machine(page, db, tag)
    form = {
        "to": to,
        "notes": notes,
        "beneficiary_id": beneficiary_id,
        "buyer": buyer,
        "recipient": recipient,
        "recycler": recycler,
        "recycling_certificate_ref": recycling_certificate_ref,
    }
    try:
        beneficiary: int | None = None
        if beneficiary_id.strip():
            if not beneficiary_id.strip().isdigit():
                raise WorkshopError(
                    422, "beneficiary_id", "choose a beneficiary", "scegliere un beneficiario"
                )
            beneficiary = int(beneficiary_id)
        change = service.change_state(
            db,
            settings,
            config,
            machine=machine,
            to=to,
            user=user,
            notes=notes,
            beneficiary_id=beneficiary,
            buyer=buyer,
            recipient=recipient,
            recycler=recycler,
            recycling_certificate_ref=recycling_certificate_ref,
        )
    except WorkshopError as exc:
        return _failed(page, db, machine, exc, form, open_form=to)
    db.commit()
    t = labels(page)
    if change.enrollment is not None:
        # The token is shown this once: render it rather than redirecting.
        return page.render(
            "workshop/deployed.html",
            **common(page, machine=machine, enrollment=change.enrollment),
        )
    page.flash(
        page._("%(tag)s is now: %(state)s.", tag=machine.asset_tag, state=t.state(machine.state))
    )
    return page.redirect(f"/workshop/machines/{machine.asset_tag}")


@router.post("/machines/{tag}/enrollment")
def reissue(
    tag: str, page: StaffPage, db: SessionDep, settings: SettingsDep, config: ConfigDep
) -> Response:
    """A new enrollment file for a deployed PC that has not enrolled yet."""
    user = page.user
    assert user is not None
    machine = _machine(page, db, tag)
    try:
        enrollment = deployment.reissue_enrollment(db, settings, config, machine=machine, user=user)
    except WorkshopError as exc:
        return _failed(page, db, machine, exc, {}, open_form="")
    db.commit()
    return page.render(
        "workshop/deployed.html", **common(page, machine=machine, enrollment=enrollment)
    )


def _local_time(value: str, field: str, config: WorkshopConfig) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise WorkshopError(422, field, "give a date and time", "indicare data e ora") from None
    # The browser sends the time on the workshop's wall clock, without a zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=config.tz)


def _optional_int(value: str, field: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    if not text.isdigit():
        raise WorkshopError(422, field, "must be a whole number", "deve essere un numero intero")
    return int(text)


@router.post("/machines/{tag}/erasure")
def add_erasure(
    tag: str,
    page: ReaderPage,
    db: SessionDep,
    config: ConfigDep,
    disk_serial: Annotated[str, Form(max_length=100)] = "",
    disk_model: Annotated[str, Form(max_length=200)] = "",
    method: Annotated[str, Form(max_length=32)] = "",
    verification: Annotated[str, Form(max_length=16)] = "",
    operator: Annotated[str, Form(max_length=200)] = "",
    started_at: Annotated[str, Form(max_length=40)] = "",
    finished_at: Annotated[str, Form(max_length=40)] = "",
    passes: Annotated[str, Form(max_length=4)] = "",
    tool: Annotated[str, Form(max_length=100)] = "",
    verification_detail: Annotated[str, Form(max_length=200)] = "",
    notes: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Record the erasure of one disk; the certificate grows by one line."""
    user = page.user
    assert user is not None
    machine = _machine(page, db, tag)
    form = {
        "disk_serial": disk_serial,
        "disk_model": disk_model,
        "method": method,
        "verification": verification,
        "operator": operator,
        "started_at": started_at,
        "finished_at": finished_at,
        "passes": passes,
        "tool": tool,
        "verification_detail": verification_detail,
        "notes": notes,
    }
    try:
        row = records.record_erasure(
            db,
            machine=machine,
            user=user,
            disk_serial=disk_serial,
            disk_model=disk_model,
            method=method,
            verification=verification,
            operator=operator,
            started_at=_local_time(started_at, "started_at", config),
            finished_at=_local_time(finished_at, "finished_at", config),
            passes=_optional_int(passes, "passes"),
            tool=tool,
            verification_detail=verification_detail,
            notes=notes,
        )
    except WorkshopError as exc:
        return _failed(page, db, machine, exc, form, open_form="erasure")
    db.commit()
    page.flash(page._("Erasure of disk %(serial)s recorded.", serial=row.disk_serial))
    return page.redirect(f"/workshop/machines/{machine.asset_tag}")


# -- impact ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar of the impact chart, measured for the SVG."""

    label: str
    value: int
    x: float
    y: float
    height: float


def chart(figures: ImpactFigures, t: Labels) -> list[Bar]:
    """The bars of the machines chart (received, deployed, sold, donated on, recycled)."""
    series = [
        (t.pick(("Ricevute", "Received")), figures.received),
        (t.pick(("Nelle case", "In homes")), figures.deployed),
        (t.pick(("Vendute", "Sold")), figures.sold),
        (t.pick(("Donate", "Donated on")), figures.donated_on),
        (t.pick(("Riciclate", "Recycled")), figures.recycled),
    ]
    peak = max(v for _, v in series) or 1
    top, height, slot = 20.0, 160.0, 120.0
    bars: list[Bar] = []
    for index, (label, value) in enumerate(series):
        h = height * value / peak
        bars.append(Bar(label, value, index * slot + 20, top + height - h, h))
    return bars


@router.get("/impact")
def impact(
    page: StaffPage,
    db: SessionDep,
    config: ConfigDep,
    start: str = "",
    end: str = "",
) -> Response:
    """The impact of a period: machines saved, work created, waste avoided; CSV and PDF."""
    today = service.workshop_today(config)
    errors: dict[str, str] = {}
    try:
        end_day = dt.date.fromisoformat(end) if end else today
    except ValueError:
        errors["end"] = page._("Give a date.")
        end_day = today
    try:
        start_day = dt.date.fromisoformat(start) if start else end_day.replace(month=1, day=1)
    except ValueError:
        errors["start"] = page._("Give a date.")
        start_day = end_day.replace(month=1, day=1)
    figures: ImpactFigures | None = None
    if not errors:
        try:
            figures = reports.impact_for(db, config, start=start_day, end=end_day)
        except WorkshopError as exc:
            errors[exc.field] = exc.message(page.lang)
    t = labels(page)
    query = f"start={start_day.isoformat()}&end={end_day.isoformat()}"
    return page.render(
        "workshop/impact.html",
        status_code=422 if errors else 200,
        **common(
            page,
            figures=figures,
            bars=chart(figures, t) if figures else [],
            start=start if errors else start_day.isoformat(),
            end=end if errors else end_day.isoformat(),
            errors=errors,
            query=query,
        ),
    )
