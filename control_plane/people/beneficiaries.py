"""Beneficiaries, their PC and their caregivers. Every change is audited.

Linking or unlinking a PC, or moving a person to another time zone, changes when PCs must
wake: the schedules are recomputed here, in the same transaction, and the functions return
the devices whose desired twin changed, to be published after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..db import utcnow
from ..models import Beneficiary, CaregiverAssignment, Device, Role, User
from ..twin import set_section
from .errors import Problems

log = logging.getLogger(__name__)

MAX_NAME = 200
MAX_AREA = 200
MAX_NOTES = 5000
MAX_TIMEZONE = 64
BENEFICIARY_FIELDS = ("name", "timezone", "address_area", "notes", "auto_answer", "device_id")


def valid_timezone(name: str) -> bool:
    """True when ``name`` is an IANA time zone such as Europe/Rome."""
    if not name or len(name) > MAX_TIMEZONE or name != name.strip():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def holder_of(session: Session, device_id: str) -> Beneficiary | None:
    """The beneficiary whose PC ``device_id`` is, if any."""
    return session.execute(
        select(Beneficiary).where(Beneficiary.device_id == device_id)
    ).scalar_one_or_none()


def free_devices(session: Session) -> list[Device]:
    """Registered, not revoked PCs that are nobody's yet, by id."""
    taken = select(Beneficiary.device_id).where(Beneficiary.device_id.is_not(None))
    return list(
        session.execute(
            select(Device)
            .where(Device.revoked_at.is_(None), Device.id.not_in(taken))
            .order_by(Device.id)
        ).scalars()
    )


def list_beneficiaries(
    session: Session, ids: set[int] | list[int] | None = None
) -> list[Beneficiary]:
    """Beneficiaries by name (only ``ids`` when given)."""
    query = select(Beneficiary).order_by(func.lower(Beneficiary.name), Beneficiary.id)
    if ids is not None:
        query = query.where(Beneficiary.id.in_(ids))
    return list(session.execute(query).scalars())


def assignments(session: Session, beneficiary_id: int) -> list[CaregiverAssignment]:
    """The beneficiary's caregivers, the primary one first, then by name."""
    return list(
        session.execute(
            select(CaregiverAssignment)
            .join(User, User.id == CaregiverAssignment.user_id)
            .where(CaregiverAssignment.beneficiary_id == beneficiary_id)
            .order_by(CaregiverAssignment.primary.desc(), func.lower(User.name), User.id)
        ).scalars()
    )


# --- checks -------------------------------------------------------------------------------


def _check(
    session: Session, problems: Problems, values: Mapping[str, Any], person: Beneficiary | None
) -> dict[str, Any]:
    """The cleaned values of the given fields; problems noted per field."""
    out: dict[str, Any] = {}
    for key in values:
        if key not in BENEFICIARY_FIELDS:
            problems.add(key, "cannot be changed here")
    if "name" in values:
        out["name"] = str(values["name"] or "").strip()
        if not out["name"] or len(out["name"]) > MAX_NAME:
            problems.add("name", f"1 to {MAX_NAME} characters")
    if "timezone" in values:
        out["timezone"] = str(values["timezone"] or "")
        if not valid_timezone(out["timezone"]):
            problems.add("timezone", "an IANA time zone such as Europe/Rome")
    if "address_area" in values:
        out["address_area"] = str(values["address_area"] or "").strip()
        if len(out["address_area"]) > MAX_AREA:
            problems.add("address_area", f"at most {MAX_AREA} characters")
    if "notes" in values:
        out["notes"] = str(values["notes"] or "").strip()
        if len(out["notes"]) > MAX_NOTES:
            problems.add("notes", f"at most {MAX_NOTES} characters")
    if "auto_answer" in values:
        out["auto_answer"] = values["auto_answer"]
        if not isinstance(out["auto_answer"], bool):
            problems.add("auto_answer", "true or false")
    if "device_id" in values:
        device_id = values["device_id"]
        out["device_id"] = (str(device_id).strip() or None) if device_id is not None else None
        if out["device_id"] is not None:
            _check_device(session, problems, out["device_id"], person)
    return out


def _check_device(
    session: Session, problems: Problems, device_id: str, person: Beneficiary | None
) -> None:
    device = session.get(Device, device_id)
    if device is None:
        problems.add("device_id", f"no registered PC {device_id!r}", code="device_unknown")
        return
    if device.revoked_at is not None:
        problems.add("device_id", f"the PC {device_id} has been revoked", code="device_revoked")
        return
    holder = holder_of(session, device_id)
    if holder is not None and (person is None or holder.id != person.id):
        problems.add(
            "device_id",
            f"the PC {device_id} is already linked to {holder.name} (beneficiary {holder.id})",
            code="device_taken",
            status=409,
            holder=holder.name,
            holder_id=holder.id,
        )


def _flush_or_device_taken(session: Session, device_id: str | None) -> None:
    # Two coordinators linking one PC at once: the unique index decides.
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        problems = Problems()
        problems.add(
            "device_id",
            f"the PC {device_id} was just linked to someone else",
            code="device_taken_now",
            status=409,
        )
        problems.raise_if_any()


# --- the PC follows the person -------------------------------------------------------------


def _follow(
    session: Session,
    person: Beneficiary,
    *,
    old_device_id: str | None,
    schedule: bool,
    call: bool,
    config: Any = None,
) -> set[str]:
    """Recompute what the PCs involved must do; the device ids whose desired twin changed."""
    changed: set[str] = set()
    now = utcnow()
    try:
        from ..schedules.config import ScheduleConfig
        from ..schedules.expansion import RecurrenceError
        from ..schedules.service import publish_device, refresh_beneficiary
    except ImportError:  # schedules not part of this build
        schedule = False
    if schedule:
        config = config or ScheduleConfig()
        if old_device_id is not None and old_device_id != person.device_id:
            old = session.get(Device, old_device_id)
            # The PC taken away stops waking for this person.
            if old is not None and old.revoked_at is None:
                if publish_device(session, old, None, now, config):
                    changed.add(old.id)
        try:
            changed.update(refresh_beneficiary(session, person.id, now, config))
        except RecurrenceError as exc:
            # One broken appointment must not stop the link; the periodic sync reports it.
            log.warning("schedule of beneficiary %s not recomputed: %s", person.id, exc)
    if call and person.device_id is not None:
        changed.update(_sync_call_policy(session, person))
    return changed


def _sync_call_policy(session: Session, person: Beneficiary) -> set[str]:
    """Tell the PC whether to answer by itself (it answers unless told otherwise)."""
    device = session.get(Device, person.device_id) if person.device_id else None
    if device is None or device.revoked_at is not None:
        return set()
    current = dict((device.desired or {}).get("call") or {})
    if current.get("auto_answer", True) == person.auto_answer:
        return set()
    set_section(session, device, "call", {**current, "auto_answer": person.auto_answer})
    return {device.id}


# --- changes ------------------------------------------------------------------------------


def create_beneficiary(
    session: Session, *, actor: User, values: Mapping[str, Any], config: Any = None
) -> tuple[Beneficiary, set[str]]:
    """A new beneficiary (with their PC, if given); the devices to publish."""
    problems = Problems()
    fields = {"timezone": "Europe/Rome", "auto_answer": True, **values}
    fields.setdefault("name", "")
    cleaned = _check(session, problems, fields, None)
    problems.raise_if_any()
    person = Beneficiary(
        name=cleaned["name"],
        timezone=cleaned["timezone"],
        address_area=cleaned.get("address_area", ""),
        notes=cleaned.get("notes", ""),
        auto_answer=cleaned["auto_answer"],
        device_id=cleaned.get("device_id"),
    )
    session.add(person)
    _flush_or_device_taken(session, person.device_id)
    audit.record(
        session,
        action="beneficiary.create",
        object_type="beneficiary",
        object_id=person.id,
        actor=actor,
        data={k: v for k, v in cleaned.items() if k != "notes"},
    )
    changed: set[str] = set()
    if person.device_id is not None:
        changed = _follow(
            session, person, old_device_id=None, schedule=True, call=True, config=config
        )
    return person, changed


def update_beneficiary(
    session: Session,
    *,
    actor: User,
    person: Beneficiary,
    changes: Mapping[str, Any],
    config: Any = None,
) -> tuple[dict[str, Any], set[str]]:
    """Change some fields; (what changed as [before, after], the devices to publish)."""
    problems = Problems()
    cleaned = _check(session, problems, changes, person)
    problems.raise_if_any()
    changed = {
        key: [getattr(person, key), value]
        for key, value in cleaned.items()
        if getattr(person, key) != value
    }
    if not changed:
        return {}, set()
    old_device_id = person.device_id
    for key, (_before, after) in changed.items():
        setattr(person, key, after)
    _flush_or_device_taken(session, person.device_id)
    data: dict[str, Any] = dict(changed)
    if "notes" in data:
        data["notes"] = "changed"  # the notes stay on the person's page, not in the log
    audit.record(
        session,
        action="beneficiary.update",
        object_type="beneficiary",
        object_id=person.id,
        actor=actor,
        data=data,
    )
    devices = _follow(
        session,
        person,
        old_device_id=old_device_id,
        schedule="device_id" in changed or "timezone" in changed,
        call="device_id" in changed or "auto_answer" in changed,
        config=config,
    )
    return changed, devices


def unlink_device(
    session: Session, *, actor: User, person: Beneficiary, config: Any = None
) -> set[str]:
    """The person no longer has a PC (it goes back among the free ones)."""
    if person.device_id is None:
        return set()
    _changed, devices = update_beneficiary(
        session, actor=actor, person=person, changes={"device_id": None}, config=config
    )
    return devices


def _caregiver(session: Session, problems: Problems, user_id: object) -> User | None:
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        problems.add("user_id", "the id of a caregiver's account")
        return None
    user = session.get(User, user_id)
    if user is None:
        problems.add("user_id", f"no account {user_id}", code="user_unknown")
    elif user.role != Role.CAREGIVER.value:
        problems.add("user_id", f"{user.name} is not a caregiver", code="not_caregiver")
    elif not user.is_active:
        problems.add("user_id", f"{user.name}'s account is not active", code="not_active")
    else:
        return user
    return None


def _assignment(session: Session, person: Beneficiary, user_id: int) -> CaregiverAssignment | None:
    return session.execute(
        select(CaregiverAssignment).where(
            CaregiverAssignment.beneficiary_id == person.id,
            CaregiverAssignment.user_id == user_id,
        )
    ).scalar_one_or_none()


def assign_caregiver(
    session: Session, *, actor: User, person: Beneficiary, user_id: object, primary: bool = False
) -> CaregiverAssignment:
    """Make an active caregiver one of the person's caregivers (the first one is the primary)."""
    problems = Problems()
    user = _caregiver(session, problems, user_id)
    if user is not None and _assignment(session, person, user.id) is not None:
        problems.add(
            "user_id",
            f"{user.name} is already a caregiver of {person.name}",
            code="already_assigned",
            status=409,
        )
    problems.raise_if_any()
    assert user is not None
    first = not assignments(session, person.id)
    row = CaregiverAssignment(beneficiary_id=person.id, user_id=user.id, primary=False)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        problems.add(
            "user_id",
            f"{user.name} is already a caregiver of {person.name}",
            code="already_assigned",
            status=409,
        )
        problems.raise_if_any()
    audit.record(
        session,
        action="caregiver.assign",
        object_type="beneficiary",
        object_id=person.id,
        actor=actor,
        data={"user_id": user.id},
    )
    if primary or first:
        _make_primary(session, actor, person, row)
    return row


def _make_primary(
    session: Session, actor: User, person: Beneficiary, row: CaregiverAssignment
) -> None:
    for other in assignments(session, person.id):
        other.primary = other.id == row.id
    session.flush()
    audit.record(
        session,
        action="caregiver.primary",
        object_type="beneficiary",
        object_id=person.id,
        actor=actor,
        data={"user_id": row.user_id},
    )


def _existing(session: Session, person: Beneficiary, user_id: int) -> CaregiverAssignment:
    row = _assignment(session, person, user_id)
    if row is None:
        problems = Problems()
        problems.add(
            "user_id",
            f"account {user_id} is not a caregiver of {person.name}",
            code="not_assigned",
            status=404,
        )
        problems.raise_if_any()
    assert row is not None
    return row


def set_primary(session: Session, *, actor: User, person: Beneficiary, user_id: int) -> None:
    """Make one of the person's caregivers the primary one (the others no longer are)."""
    row = _existing(session, person, user_id)
    if not row.primary:
        _make_primary(session, actor, person, row)


def remove_caregiver(session: Session, *, actor: User, person: Beneficiary, user_id: int) -> None:
    """The caregiver no longer looks after the person (nor sees them)."""
    row = _existing(session, person, user_id)
    was_primary = row.primary
    session.delete(row)
    appointments = _drop_from_appointments(session, person, user_id)
    session.flush()
    audit.record(
        session,
        action="caregiver.remove",
        object_type="beneficiary",
        object_id=person.id,
        actor=actor,
        data={
            "user_id": user_id,
            "primary": was_primary,
            **({"appointments": appointments} if appointments else {}),
        },
    )


def _drop_from_appointments(session: Session, person: Beneficiary, user_id: int) -> int:
    """Take the caregiver off the person's appointments; how many they were on."""
    try:
        from ..schedules.models import Appointment, AppointmentCaregiver
    except ImportError:  # schedules not part of this build
        return 0
    rows = session.scalars(
        select(AppointmentCaregiver)
        .join(Appointment, Appointment.id == AppointmentCaregiver.appointment_id)
        .where(Appointment.beneficiary_id == person.id, AppointmentCaregiver.user_id == user_id)
    ).all()
    for r in rows:
        session.delete(r)
    return len(rows)
