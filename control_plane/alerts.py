"""Alerts: open once per key, acknowledge, resolve when the condition clears, notify.

Features decide *when* (offline, missed wake, failing disk, ...); this module makes the life of
an alert the same for all of them. Notifiers are called after a new alert is opened; they are
pluggable (e-mail, webhook) and a failing notifier never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import utcnow
from .models import Alert, AlertStatus, User

log = logging.getLogger(__name__)

Notifier = Callable[[Alert], None]
_notifiers: list[Notifier] = []


def add_notifier(notifier: Notifier) -> None:
    """Call ``notifier`` for every newly opened alert (after it is flushed)."""
    _notifiers.append(notifier)


def remove_notifier(notifier: Notifier) -> None:
    """Stop calling ``notifier``."""
    if notifier in _notifiers:
        _notifiers.remove(notifier)


def current(session: Session, key: str) -> Alert | None:
    """The open or acknowledged alert with ``key``, if any."""
    return session.execute(
        select(Alert)
        .where(Alert.key == key, Alert.status != AlertStatus.RESOLVED.value)
        .order_by(Alert.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def raise_alert(
    session: Session,
    *,
    key: str,
    kind: str,
    severity: str,
    message: str,
    device_id: str | None = None,
    beneficiary_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[Alert, bool]:
    """Open the alert ``key`` unless it is already open; returns (alert, newly_opened)."""
    existing = current(session, key)
    if existing is not None:
        return existing, False
    alert = Alert(
        key=key,
        kind=kind,
        severity=severity,
        message=message,
        device_id=device_id,
        beneficiary_id=beneficiary_id,
        data=data or {},
        opened_at=utcnow(),
    )
    session.add(alert)
    session.flush()
    for notify in list(_notifiers):
        try:
            notify(alert)
        except Exception:
            log.exception("alert notifier %r failed for %s", notify, key)
    return alert, True


def resolve(session: Session, key: str) -> Alert | None:
    """Resolve the alert ``key`` if it is open; the condition has cleared."""
    alert = current(session, key)
    if alert is not None:
        alert.status = AlertStatus.RESOLVED.value
        alert.resolved_at = utcnow()
    return alert


def acknowledge(session: Session, alert: Alert, user: User) -> None:
    """A person has seen the alert and is on it."""
    if alert.status == AlertStatus.OPEN.value:
        alert.status = AlertStatus.ACKNOWLEDGED.value
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = user.id
