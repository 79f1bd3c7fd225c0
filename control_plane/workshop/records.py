"""What the workshop records about a machine: diagnostics reports and disk erasures, and
the erasure certificates made from them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .. import audit
from ..db import utcnow
from ..models import User
from .assessment import Assessment, assess
from .certificates import (
    ErasureBatch,
    ErasureMethod,
    ErasureRecord,
    MachineIdentity,
    VerificationResult,
    batch_summary_pdf,
    erasure_certificate_pdf,
)
from .config import WorkshopConfig
from .errors import WorkshopError, from_report, from_value_error
from .inventory import ReportError
from .lifecycle import TERMINAL_STATES, MachineState
from .models import DiagnosticsReport, Donation, Erasure, Machine
from .service import AUDIT_MACHINE, actor_label

# Kinds that may hold a disk, and so belong in an erasure summary even without records.
COMPUTER_KINDS = frozenset({"desktop", "laptop", "all_in_one", "other"})


def _same_serial(a: str, b: str) -> bool:
    return a.strip().upper() == b.strip().upper()


def finding_json(finding: Any) -> dict[str, Any]:
    """A finding as stored and sent: a plain dict with the severity's value."""
    data = dataclasses.asdict(finding)
    data["severity"] = str(finding.severity.value)
    return data


def record_diagnostics(
    session: Session,
    *,
    machine: Machine,
    report: Mapping[str, Any],
    user: User,
    replace_serial: bool = False,
    now: dt.datetime | None = None,
) -> Assessment:
    """Store an edge diagnostics report for ``machine`` and update its inventory and findings."""
    now = now or utcnow()
    if not isinstance(report, Mapping):
        raise WorkshopError(422, "report", "expected a JSON object", "serve un oggetto JSON")
    version = report.get("v")
    if version is not None and version != 1:
        raise WorkshopError(
            422,
            "v",
            f"report format {version!r} is not supported; this control plane reads version 1",
            f"il formato {version!r} del rapporto non è supportato (serve la versione 1)",
        )
    if MachineState(machine.state) in TERMINAL_STATES:
        raise WorkshopError(
            409,
            "state",
            f"the machine is '{machine.state}': its record is closed",
            f"la macchina è «{machine.state}»: la sua scheda è chiusa",
        )
    try:
        assessment = assess(report)
    except ReportError as exc:
        raise from_report(exc) from exc
    inventory = assessment.inventory
    reported_serial = inventory.serial_number
    if reported_serial:
        if machine.serial_number and not _same_serial(machine.serial_number, reported_serial):
            if not replace_serial:
                raise WorkshopError(
                    409,
                    "system.serial",
                    f"the report is of the machine with serial {reported_serial}, but "
                    f"{machine.asset_tag} has serial {machine.serial_number}; check the tag, or "
                    "upload again with replace_serial=true if the serial written at intake "
                    "was wrong",
                    f"il rapporto è della macchina con numero di serie {reported_serial}, ma "
                    f"{machine.asset_tag} ha numero di serie {machine.serial_number}: "
                    "controllare l'etichetta",
                    code="serial_mismatch",
                )
            audit.record(
                session,
                action="workshop.machine.serial_replaced",
                object_type=AUDIT_MACHINE,
                object_id=machine.asset_tag,
                actor=user,
                data={"old": machine.serial_number, "new": reported_serial},
            )
            machine.serial_number = reported_serial
        elif not machine.serial_number:
            machine.serial_number = reported_serial
    if not machine.manufacturer and inventory.manufacturer:
        machine.manufacturer = inventory.manufacturer[:100]
    if not machine.model and inventory.product:
        machine.model = inventory.product[:200]
    tool_version = report.get("tool_version")
    session.add(
        DiagnosticsReport(
            machine_id=machine.id,
            uploaded_at=now,
            uploaded_by=user.id,
            tool_version=str(tool_version)[:64] if tool_version is not None else "",
            report=dict(report),
        )
    )
    machine.diagnostics_at = now
    machine.disk_serials = sorted(assessment.disk_serials)
    machine.telecare_blockers = sorted(assessment.blocker_codes)
    machine.inventory = dataclasses.asdict(inventory)
    machine.findings = [finding_json(f) for f in assessment.findings]
    session.flush()
    audit.record(
        session,
        action="workshop.machine.diagnostics",
        object_type=AUDIT_MACHINE,
        object_id=machine.asset_tag,
        actor=user,
        data={"disks": machine.disk_serials, "blockers": machine.telecare_blockers},
    )
    return assessment


# -- erasures and their certificates ---------------------------------------------------------


def _disk_from_inventory(machine: Machine, serial: str) -> dict[str, Any] | None:
    for disk in (machine.inventory or {}).get("disks") or ():
        known = disk.get("serial") or f"unknown-serial:{disk.get('name')}"
        if _same_serial(str(known), serial):
            return dict(disk)
    return None


def record_erasure(
    session: Session,
    *,
    machine: Machine,
    user: User,
    disk_serial: str,
    method: str,
    verification: str,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    operator: str = "",
    disk_model: str = "",
    passes: int | None = None,
    size_bytes: int | None = None,
    tool: str = "",
    verification_detail: str = "",
    notes: str = "",
    now: dt.datetime | None = None,
) -> Erasure:
    """Record how one disk of ``machine`` was erased and verified (a certificate line)."""
    now = now or utcnow()
    if MachineState(machine.state) in TERMINAL_STATES:
        raise WorkshopError(
            409,
            "state",
            f"the machine is '{machine.state}': its record is closed",
            f"la macchina è «{machine.state}»: la sua scheda è chiusa",
        )
    serial = disk_serial.strip()
    if not serial:
        raise WorkshopError(
            422,
            "disk_serial",
            "say which disk was erased",
            "indicare quale disco è stato cancellato",
        )
    try:
        method_value = ErasureMethod(method)
    except ValueError:
        options = ", ".join(m.value for m in ErasureMethod)
        raise WorkshopError(
            422,
            "method",
            f"unknown method {method!r}; methods: {options}",
            f"metodo sconosciuto «{method}»; metodi: {options}",
        ) from None
    try:
        verification_value = VerificationResult(verification)
    except ValueError:
        raise WorkshopError(
            422,
            "verification",
            "must be 'passed' or 'failed'",
            "deve essere «passed» (superata) o «failed» (non superata)",
        ) from None
    if finished_at < started_at:
        raise WorkshopError(
            422,
            "finished_at",
            "is before started_at",
            "la fine è prima dell'inizio",
        )
    if finished_at > now + dt.timedelta(minutes=5):
        raise WorkshopError(422, "finished_at", "is in the future", "l'orario di fine è nel futuro")
    if method_value is ErasureMethod.OVERWRITE and not passes:
        raise WorkshopError(
            422,
            "passes",
            "an overwrite needs the number of passes (1 or more)",
            "per una sovrascrittura indicare il numero di passaggi (almeno 1)",
        )
    # The diagnostics spelling wins, so the certificate matches what the lifecycle checks.
    disk = _disk_from_inventory(machine, serial)
    if disk is not None:
        serial = str(disk.get("serial") or f"unknown-serial:{disk.get('name')}")
        disk_model = disk_model.strip() or str(disk.get("model") or "")
        if size_bytes is None and isinstance(disk.get("size_bytes"), int):
            size_bytes = int(disk["size_bytes"])
    operator = operator.strip() or actor_label(user)
    try:
        ErasureRecord(
            disk_serial=serial,
            disk_model=disk_model.strip(),
            method=method_value,
            verification=verification_value,
            operator=operator,
            started_at=started_at,
            finished_at=finished_at,
            passes=passes,
            size_bytes=size_bytes,
        )
    except ValueError as exc:
        raise from_value_error(exc) from exc
    row = Erasure(
        machine_id=machine.id,
        disk_serial=serial,
        disk_model=disk_model.strip(),
        method=method_value.value,
        verification=verification_value.value,
        operator=operator,
        started_at=started_at,
        finished_at=finished_at,
        passes=passes,
        size_bytes=size_bytes,
        tool=tool.strip(),
        verification_detail=verification_detail.strip(),
        notes=notes.strip(),
        recorded_by=user.id,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    session.refresh(machine, ["erasures"])
    audit.record(
        session,
        action="workshop.erasure.recorded",
        object_type=AUDIT_MACHINE,
        object_id=machine.asset_tag,
        actor=user,
        data={
            "erasure_id": row.id,
            "disk_serial": serial,
            "method": row.method,
            "verification": row.verification,
            "operator": operator,
        },
    )
    return row


def erasure_record(row: Erasure) -> ErasureRecord:
    """A stored erasure as the certificate module's record."""
    return ErasureRecord(
        disk_serial=row.disk_serial,
        disk_model=row.disk_model,
        method=ErasureMethod(row.method),
        verification=VerificationResult(row.verification),
        operator=row.operator,
        started_at=row.started_at,
        finished_at=row.finished_at,
        passes=row.passes,
        size_bytes=row.size_bytes,
        tool=row.tool,
        verification_detail=row.verification_detail,
        notes=row.notes,
    )


def machine_identity(machine: Machine) -> MachineIdentity:
    """The machine as its certificate names it: tag, serial, make, donor."""
    donation = machine.donation
    return MachineIdentity(
        asset_tag=machine.asset_tag,
        serial_number=machine.serial_number,
        manufacturer=machine.manufacturer,
        model=machine.model,
        donor=donation.donor,
        received_on=donation.received_on,
    )


def certificate_pdf(machine: Machine, config: WorkshopConfig) -> bytes:
    """The erasure certificate of ``machine``; 409 if no erasure was recorded yet."""
    if not machine.erasures:
        raise WorkshopError(
            409,
            "erasures",
            f"no erasure has been recorded for {machine.asset_tag} yet",
            f"per {machine.asset_tag} non è ancora stata registrata alcuna cancellazione",
        )
    records = [erasure_record(e) for e in certificate_lines(machine.erasures)]
    return erasure_certificate_pdf(machine_identity(machine), records, config.organization)


def certificate_lines(erasures: Sequence[Erasure]) -> list[Erasure]:
    """Per disk, the erasure a certificate shows: the latest that passed, else the latest.

    A failed attempt followed by a passing one is history (kept, and audited), not a
    warning on the certificate the donor receives.
    """
    chosen: dict[str, Erasure] = {}
    for row in sorted(erasures, key=lambda e: (e.finished_at, e.id)):
        best = chosen.get(row.disk_serial)
        if best is None or row.verification == "passed" or best.verification != "passed":
            chosen[row.disk_serial] = row
    return sorted(chosen.values(), key=lambda e: (e.disk_serial, e.finished_at))


def erasure_summary_pdf(
    session: Session, donation: Donation, config: WorkshopConfig, *, now: dt.datetime | None = None
) -> bytes:
    """The erasure summary of a donation's machines (those that can hold a disk)."""
    machines = session.execute(
        select(Machine)
        .where(Machine.donation_id == donation.id)
        .options(selectinload(Machine.erasures))
        .order_by(Machine.asset_tag)
    ).scalars()
    rows = [
        (machine_identity(m), [erasure_record(e) for e in certificate_lines(m.erasures)])
        for m in machines
        if m.erasures or m.disk_serials or m.kind in COMPUTER_KINDS
    ]
    if not rows:
        raise WorkshopError(
            409,
            "donation_id",
            "this donation has no machine that holds disks",
            "questa donazione non contiene macchine con dischi",
        )
    batch = ErasureBatch(
        reference=donation.reference,
        description=f"{len(rows)} machines",
        donor=donation.donor,
        received_on=donation.received_on,
    )
    issued = None if any(r for _, r in rows) else (now or utcnow())
    return batch_summary_pdf(batch, rows, config.organization, issued_at=issued)
