"""Changing appointments and exceptions: validation, edits from a date, audit.

The API and the console pages both call these; they raise :class:`InputError` naming the
field at fault, and record every change in the audit log, in the caller's transaction.
After the commit the caller republishes the device's schedule (``service.refresh_beneficiary``
then ``Scheduler.publish``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from .. import audit
from ..db import utcnow
from ..models import Beneficiary, Role, User
from .access import assigned_user_ids
from .expansion import (
    MAX_DURATION,
    RecurrenceError,
    Series,
    first_on_or_after,
    normalize_rrule,
    parse_rrule,
    zone,
)
from .models import Appointment, AppointmentCaregiver, ScheduleException

MAX_MINUTES = int(MAX_DURATION.total_seconds() // 60)
# An exception longer than this is the end of a series, not an exception.
MAX_EXCEPTION_DAYS = 366
_EDITABLE = ("title", "start", "duration_min", "rrule", "until", "caregiver_ids", "notes")


class InputError(ValueError):
    """A change that cannot be made; ``field`` names the input at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def local_start(value: dt.datetime, tz_name: str, field: str = "start") -> dt.datetime:
    """``value`` as the naive local wall-clock time it must be (whole minutes)."""
    if value.tzinfo is not None:
        raise InputError(
            field,
            f"give the local time without a UTC offset (the beneficiary's time zone, "
            f"{tz_name}, applies)",
        )
    return value.replace(second=0, microsecond=0)


def checked_rule(rule: str | None, start: dt.datetime, tz_name: str) -> str | None:
    """The canonical RRULE for ``rule`` starting at ``start``; None for a one-off."""
    if rule is None or not rule.strip():
        return None
    try:
        text = normalize_rrule(rule, zone(tz_name))
        parse_rrule(text, start)
    except RecurrenceError as exc:
        raise InputError(exc.field, exc.reason) from None
    return text


def _duration(minutes: int) -> int:
    if not 1 <= minutes <= MAX_MINUTES:
        raise InputError("duration_min", f"must be 1..{MAX_MINUTES} minutes, got {minutes}")
    return minutes


def checked_caregivers(
    session: Session, beneficiary_id: int, ids: list[int], user: User
) -> list[int]:
    """The caregivers taking part: active users assigned to the beneficiary."""
    if not ids:
        # A caregiver making an appointment is the one who calls, unless they say otherwise.
        return [user.id] if user.role == Role.CAREGIVER.value else []
    assigned = assigned_user_ids(session, beneficiary_id)
    seen: list[int] = []
    for i, uid in enumerate(ids):
        person = session.get(User, uid)
        if person is None or not person.is_active:
            raise InputError(f"caregiver_ids[{i}]", f"no active user with id {uid}")
        if uid not in assigned:
            raise InputError(
                f"caregiver_ids[{i}]", f"user {uid} is not assigned to beneficiary {beneficiary_id}"
            )
        if uid not in seen:
            seen.append(uid)
    return seen


def snapshot(a: Appointment) -> dict[str, Any]:
    """What the audit log keeps of an appointment."""
    return {
        "beneficiary_id": a.beneficiary_id,
        "title": a.title,
        "start": a.start_local.isoformat(),
        "duration_min": a.duration_min,
        "rrule": a.rrule,
        "until": a.until.isoformat() if a.until else None,
        "caregiver_ids": a.caregiver_ids,
    }


def series(a: Appointment) -> Series:
    """The appointment as the expansion takes it."""
    return Series(
        id=str(a.id),
        start=a.start_local,
        duration=dt.timedelta(minutes=a.duration_min),
        rrule=a.rrule,
        until=a.until,
    )


def _set_caregivers(appointment: Appointment, ids: list[int]) -> None:
    appointment.caregivers = [AppointmentCaregiver(user_id=uid) for uid in ids]


def create_appointment(
    session: Session,
    *,
    person: Beneficiary,
    user: User,
    start: dt.datetime,
    duration_min: int,
    title: str = "",
    rrule: str | None = None,
    until: dt.date | None = None,
    caregiver_ids: list[int] | None = None,
    notes: str = "",
) -> Appointment:
    """Add an appointment for ``person``."""
    begin = local_start(start, person.timezone)
    rule = checked_rule(rrule, begin, person.timezone)
    if until is not None and until < begin.date():
        raise InputError("until", "before the first occurrence")
    appointment = Appointment(
        beneficiary_id=person.id,
        title=title,
        start_local=begin,
        duration_min=_duration(duration_min),
        rrule=rule,
        until=until,
        notes=notes,
        created_by=user.id,
    )
    _set_caregivers(appointment, checked_caregivers(session, person.id, caregiver_ids or [], user))
    session.add(appointment)
    session.flush()
    audit.record(
        session,
        action="appointment.create",
        object_type="appointment",
        object_id=appointment.id,
        actor=user,
        data=snapshot(appointment),
    )
    return appointment


def update_appointment(
    session: Session,
    *,
    appointment: Appointment,
    person: Beneficiary,
    user: User,
    changes: Mapping[str, Any],
    effective_from: dt.date | None = None,
) -> tuple[Appointment, bool]:
    """Change an appointment, or its occurrences from ``effective_from`` on.

    From a day after its first occurrence the series is split: the old one ends the day
    before, a new one (``previous_id`` pointing back) carries the change. Returns the
    appointment now carrying the change and whether it was split.
    """
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise InputError(sorted(unknown)[0], "cannot be changed")
    before = snapshot(appointment)
    split = effective_from is not None and effective_from > appointment.start_local.date()
    target = appointment
    if split:
        assert effective_from is not None
        target = _split(appointment, changes, effective_from, person.timezone)
    start = target.start_local
    if "start" in changes:
        if changes["start"] is None:
            raise InputError("start", "may not be null")
        start = local_start(changes["start"], person.timezone)
        if split and effective_from is not None and start.date() < effective_from:
            raise InputError("start", "before effective_from")
    rule = changes["rrule"] if "rrule" in changes else target.rrule
    rule = checked_rule(rule, start, person.timezone)
    until = changes["until"] if "until" in changes else target.until
    if until is not None and until < start.date():
        raise InputError("until", "before the first occurrence")
    for name in ("title", "duration_min", "notes"):
        if name in changes:
            if changes[name] is None:
                raise InputError(name, "may not be null")
            setattr(target, name, changes[name])
    target.duration_min = _duration(target.duration_min)
    target.start_local, target.rrule, target.until = start, rule, until
    if "caregiver_ids" in changes:
        ids = checked_caregivers(session, person.id, list(changes["caregiver_ids"] or []), user)
        _set_caregivers(target, ids)
    target.updated_at = utcnow()
    if split:
        session.add(target)
    session.flush()
    audit.record(
        session,
        action="appointment.split" if split else "appointment.update",
        object_type="appointment",
        object_id=appointment.id,
        actor=user,
        data={
            "before": before,
            "after": snapshot(target),
            "effective_from": effective_from.isoformat() if effective_from else None,
            "new_id": target.id if split else None,
        },
    )
    return target, split


def _split(old: Appointment, changes: Mapping[str, Any], day: dt.date, tz_name: str) -> Appointment:
    if old.rrule is None:
        raise InputError(
            "effective_from",
            f"this one-off appointment is on {old.start_local.date()}, before effective_from",
        )
    if old.until is not None and day > old.until:
        raise InputError("effective_from", f"the series already ends on {old.until}")
    if "COUNT=" in old.rrule and "rrule" not in changes:
        raise InputError(
            "effective_from", "the series ends after a COUNT of occurrences; give the new rrule"
        )
    if changes.get("start") is not None:
        start = local_start(changes["start"], tz_name)
    else:
        found = first_on_or_after(series(old), day)
        if found is None:
            raise InputError("effective_from", f"no occurrence on or after {day}")
        start = found
    new = Appointment(
        beneficiary_id=old.beneficiary_id,
        title=old.title,
        start_local=start,
        duration_min=old.duration_min,
        rrule=old.rrule,
        until=old.until,
        notes=old.notes,
        previous_id=old.id,
        created_by=old.created_by,
    )
    _set_caregivers(new, old.caregiver_ids)
    old.until = day - dt.timedelta(days=1)
    old.updated_at = utcnow()
    return new


def remove_appointment(
    session: Session, *, appointment: Appointment, user: User, from_day: dt.date | None = None
) -> str:
    """Delete an appointment, or end its series before ``from_day``; returns the audit action."""
    data = {**snapshot(appointment), "from": from_day.isoformat() if from_day else None}
    appointment_id = appointment.id
    if from_day is not None and from_day > appointment.start_local.date():
        appointment.until = min(appointment.until or dt.date.max, from_day - dt.timedelta(days=1))
        appointment.updated_at = utcnow()
        action = "appointment.end"
    else:
        session.delete(appointment)
        action = "appointment.delete"
    session.flush()
    audit.record(
        session,
        action=action,
        object_type="appointment",
        object_id=appointment_id,
        actor=user,
        data=data,
    )
    return action


def add_exception(
    session: Session,
    *,
    person: Beneficiary,
    user: User,
    first_day: dt.date,
    last_day: dt.date | None = None,
    reason: str = "",
    appointment_id: int | None = None,
) -> ScheduleException:
    """No appointments (or none of one series) on these days: a holiday, a hospital stay."""
    last = last_day or first_day
    if last < first_day:
        raise InputError("last_day", "before first_day")
    if (last - first_day).days > MAX_EXCEPTION_DAYS:
        raise InputError("last_day", "an exception lasts a year at most; end the series instead")
    if appointment_id is not None:
        target = session.get(Appointment, appointment_id)
        if target is None or target.beneficiary_id != person.id:
            raise InputError(
                "appointment_id", f"no appointment {appointment_id} for this beneficiary"
            )
    row = ScheduleException(
        beneficiary_id=person.id,
        appointment_id=appointment_id,
        first_day=first_day,
        last_day=last,
        reason=reason,
        created_by=user.id,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        action="schedule_exception.create",
        object_type="schedule_exception",
        object_id=row.id,
        actor=user,
        data={
            "beneficiary_id": person.id,
            "appointment_id": appointment_id,
            "first_day": row.first_day.isoformat(),
            "last_day": row.last_day.isoformat(),
            "reason": row.reason,
        },
    )
    return row


def remove_exception(session: Session, *, row: ScheduleException, user: User) -> None:
    """Those days have their appointments again."""
    data = {
        "beneficiary_id": row.beneficiary_id,
        "first_day": row.first_day.isoformat(),
        "last_day": row.last_day.isoformat(),
        "reason": row.reason,
    }
    exception_id = row.id
    session.delete(row)
    session.flush()
    audit.record(
        session,
        action="schedule_exception.delete",
        object_type="schedule_exception",
        object_id=exception_id,
        actor=user,
        data=data,
    )
