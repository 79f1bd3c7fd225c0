"""The audit log: every change that matters to a person, recorded once."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .models import AuditEntry, User


def record(
    session: Session,
    *,
    action: str,
    object_type: str,
    object_id: str | int,
    actor: User | str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry in the caller's transaction."""
    if isinstance(actor, User):
        actor_id, actor_label = actor.id, f"user:{actor.id}"
    else:
        actor_id, actor_label = None, actor or "system"
    entry = AuditEntry(
        actor_id=actor_id,
        actor=actor_label,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        data=data or {},
    )
    session.add(entry)
    return entry
