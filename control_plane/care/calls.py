"""Call records: open one (permission, device, lock), record its progress, finish it.

Synchronous database functions, run off the event loop by the relay. Every start and every
end goes to the audit log, refused attempts included.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..db import utcnow
from ..models import Beneficiary, Device, User
from .access import AccessDenied, beneficiary_for, is_assigned
from .agenda import note_call_connected
from .models import ACTIVE_STATUSES, Call, CallLock, CallStatus, EndReason
from .signalling import END_MESSAGES

log = logging.getLogger(__name__)

# A lock whose holder has not refreshed it for this long belongs to a dead replica.
LOCK_STALE_S = 30.0


class CallRefused(Exception):
    """The call cannot start; ``reason`` says why (offline, busy...)."""

    def __init__(self, reason: EndReason, detail: str = "", call_id: int | None = None) -> None:
        super().__init__(f"{reason.value}: {detail or END_MESSAGES[reason.value]}")
        self.reason = reason
        self.detail = detail
        self.call_id = call_id


@dataclass(frozen=True)
class OpenedCall:
    """What the relay needs to run a call, copied out of the session."""

    call_id: int
    session: str
    device_id: str
    beneficiary_id: int
    beneficiary_name: str
    caller_id: int
    caller_name: str
    assigned: bool


def new_session_id() -> str:
    """A call session id: unguessable, safe in topics payloads and logs."""
    return "call-" + secrets.token_hex(12)


def open_call(
    session: Session,
    *,
    user: User,
    beneficiary_id: int,
    replica: str,
    now: dt.datetime | None = None,
) -> OpenedCall:
    """Check who may call whom, take the device's call lock and create the call record.

    Raises AccessDenied (no call record) or CallRefused (a failed call record is kept, so the
    attempt shows in the person's history). The caller commits.
    """
    now = now or utcnow()
    try:
        beneficiary = beneficiary_for(session, user, beneficiary_id)
    except AccessDenied:
        audit.record(
            session,
            action="call.denied",
            object_type="beneficiary",
            object_id=beneficiary_id,
            actor=user,
        )
        raise
    call = Call(
        session=new_session_id(),
        beneficiary_id=beneficiary.id,
        device_id=beneficiary.device_id,
        caller_id=user.id,
        status=CallStatus.SETUP.value,
        replica=replica,
        started_at=now,
    )
    session.add(call)
    session.flush()
    audit.record(
        session,
        action="call.start",
        object_type="call",
        object_id=call.id,
        actor=user,
        data={"beneficiary_id": beneficiary.id, "device_id": beneficiary.device_id},
    )
    device = session.get(Device, beneficiary.device_id) if beneficiary.device_id else None
    if device is None or device.revoked_at is not None:
        _refuse(session, call, user, EndReason.OFFLINE, "no PC is installed for this person", now)
    assert device is not None
    if not device.online:
        _refuse(session, call, user, EndReason.OFFLINE, "", now)
    if not _take_lock(session, device.id, call.id, now):
        _refuse(session, call, user, EndReason.BUSY, "", now)
    return OpenedCall(
        call_id=call.id,
        session=call.session,
        device_id=device.id,
        beneficiary_id=beneficiary.id,
        beneficiary_name=beneficiary.name,
        caller_id=user.id,
        caller_name=user.name,
        assigned=is_assigned(session, user, beneficiary.id),
    )


def _refuse(
    session: Session, call: Call, user: User, reason: EndReason, detail: str, now: dt.datetime
) -> None:
    _mark_ended(session, call, reason, detail, now)
    audit.record(
        session,
        action="call.end",
        object_type="call",
        object_id=call.id,
        actor=user,
        data={"reason": reason.value},
    )
    raise CallRefused(reason, detail, call.id)


def _take_lock(session: Session, device_id: str, call_id: int, now: dt.datetime) -> bool:
    try:
        with session.begin_nested():
            session.add(CallLock(device_id=device_id, call_id=call_id, heartbeat_at=now))
            session.flush()
        return True
    except IntegrityError:
        pass
    # Someone holds it: take it over only if its holder stopped refreshing it.
    stale = now - dt.timedelta(seconds=LOCK_STALE_S)
    taken = session.execute(
        update(CallLock)
        .where(CallLock.device_id == device_id, CallLock.heartbeat_at < stale)
        .values(call_id=call_id, heartbeat_at=now)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        _fail_orphans(session, device_id, call_id, now)
        return True
    return False


def _fail_orphans(session: Session, device_id: str, keep: int, now: dt.datetime) -> None:
    # Calls left "active" by a replica that died: they ended, we just never heard how.
    orphans = session.execute(
        select(Call).where(
            Call.device_id == device_id, Call.status.in_(ACTIVE_STATUSES), Call.id != keep
        )
    ).scalars()
    for orphan in orphans:
        _mark_ended(session, orphan, EndReason.DROPPED, "the control plane lost this call", now)


def _mark_ended(
    session: Session, call: Call, reason: EndReason, detail: str, now: dt.datetime
) -> None:
    took_place = call.status == CallStatus.CONNECTED.value
    call.status = (CallStatus.ENDED if took_place else CallStatus.FAILED).value
    call.end_reason = reason.value
    call.end_message = detail[:1000]
    call.ended_at = now
    session.flush()


def record(session: Session, call_id: int, changes: dict[str, Any], now: dt.datetime) -> None:
    """Apply what the signalling learnt (status, answered, stats) to the call record."""
    call = session.get(Call, call_id)
    if call is None or call.status not in ACTIVE_STATUSES:
        return
    status = changes.get("status")
    if status == CallStatus.RINGING.value and call.status == CallStatus.SETUP.value:
        call.status = status
    elif status == CallStatus.CONNECTED.value:
        call.status = status
        if call.connected_at is None and call.device_id is not None:
            try:
                with session.begin_nested():
                    note_call_connected(session, call.device_id, now)
            except Exception:  # the schedules' bookkeeping must never fail a call
                log.exception("schedules: recording call %d failed", call.id)
        call.connected_at = call.connected_at or now
    if changes.get("answered"):
        call.answered_at = call.answered_at or now
        call.auto_answered = bool(changes.get("auto_answered"))
    for column in ("stats_browser", "stats_device"):
        if column in changes:
            setattr(call, column, {**(getattr(call, column) or {}), **changes[column]})


def finish(
    session: Session,
    call_id: int,
    reason: EndReason,
    detail: str,
    *,
    actor: User | str | None,
    now: dt.datetime | None = None,
) -> None:
    """The call is over: mark it, release the device, audit it. Idempotent."""
    now = now or utcnow()
    call = session.get(Call, call_id)
    if call is None:
        return
    if call.status in ACTIVE_STATUSES:
        _mark_ended(session, call, reason, detail, now)
        audit.record(
            session,
            action="call.end",
            object_type="call",
            object_id=call.id,
            actor=actor,
            data={"reason": reason.value, "status": call.status},
        )
    session.execute(delete(CallLock).where(CallLock.call_id == call_id))


def heartbeat(session: Session, call_ids: list[int], now: dt.datetime) -> None:
    """Keep this replica's locks fresh."""
    if call_ids:
        session.execute(
            update(CallLock).where(CallLock.call_id.in_(call_ids)).values(heartbeat_at=now)
        )


def offline_devices(session: Session, device_ids: list[str]) -> set[str]:
    """Which of ``device_ids`` are offline (or revoked) now."""
    if not device_ids:
        return set()
    rows = session.execute(
        select(Device.id, Device.online, Device.revoked_at).where(Device.id.in_(device_ids))
    ).all()
    seen = {r.id for r in rows}
    return {r.id for r in rows if not r.online or r.revoked_at is not None} | (
        set(device_ids) - seen
    )


def beneficiary_of_call(session: Session, call_id: int) -> Beneficiary | None:
    """The beneficiary a call was made to."""
    call = session.get(Call, call_id)
    return None if call is None else session.get(Beneficiary, call.beneficiary_id)


def devices_in_a_call(session: Session, device_ids: Sequence[str]) -> set[str]:
    """Which of ``device_ids`` hold a live call lock: the jobs' maintenance-window busy check."""
    if not device_ids:
        return set()
    fresh = utcnow() - dt.timedelta(seconds=LOCK_STALE_S)
    return set(
        session.execute(
            select(CallLock.device_id).where(
                CallLock.device_id.in_(list(device_ids)), CallLock.heartbeat_at > fresh
            )
        ).scalars()
    )
