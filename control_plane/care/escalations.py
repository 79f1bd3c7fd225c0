"""Outcomes and escalations: what the caregiver found, and who follows it up.

An outcome is "all well" (the next appointment stands) or "problem", with a note and one or
more escalations. Each escalation has an owner, a status (open → taken → closed) and a
timeline of notes and notifications. Emergency escalations are urgent: they open an urgent
alert at once and are notified again until someone takes them — never left in a queue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import alerts, audit
from ..db import utcnow
from ..models import Role, User
from .access import SEE_ALL
from .models import (
    TARGET_CONTACTS,
    Call,
    Contact,
    Escalation,
    EscalationEvent,
    EscalationStatus,
    Outcome,
    OutcomeKind,
    Target,
)


@dataclass(frozen=True)
class EscalationRequest:
    """One escalation asked for with an outcome."""

    target: Target
    summary: str = ""
    urgent: bool = False


def alert_key(escalation_id: int) -> str:
    """The key of an urgent escalation's alert."""
    return f"escalation:{escalation_id}"


def event(
    session: Session,
    escalation: Escalation,
    kind: str,
    text: str = "",
    *,
    actor: User | None = None,
    data: dict[str, object] | None = None,
    now: dt.datetime | None = None,
) -> EscalationEvent:
    """Add one line to an escalation's timeline."""
    now = now or utcnow()
    entry = EscalationEvent(
        escalation_id=escalation.id,
        kind=kind,
        text=text[:4000],
        actor_id=actor.id if actor else None,
        data=dict(data or {}),
        at=now,
    )
    session.add(entry)
    escalation.updated_at = now
    return entry


def record_outcome(
    session: Session,
    *,
    user: User,
    beneficiary_id: int,
    kind: OutcomeKind,
    note: str = "",
    call_id: int | None = None,
    missed: bool = False,
    escalations: list[EscalationRequest] | None = None,
    now: dt.datetime | None = None,
) -> tuple[Outcome, list[Escalation]]:
    """Store an outcome and open its escalations (HTTP errors name the field)."""
    now = now or utcnow()
    requests = escalations or []
    if kind is OutcomeKind.WELL and requests:
        raise HTTPException(422, "escalations: an 'all well' outcome has no escalations")
    if kind is OutcomeKind.PROBLEM and not note.strip():
        raise HTTPException(422, "note: say in a few words what the problem is")
    if call_id is not None:
        call = session.get(Call, call_id)
        if call is None or call.beneficiary_id != beneficiary_id:
            raise HTTPException(404, f"call_id: no call {call_id} to this beneficiary")
        if session.execute(select(Outcome.id).where(Outcome.call_id == call_id)).first():
            raise HTTPException(409, f"call_id: call {call_id} already has an outcome")
        missed = missed or call.status != "ended"
    outcome = Outcome(
        beneficiary_id=beneficiary_id,
        call_id=call_id,
        kind=kind.value,
        note=note.strip()[:4000],
        missed=missed,
        recorded_by=user.id,
        recorded_at=now,
    )
    session.add(outcome)
    session.flush()
    audit.record(
        session,
        action="outcome.record",
        object_type="outcome",
        object_id=outcome.id,
        actor=user,
        data={"beneficiary_id": beneficiary_id, "kind": kind.value, "call_id": call_id},
    )
    opened = [
        open_escalation(
            session, user=user, beneficiary_id=beneficiary_id, request=r, outcome=outcome, now=now
        )
        for r in requests
    ]
    return outcome, opened


def open_escalation(
    session: Session,
    *,
    user: User,
    beneficiary_id: int,
    request: EscalationRequest,
    outcome: Outcome | None = None,
    now: dt.datetime | None = None,
) -> Escalation:
    """Open one escalation; an emergency one is urgent and raises an urgent alert at once."""
    now = now or utcnow()
    urgent = request.urgent or request.target is Target.EMERGENCY
    summary = (request.summary or (outcome.note if outcome else "")).strip()[:4000]
    escalation = Escalation(
        beneficiary_id=beneficiary_id,
        outcome_id=outcome.id if outcome else None,
        target=request.target.value,
        urgent=urgent,
        summary=summary,
        created_by=user.id,
        created_at=now,
        updated_at=now,
    )
    session.add(escalation)
    session.flush()
    contacts = contacts_for(session, beneficiary_id, request.target)
    event(
        session,
        escalation,
        "created",
        summary,
        actor=user,
        data={"contacts": [c.id for c in contacts], "urgent": urgent},
        now=now,
    )
    audit.record(
        session,
        action="escalation.create",
        object_type="escalation",
        object_id=escalation.id,
        actor=user,
        data={"target": escalation.target, "urgent": urgent, "beneficiary_id": beneficiary_id},
    )
    if urgent:
        alerts.raise_alert(
            session,
            key=alert_key(escalation.id),
            kind="escalation",
            severity="urgent",
            message=f"Urgent escalation ({escalation.target}): {summary[:200]}",
            beneficiary_id=beneficiary_id,
            data={"escalation_id": escalation.id},
        )
    return escalation


def contacts_for(session: Session, beneficiary_id: int, target: Target) -> list[Contact]:
    """The contact-sheet entries an escalation to ``target`` draws on."""
    kinds = TARGET_CONTACTS[target.value]
    return list(
        session.execute(
            select(Contact)
            .where(Contact.beneficiary_id == beneficiary_id, Contact.kind.in_(kinds))
            .order_by(Contact.id)
        ).scalars()
    )


def _may_handle(user: User) -> None:
    if user.role not in SEE_ALL:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not handle escalations"
        )


def take(session: Session, escalation: Escalation, user: User) -> None:
    """``user`` takes the escalation on: they own it from now."""
    _may_handle(user)
    if escalation.status == EscalationStatus.CLOSED.value:
        raise HTTPException(409, "status: the escalation is closed")
    now = utcnow()
    previous = escalation.owner_id
    escalation.owner_id = user.id
    escalation.status = EscalationStatus.TAKEN.value
    escalation.taken_at = escalation.taken_at or now
    event(session, escalation, "taken", actor=user, data={"previous_owner": previous}, now=now)
    audit.record(
        session,
        action="escalation.take",
        object_type="escalation",
        object_id=escalation.id,
        actor=user,
    )
    if escalation.urgent:
        alerts.resolve(session, alert_key(escalation.id))


def assign(session: Session, escalation: Escalation, owner: User, user: User) -> None:
    """Hand the escalation to ``owner`` (a coordinator or administrator)."""
    _may_handle(user)
    if owner.role not in SEE_ALL or not owner.is_active:
        raise HTTPException(422, "owner_id: the owner must be an active coordinator")
    if escalation.status == EscalationStatus.CLOSED.value:
        raise HTTPException(409, "status: the escalation is closed")
    escalation.owner_id = owner.id
    escalation.status = EscalationStatus.TAKEN.value
    escalation.taken_at = escalation.taken_at or utcnow()
    event(session, escalation, "assigned", owner.name, actor=user, data={"owner_id": owner.id})
    audit.record(
        session,
        action="escalation.assign",
        object_type="escalation",
        object_id=escalation.id,
        actor=user,
        data={"owner_id": owner.id},
    )
    if escalation.urgent:
        alerts.resolve(session, alert_key(escalation.id))


def add_note(session: Session, escalation: Escalation, user: User, text: str) -> EscalationEvent:
    """A note on the timeline (the caregiver who escalated may add notes too)."""
    if not text.strip():
        raise HTTPException(422, "text: the note is empty")
    if user.role not in SEE_ALL and user.id != escalation.created_by:
        raise HTTPException(403, "you may add notes only to escalations you opened")
    entry = event(session, escalation, "note", text.strip(), actor=user)
    audit.record(
        session,
        action="escalation.note",
        object_type="escalation",
        object_id=escalation.id,
        actor=user,
    )
    return entry


def close(session: Session, escalation: Escalation, user: User, note: str = "") -> None:
    """Close the escalation, with what was done."""
    _may_handle(user)
    if escalation.status == EscalationStatus.CLOSED.value:
        return
    now = utcnow()
    escalation.status = EscalationStatus.CLOSED.value
    escalation.closed_at = now
    escalation.owner_id = escalation.owner_id or user.id
    event(session, escalation, "closed", note.strip(), actor=user, now=now)
    audit.record(
        session,
        action="escalation.close",
        object_type="escalation",
        object_id=escalation.id,
        actor=user,
    )
    if escalation.urgent:
        alerts.resolve(session, alert_key(escalation.id))


def coordinators(session: Session) -> list[User]:
    """Active coordinators (the owners escalations may be handed to)."""
    return list(
        session.execute(
            select(User)
            .where(User.role == Role.COORDINATOR.value, User.is_active.is_(True))
            .order_by(User.name)
        ).scalars()
    )


def due_for_reminder(session: Session, now: dt.datetime, interval_s: float) -> list[int]:
    """Urgent escalations nobody has taken, last notified ``interval_s`` or more ago."""
    cutoff = now - dt.timedelta(seconds=interval_s)
    return list(
        session.execute(
            select(Escalation.id).where(
                Escalation.urgent.is_(True),
                Escalation.status == EscalationStatus.OPEN.value,
                # Never notified (no channel, delivery failing) counts from its creation.
                (Escalation.last_notified_at <= cutoff)
                | (Escalation.last_notified_at.is_(None) & (Escalation.created_at <= cutoff)),
            )
        ).scalars()
    )
