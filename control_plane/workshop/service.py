"""The workshop in the database: intake, the machines, and their lifecycle.

The rules are the pure core's (``intake``, ``lifecycle``, ``assessment``, ``certificates``);
this module loads the facts they need, writes what they decide, and records every step in
the audit log, all in the caller's transaction: a refused request leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from .. import audit
from ..config import Settings
from ..db import utcnow
from ..models import Beneficiary, Device, User
from . import access
from .config import WorkshopConfig
from .deployment import AUDIT_MACHINE, Enrollment, device_id_for, issue_enrollment, link_device
from .errors import (
    WorkshopError,
    forbidden,
    from_intake,
    from_transition,
    not_found,
)
from .intake import Donation as DonationSpec
from .intake import IntakeError, plan_intake, validate_donation
from .lifecycle import (
    TERMINAL_STATES,
    MachineFacts,
    MachineState,
    TransitionError,
    TransitionParams,
    intake_record,
    transition,
)
from .models import Donation, Machine, MachineTransition, TagCounter

AUDIT_DONATION = "workshop_donation"


def actor_label(user: User) -> str:
    """How a person is named in a machine's history and on its certificates."""
    return (user.name or user.email).strip()


def workshop_today(config: WorkshopConfig, now: dt.datetime | None = None) -> dt.date:
    """Today in the workshop's calendar."""
    return (now or utcnow()).astimezone(config.tz).date()


# -- intake ----------------------------------------------------------------------------------


def allocate_tags(session: Session, *, prefix: str, year: int, count: int) -> int:
    """Reserve ``count`` consecutive sequence numbers for ``year``; returns the first."""
    if count < 1:
        raise ValueError(f"count: must be 1 or more, got {count}")
    if session.get(TagCounter, (prefix, year)) is None:
        try:
            with session.begin_nested():
                session.add(TagCounter(prefix=prefix, year=year, last_sequence=0))
        except IntegrityError:
            pass  # another intake created this year's counter first: use theirs
    # One UPDATE hands out the block: on PostgreSQL it locks the row until commit, so two
    # intakes at once get disjoint blocks (SQLite serialises writers anyway).
    session.execute(
        update(TagCounter)
        .where(TagCounter.prefix == prefix, TagCounter.year == year)
        .values(last_sequence=TagCounter.last_sequence + count)
        .execution_options(synchronize_session=False)
    )
    last = session.execute(
        select(TagCounter.last_sequence).where(TagCounter.prefix == prefix, TagCounter.year == year)
    ).scalar_one()
    return int(last) - count + 1


def _check_serials_free(session: Session, spec: DonationSpec) -> None:
    wanted = {
        item.serial_number.strip().upper(): index
        for index, item in enumerate(spec.items)
        if item.serial_number.strip()
    }
    if not wanted:
        return
    clash = session.execute(
        select(Machine.asset_tag, Machine.serial_number).where(
            func.upper(Machine.serial_number).in_(list(wanted)),
            Machine.state.not_in([s.value for s in TERMINAL_STATES]),
        )
    ).first()
    if clash is not None:
        tag, serial = clash
        index = wanted[serial.strip().upper()]
        raise WorkshopError(
            409,
            f"items[{index}].serial_number",
            f"serial number {serial} is already in the workshop as {tag}",
            f"il numero di serie {serial} è già in laboratorio come {tag}",
            code="serial_in_use",
        )


def receive_donation(
    session: Session,
    config: WorkshopConfig,
    *,
    spec: DonationSpec,
    user: User,
    notes: str = "",
    now: dt.datetime | None = None,
) -> Donation:
    """Record a donation, tag every item and put each in "received"; returns the donation."""
    now = now or utcnow()
    try:
        validate_donation(spec)
    except IntakeError as exc:
        raise from_intake(exc) from exc
    if spec.received_on > workshop_today(config, now):
        raise WorkshopError(
            422,
            "received_on",
            "the date of the donation is in the future",
            "la data della donazione è nel futuro",
        )
    _check_serials_free(session, spec)
    donation = Donation(
        donor=spec.donor.strip(),
        donor_contact=spec.donor_contact.strip(),
        received_on=spec.received_on,
        consent_erase_reuse=spec.consent_erase_reuse,
        notes=notes.strip(),
        created_by=user.id,
        created_at=now,
    )
    session.add(donation)
    session.flush()
    first = allocate_tags(
        session, prefix=config.tag_prefix, year=spec.received_on.year, count=len(spec.items)
    )
    actor = actor_label(user)
    for tagged in plan_intake(spec, next_sequence=first, prefix=config.tag_prefix):
        item = tagged.item
        machine = Machine(
            asset_tag=tagged.asset_tag,
            donation_id=donation.id,
            kind=item.kind.value,
            manufacturer=item.manufacturer.strip(),
            model=item.model.strip(),
            serial_number=item.serial_number.strip(),
            weight_g=None if item.weight_kg is None else round(item.weight_kg * 1000),
            notes=item.notes.strip(),
            state=MachineState.RECEIVED.value,
            state_changed_at=now,
            created_at=now,
            telecare_blockers=[],
            findings=[],
        )
        session.add(machine)
        session.flush()
        record = intake_record(tagged.asset_tag, actor, now, f"{donation.reference}")
        session.add(
            MachineTransition(
                machine_id=machine.id,
                from_state=None,
                to_state=record.to_state.value,
                actor=record.actor,
                actor_id=user.id,
                at=record.at,
                notes=record.notes,
                details={"donation": donation.reference},
            )
        )
    session.flush()
    session.refresh(donation)
    audit.record(
        session,
        action="workshop.donation.received",
        object_type=AUDIT_DONATION,
        object_id=donation.id,
        actor=user,
        data={
            "donor": donation.donor,
            "received_on": donation.received_on.isoformat(),
            "tags": [m.asset_tag for m in donation.machines],
        },
    )
    return donation


def get_donation(session: Session, donation_id: int) -> Donation:
    """The donation with ``donation_id``; a 404 WorkshopError if there is none."""
    donation = session.get(Donation, donation_id)
    if donation is None:
        raise not_found(
            "donation_id",
            f"no donation with id {donation_id}",
            f"nessuna donazione con numero {donation_id}",
        )
    return donation


# -- machines --------------------------------------------------------------------------------


def get_machine(session: Session, tag: str) -> Machine:
    """The machine with asset tag ``tag`` (typed in any case); 404 if there is none."""
    clean = tag.strip().upper()
    machine = session.execute(
        select(Machine)
        .where(Machine.asset_tag == clean)
        .options(selectinload(Machine.transitions), selectinload(Machine.erasures))
    ).scalar_one_or_none()
    if machine is None:
        raise not_found(
            "asset_tag", f"no machine with tag {clean!r}", f"nessuna macchina con etichetta {clean}"
        )
    return machine


def machine_facts(machine: Machine) -> MachineFacts:
    """What the lifecycle rules need to know about ``machine``."""
    return MachineFacts(
        state=MachineState(machine.state),
        disk_serials=frozenset(machine.disk_serials or ()),
        certified_disk_serials=frozenset(
            e.disk_serial for e in machine.erasures if e.verification == "passed"
        ),
        diagnostics_present=machine.disk_serials is not None,
        telecare_blockers=frozenset(machine.telecare_blockers or ()),
    )


def uncertified_disks(machine: Machine) -> list[str]:
    """Disks the latest diagnostics found that still lack a passed erasure record."""
    facts = machine_facts(machine)
    return sorted(facts.disk_serials - facts.certified_disk_serials)


def board_counts(session: Session) -> dict[str, int]:
    """How many machines are in each state (every state present, zeros included)."""
    counts = dict.fromkeys((s.value for s in MachineState), 0)
    for state, count in session.execute(
        select(Machine.state, func.count()).group_by(Machine.state)
    ):
        counts[str(state)] = int(count)
    return counts


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_machines(
    session: Session,
    *,
    q: str | None = None,
    state: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Machine], int]:
    """Machines whose tag or serial contains ``q`` (any case), optionally in ``state``."""
    query = select(Machine)
    if state:
        try:
            query = query.where(Machine.state == MachineState(state).value)
        except ValueError:
            raise WorkshopError(
                422,
                "state",
                f"unknown state {state!r}",
                f"stato sconosciuto «{state}»",
            ) from None
    text = (q or "").strip()
    if text:
        pattern = f"%{_like_escape(text.upper())}%"
        query = query.where(
            func.upper(Machine.asset_tag).like(pattern, escape="\\")
            | func.upper(Machine.serial_number).like(pattern, escape="\\")
        )
    total = int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    rows = session.execute(
        query.order_by(Machine.state_changed_at.desc(), Machine.asset_tag)
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(rows), total


# -- the lifecycle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StateChange:
    """The outcome of a transition: the new history row and, for a deployment, enrollment."""

    machine: Machine
    record: MachineTransition
    enrollment: Enrollment | None = None
    linked_device: str | None = None


def _clean(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


def change_state(
    session: Session,
    settings: Settings,
    config: WorkshopConfig,
    *,
    machine: Machine,
    to: str,
    user: User,
    notes: str = "",
    beneficiary_id: int | None = None,
    buyer: str | None = None,
    recipient: str | None = None,
    recycler: str | None = None,
    recycling_certificate_ref: str | None = None,
    now: dt.datetime | None = None,
) -> StateChange:
    """Move ``machine`` to ``to`` if the lifecycle and the person's role allow it."""
    now = now or utcnow()
    try:
        target = MachineState(to)
    except ValueError:
        options = ", ".join(s.value for s in MachineState)
        raise WorkshopError(
            422,
            "to",
            f"unknown state {to!r}; states: {options}",
            f"stato sconosciuto «{to}»; stati: {options}",
        ) from None
    current = MachineState(machine.state)
    if not access.may_move(user, current, target):
        raise forbidden(
            "to",
            f"a trainee may not move a machine from '{current.value}' to '{target.value}'; "
            "ask the workshop lead",
            f"chi è in formazione non può passare una macchina da «{current.value}» a "
            f"«{target.value}»: chiedere al responsabile del laboratorio",
        )
    beneficiary: Beneficiary | None = None
    if target is MachineState.DEPLOYED and beneficiary_id is not None:
        beneficiary = session.get(Beneficiary, beneficiary_id)
        if beneficiary is None:
            raise WorkshopError(
                422,
                "beneficiary_id",
                f"no beneficiary with id {beneficiary_id}",
                f"nessun beneficiario con numero {beneficiary_id}",
            )
    params = TransitionParams(
        actor=actor_label(user),
        at=now,
        notes=notes,
        beneficiary_id=None if beneficiary_id is None else str(beneficiary_id),
        buyer=_clean(buyer),
        recipient=_clean(recipient),
        recycler=_clean(recycler),
        recycling_certificate_ref=_clean(recycling_certificate_ref),
    )
    try:
        record = transition(machine.asset_tag, machine_facts(machine), target, params)
    except TransitionError as exc:
        raise from_transition(exc) from exc
    device: Device | None = None
    device_id: str | None = None
    if target is MachineState.DEPLOYED:
        device_id = device_id_for(machine)
        device = session.get(Device, device_id)
        if device is not None and device.revoked_at is not None:
            raise WorkshopError(
                409,
                "beneficiary_id",
                f"the fleet device {device_id} was revoked; ask the fleet manager",
                f"il dispositivo {device_id} è stato revocato: chiedere al gestore della flotta",
            )

    # Conditional on the state read above: of two people moving one machine at once,
    # exactly one wins and the other is told, instead of both writing history.
    moved = session.execute(
        update(Machine)
        .where(Machine.id == machine.id, Machine.state == current.value)
        .values(state=target.value, state_changed_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise WorkshopError(
            409,
            "to",
            "someone else changed this machine meanwhile; reload and try again",
            "qualcun altro ha appena cambiato questa macchina: ricaricare e riprovare",
            code="conflict",
        )
    # The UPDATE above wrote these; record them as loaded so the flush does not write again.
    set_committed_value(machine, "state", target.value)
    set_committed_value(machine, "state_changed_at", now)
    row = MachineTransition(
        machine_id=machine.id,
        from_state=current.value,
        to_state=target.value,
        actor=record.actor,
        actor_id=user.id,
        at=record.at,
        notes=record.notes,
        details=dict(record.details),
    )
    session.add(row)
    enrollment: Enrollment | None = None
    linked: str | None = None
    if target is MachineState.DEPLOYED:
        assert beneficiary is not None and device_id is not None  # checked by the lifecycle
        machine.beneficiary_id = beneficiary.id
        machine.device_id = device_id
        row.details = {**row.details, "device_id": device_id}
        session.flush()
        if device is not None:
            # Registered in the fleet by hand already: link it to the beneficiary now.
            link_device(session, machine, device, now)
            linked = device.id
        else:
            enrollment = issue_enrollment(session, settings, config, machine, beneficiary, user)
    session.flush()
    audit.record(
        session,
        action="workshop.machine.transition",
        object_type=AUDIT_MACHINE,
        object_id=machine.asset_tag,
        actor=user,
        data={
            "from": current.value,
            "to": target.value,
            "notes": row.notes,
            "details": dict(row.details),
        },
    )
    return StateChange(machine=machine, record=row, enrollment=enrollment, linked_device=linked)


def history(machine: Machine) -> Sequence[MachineTransition]:
    """The machine's journey, oldest first."""
    return sorted(machine.transitions, key=lambda t: (t.at, t.id))
