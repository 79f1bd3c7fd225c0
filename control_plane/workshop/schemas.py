"""The workshop API's request and response bodies (pydantic), and their mapping onto the
pure core's types."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from ..models import User
from . import access, service
from .deployment import Enrollment
from .errors import WorkshopError
from .impact import ImpactFigures
from .intake import DonatedItem, IntakeError, ItemKind, parse_manifest_csv
from .intake import Donation as DonationSpec
from .lifecycle import MachineState, allowed_targets
from .models import Donation, Erasure, Machine, MachineTransition


class ItemIn(BaseModel):
    """One donated item."""

    kind: ItemKind = ItemKind.OTHER
    manufacturer: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=200)
    serial_number: str = Field(default="", max_length=100)
    weight_kg: float | None = Field(default=None, gt=0, le=200)
    notes: str = Field(default="", max_length=2000)


class DonationCreate(BaseModel):
    """A donation: its items one by one, or a pallet's manifest as CSV."""

    donor: str = Field(min_length=1, max_length=200)
    donor_contact: str = Field(default="", max_length=200)
    received_on: dt.date | None = Field(default=None, description="default: today")
    consent_erase_reuse: bool = False
    notes: str = Field(default="", max_length=2000)
    items: list[ItemIn] = Field(default_factory=list, max_length=500)
    manifest_csv: str | None = Field(
        default=None,
        max_length=500_000,
        description="kind,manufacturer,model,serial_number,weight_kg,quantity",
    )

    @model_validator(mode="after")
    def _items_or_manifest(self) -> DonationCreate:
        if self.items and self.manifest_csv:
            raise ValueError("items: give the items or a manifest_csv, not both")
        return self


class MachineSummary(BaseModel):
    """A machine in a list."""

    asset_tag: str
    kind: str
    manufacturer: str
    model: str
    serial_number: str
    weight_kg: float | None
    state: str
    state_changed_at: dt.datetime
    donation_id: int

    @classmethod
    def of(cls, m: Machine) -> MachineSummary:
        """The summary of ``m``."""
        return cls(
            asset_tag=m.asset_tag,
            kind=m.kind,
            manufacturer=m.manufacturer,
            model=m.model,
            serial_number=m.serial_number,
            weight_kg=None if m.weight_g is None else m.weight_g / 1000,
            state=m.state,
            state_changed_at=m.state_changed_at,
            donation_id=m.donation_id,
        )


class DonationPublic(BaseModel):
    """A donation and the machines it brought."""

    id: int
    reference: str
    donor: str
    donor_contact: str
    received_on: dt.date
    consent_erase_reuse: bool
    notes: str
    machines: list[MachineSummary]

    @classmethod
    def of(cls, d: Donation) -> DonationPublic:
        """The public view of ``d``."""
        return cls(
            id=d.id,
            reference=d.reference,
            donor=d.donor,
            donor_contact=d.donor_contact,
            received_on=d.received_on,
            consent_erase_reuse=d.consent_erase_reuse,
            notes=d.notes,
            machines=[MachineSummary.of(m) for m in d.machines],
        )


class DonationPage(BaseModel):
    items: list[DonationPublic]
    total: int
    limit: int
    offset: int


class TransitionPublic(BaseModel):
    """One step of a machine's journey."""

    from_state: str | None
    to_state: str
    actor: str
    at: dt.datetime
    notes: str
    details: dict[str, str]

    @classmethod
    def of(cls, t: MachineTransition) -> TransitionPublic:
        """The public view of ``t``."""
        return cls(
            from_state=t.from_state,
            to_state=t.to_state,
            actor=t.actor,
            at=t.at,
            notes=t.notes,
            details=dict(t.details or {}),
        )


class ErasurePublic(BaseModel):
    """One disk's erasure."""

    id: int
    disk_serial: str
    disk_model: str
    method: str
    verification: str
    operator: str
    started_at: dt.datetime
    finished_at: dt.datetime
    passes: int | None
    size_bytes: int | None
    tool: str
    verification_detail: str
    notes: str

    @classmethod
    def of(cls, e: Erasure) -> ErasurePublic:
        """The public view of ``e``."""
        return cls(
            id=e.id,
            disk_serial=e.disk_serial,
            disk_model=e.disk_model,
            method=e.method,
            verification=e.verification,
            operator=e.operator,
            started_at=e.started_at,
            finished_at=e.finished_at,
            passes=e.passes,
            size_bytes=e.size_bytes,
            tool=e.tool,
            verification_detail=e.verification_detail,
            notes=e.notes,
        )


class FindingPublic(BaseModel):
    """A diagnostics finding with its fix."""

    code: str
    severity: str
    message_it: str
    message_en: str
    fix_it: str
    fix_en: str
    subject: str | None = None


class MachineDetail(MachineSummary):
    """A machine with its journey, diagnostics and erasures."""

    notes: str
    allowed_targets: list[str] = Field(description="the states this person may move it to")
    history: list[TransitionPublic]
    erasures: list[ErasurePublic]
    diagnostics_at: dt.datetime | None
    disk_serials: list[str] | None
    uncertified_disks: list[str]
    telecare_blockers: list[str]
    findings: list[FindingPublic]
    inventory: dict[str, Any] | None
    beneficiary_id: int | None
    device_id: str | None
    device_linked: bool

    @classmethod
    def build(cls, m: Machine, viewer: User) -> MachineDetail:
        """The detail of ``m`` as ``viewer`` sees it."""
        summary = MachineSummary.of(m).model_dump()
        current = MachineState(m.state)
        targets = sorted(
            t.value for t in allowed_targets(current) if access.may_move(viewer, current, t)
        )
        return cls(
            **summary,
            notes=m.notes,
            allowed_targets=targets,
            history=[TransitionPublic.of(t) for t in service.history(m)],
            erasures=[ErasurePublic.of(e) for e in m.erasures],
            diagnostics_at=m.diagnostics_at,
            disk_serials=m.disk_serials,
            uncertified_disks=service.uncertified_disks(m),
            telecare_blockers=list(m.telecare_blockers or []),
            findings=[FindingPublic(**f) for f in m.findings or []],
            inventory=m.inventory,
            beneficiary_id=m.beneficiary_id,
            device_id=m.device_id,
            device_linked=m.device_linked_at is not None,
        )


class MachinePage(BaseModel):
    items: list[MachineSummary]
    total: int
    limit: int
    offset: int


class TransitionCreate(BaseModel):
    """Where a machine goes next, and what that destination needs."""

    to: str = Field(max_length=32)
    notes: str = Field(default="", max_length=2000)
    beneficiary_id: int | None = Field(default=None, ge=1)
    buyer: str | None = Field(default=None, max_length=200)
    recipient: str | None = Field(default=None, max_length=200)
    recycler: str | None = Field(default=None, max_length=200)
    recycling_certificate_ref: str | None = Field(default=None, max_length=200)


class EnrollmentPublic(BaseModel):
    """How the deployed PC enrolls itself: shown once, never again."""

    device_id: str
    token: str
    expires_at: dt.datetime
    file: str = Field(description="save as difronte-enroll.txt on the PC's boot partition")

    @classmethod
    def of(cls, e: Enrollment) -> EnrollmentPublic:
        """The public view of ``e``."""
        return cls(device_id=e.device_id, token=e.token, expires_at=e.expires_at, file=e.file_text)


class TransitionResult(BaseModel):
    """The machine after the step, the step itself, and enrollment for a deployment."""

    machine: MachineDetail
    transition: TransitionPublic
    enrollment: EnrollmentPublic | None = None
    linked_device_id: str | None = None


class DiagnosticsResult(BaseModel):
    """What the report says about the machine."""

    asset_tag: str
    serial_number: str
    suitable_for_telecare: bool
    blockers: list[FindingPublic]
    warnings: list[FindingPublic]
    disks_needing_certificate: list[str]


class ErasureCreate(BaseModel):
    """How one disk was erased and verified."""

    disk_serial: str = Field(min_length=1, max_length=100)
    disk_model: str = Field(default="", max_length=200)
    method: str = Field(max_length=32)
    verification: str = Field(max_length=16)
    operator: str = Field(default="", max_length=200, description="default: who records it")
    started_at: AwareDatetime
    finished_at: AwareDatetime
    passes: int | None = Field(default=None, ge=1, le=100)
    size_bytes: int | None = Field(default=None, ge=0)
    tool: str = Field(default="", max_length=100)
    verification_detail: str = Field(default="", max_length=200)
    notes: str = Field(default="", max_length=2000)


class ImpactPublic(BaseModel):
    """The impact figures of a period."""

    period_start: dt.date
    period_end: dt.date
    received: int
    wiped: int
    reused: int
    deployed: int
    sold: int
    donated_on: int
    recycled: int
    in_service_at_end: int
    hours_worked: float
    people: int
    kg_kept_out_of_waste: float
    kg_recycled: float
    machines_without_weight: int

    @classmethod
    def of(cls, f: ImpactFigures) -> ImpactPublic:
        """The public view of ``f``."""
        return cls(
            period_start=f.period_start,
            period_end=f.period_end,
            received=f.received,
            wiped=f.wiped,
            reused=f.reused,
            deployed=f.deployed,
            sold=f.sold,
            donated_on=f.donated_on,
            recycled=f.recycled,
            in_service_at_end=f.in_service_at_end,
            hours_worked=f.hours_worked,
            people=f.people,
            kg_kept_out_of_waste=f.kg_kept_out_of_waste,
            kg_recycled=f.kg_recycled,
            machines_without_weight=f.machines_without_weight,
        )


def donation_spec(body: DonationCreate, today: dt.date) -> DonationSpec:
    """The pure intake's donation from the request (the manifest read into items)."""
    if body.manifest_csv is not None:
        try:
            items = parse_manifest_csv(body.manifest_csv)
        except IntakeError as exc:
            raise WorkshopError(422, exc.field, exc.message_en, exc.message_it) from exc
    else:
        items = [
            DonatedItem(
                kind=i.kind,
                manufacturer=i.manufacturer,
                model=i.model,
                serial_number=i.serial_number,
                weight_kg=i.weight_kg,
                notes=i.notes,
            )
            for i in body.items
        ]
    return DonationSpec(
        donor=body.donor,
        donor_contact=body.donor_contact,
        received_on=body.received_on or today,
        consent_erase_reuse=body.consent_erase_reuse,
        items=tuple(items),
    )
