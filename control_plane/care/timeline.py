"""One beneficiary's history: calls, outcomes, escalations and missed wakes, newest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Alert, Beneficiary, User
from .models import Call, Escalation, Outcome

# The alert kinds of a missed wake (raised by the schedules feature).
MISSED_WAKE_KINDS = ("missed_wake",)


@dataclass(frozen=True)
class TimelineItem:
    """One line of the history."""

    at: dt.datetime
    kind: str  # call, outcome, escalation, missed_wake
    ref: int
    title: str
    detail: str = ""
    status: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.name).where(User.id.in_(wanted))).all())


def timeline(session: Session, beneficiary: Beneficiary, *, limit: int = 200) -> list[TimelineItem]:
    """Everything that happened to ``beneficiary``, newest first (at most ``limit`` per kind)."""
    calls = list(
        session.execute(
            select(Call)
            .where(Call.beneficiary_id == beneficiary.id)
            .order_by(Call.started_at.desc())
            .limit(limit)
        ).scalars()
    )
    outcomes = list(
        session.execute(
            select(Outcome)
            .where(Outcome.beneficiary_id == beneficiary.id)
            .order_by(Outcome.recorded_at.desc())
            .limit(limit)
        ).scalars()
    )
    escalations = list(
        session.execute(
            select(Escalation)
            .where(Escalation.beneficiary_id == beneficiary.id)
            .order_by(Escalation.created_at.desc())
            .limit(limit)
        ).scalars()
    )
    missed_filter = [Alert.beneficiary_id == beneficiary.id]
    if beneficiary.device_id:
        missed_filter.append(Alert.device_id == beneficiary.device_id)
    missed = list(
        session.execute(
            select(Alert)
            .where(Alert.kind.in_(MISSED_WAKE_KINDS), or_(*missed_filter))
            .order_by(Alert.opened_at.desc())
            .limit(limit)
        ).scalars()
    )
    names = _names(
        session,
        {c.caller_id for c in calls}
        | {o.recorded_by for o in outcomes}
        | {e.owner_id for e in escalations},
    )
    items: list[TimelineItem] = []
    for c in calls:
        items.append(
            TimelineItem(
                at=c.started_at,
                kind="call",
                ref=c.id,
                title=names.get(c.caller_id or 0, ""),
                detail=c.end_reason or "",
                status=c.status,
                data={
                    "duration_s": (
                        (c.ended_at - c.connected_at).total_seconds()
                        if c.ended_at and c.connected_at
                        else None
                    ),
                    "has_outcome": c.outcome is not None,
                },
            )
        )
    for o in outcomes:
        items.append(
            TimelineItem(
                at=o.recorded_at,
                kind="outcome",
                ref=o.id,
                title=names.get(o.recorded_by or 0, ""),
                detail=o.note,
                status=o.kind,
                data={"call_id": o.call_id, "missed": o.missed},
            )
        )
    for e in escalations:
        items.append(
            TimelineItem(
                at=e.created_at,
                kind="escalation",
                ref=e.id,
                title=e.target,
                detail=e.summary,
                status=e.status,
                data={"urgent": e.urgent, "owner": names.get(e.owner_id or 0, "")},
            )
        )
    for a in missed:
        items.append(
            TimelineItem(
                at=a.opened_at,
                kind="missed_wake",
                ref=a.id,
                title="",
                detail=a.message,
                status=a.status,
            )
        )
    items.sort(key=lambda i: i.at, reverse=True)
    return items
