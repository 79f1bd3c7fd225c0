"""The caregiver's day: their people, each PC's live state, today's and upcoming appointments.

Appointments come from the schedules feature when it is installed; without it the list is
the caregiver's beneficiaries and their devices only.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Beneficiary, Device, User
from .access import visible_beneficiary_ids
from .models import ACTIVE_STATUSES, Call

log = logging.getLogger(__name__)

# A call this close to an appointment counts as inside its window (as on the device).
WINDOW_SLACK = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Appointment:
    """One occurrence of an appointment."""

    start: dt.datetime
    end: dt.datetime
    title: str


@dataclass
class AgendaRow:
    """One person on the caregiver's list."""

    beneficiary_id: int
    name: str
    device_id: str | None
    online: bool
    in_call: bool
    in_window: bool
    appointments: list[Appointment] = field(default_factory=list)

    @property
    def next_start(self) -> dt.datetime | None:
        """When the next (or current) appointment starts."""
        return self.appointments[0].start if self.appointments else None

    @property
    def can_call(self) -> bool:
        """The Call button is enabled: a PC that is on and not already in a call."""
        return self.device_id is not None and self.online and not self.in_call


def _appointments(
    session: Session, people: list[Beneficiary], start: dt.datetime, end: dt.datetime
) -> dict[int, list[Appointment]] | None:
    try:
        from ..schedules.api import occurrences_for
    except ImportError:
        return None
    try:
        found = occurrences_for(session, people, start, end)
    except Exception as exc:  # a broken rule must not hide the caregiver's whole list
        log.warning("appointments not available: %s", exc)
        return None
    out: dict[int, list[Appointment]] = {}
    for occ in found:
        out.setdefault(occ.beneficiary_id, []).append(Appointment(occ.start, occ.end, occ.title))
    return out


def agenda(
    session: Session, user: User, now: dt.datetime, *, days: int = 7
) -> tuple[list[AgendaRow], bool]:
    """(rows, appointments known) for ``user``; rows sorted by the next appointment."""
    ids = visible_beneficiary_ids(session, user)
    query = select(Beneficiary).order_by(Beneficiary.name)
    if ids is not None:
        query = query.where(Beneficiary.id.in_(ids))
    people = list(session.execute(query).scalars())
    devices = {
        d.id: d
        for d in session.execute(
            select(Device).where(Device.id.in_([b.device_id for b in people if b.device_id]))
        ).scalars()
    }
    busy = set(
        session.execute(select(Call.device_id).where(Call.status.in_(ACTIVE_STATUSES))).scalars()
    )
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    appointments = _appointments(session, people, start_of_day, now + dt.timedelta(days=days))
    rows: list[AgendaRow] = []
    for b in people:
        device = devices.get(b.device_id or "")
        upcoming = [a for a in (appointments or {}).get(b.id, []) if a.end >= now - WINDOW_SLACK]
        rows.append(
            AgendaRow(
                beneficiary_id=b.id,
                name=b.name,
                device_id=device.id if device is not None else None,
                online=bool(device and device.online and device.revoked_at is None),
                in_call=bool(device and device.id in busy),
                in_window=any(
                    a.start - WINDOW_SLACK <= now <= a.end + WINDOW_SLACK for a in upcoming
                ),
                appointments=upcoming,
            )
        )
    far = now + dt.timedelta(days=3650)
    rows.sort(key=lambda r: (not r.in_window, r.next_start or far, r.name))
    return rows, appointments is not None


def note_call_connected(session: Session, device_id: str, at: dt.datetime) -> Any:
    """Tell the schedules feature a call reached the PC (its "no call" check), if installed."""
    try:
        from ..schedules.service import record_call
    except ImportError:
        return None
    return record_call(session, device_id, at)
