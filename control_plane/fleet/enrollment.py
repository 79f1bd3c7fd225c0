"""Single-use, expiring enrollment tokens exchanged for a device identity and credentials."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from edge.protocol import ProtocolError, validate_device_id

from ..config import Settings
from ..db import utcnow
from ..devices import create_device
from ..models import Device, User
from ..security import new_token, token_hash
from .models import EnrollmentToken


class EnrollmentRefused(ValueError):
    """The token can't be used; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Enrolled:
    """What a freshly enrolled device needs to write its configuration."""

    device_id: str
    mqtt_host: str
    mqtt_port: int
    mqtt_password: str
    tls_ca_pem: str | None


def create_token(
    session: Session,
    settings: Settings,
    *,
    user: User,
    device_id: str | None = None,
    name: str = "",
    group: str = "",
    ttl_minutes: int | None = None,
) -> tuple[EnrollmentToken, str]:
    """A new token for ``device_id`` (generated when omitted); returns it and its secret."""
    device_id = device_id or f"pc-{secrets.token_hex(4)}"
    try:
        validate_device_id(device_id)
    except ProtocolError as exc:
        raise ValueError(f"device_id: {exc.reason}") from exc
    if device_id == settings.mqtt_username:
        raise ValueError("device_id: reserved for the control plane")
    if session.get(Device, device_id) is not None:
        raise ValueError(f"device_id: {device_id} is already enrolled")
    pending = session.execute(
        select(EnrollmentToken).where(EnrollmentToken.device_id == device_id)
    ).scalar_one_or_none()
    if pending is not None:
        if pending.used_at is None and pending.expires_at > utcnow():
            raise ValueError(f"device_id: {device_id} already has a pending enrollment token")
        session.delete(pending)
        session.flush()
    ttl = ttl_minutes or settings.enrollment_token_ttl_minutes
    secret = new_token()
    while secret.startswith("-"):
        # Typed as "--token <secret>": a leading dash would read as an option.
        secret = new_token()
    token = EnrollmentToken(
        token_hash=token_hash(secret),
        device_id=device_id,
        name=name,
        group=group,
        created_by=user.id,
        expires_at=utcnow() + dt.timedelta(minutes=ttl),
    )
    session.add(token)
    session.flush()
    return token, secret


def enroll(session: Session, settings: Settings, *, secret: str) -> Enrolled:
    """Consume the token (atomically, once) and register the device."""
    hashed = token_hash(secret)
    now = utcnow()
    # A conditional UPDATE claims the token: two racing enrollments can't both win.
    claimed = session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.token_hash == hashed,
            EnrollmentToken.used_at.is_(None),
            EnrollmentToken.expires_at > now,
        )
        .values(used_at=now)
    )
    token = session.execute(
        select(EnrollmentToken).where(EnrollmentToken.token_hash == hashed)
    ).scalar_one_or_none()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        if token is None:
            raise EnrollmentRefused(401, "token: not a valid enrollment token")
        if token.used_at is not None:
            raise EnrollmentRefused(410, "token: already used; ask for a new one")
        raise EnrollmentRefused(410, "token: expired; ask for a new one")
    assert token is not None
    try:
        device, password = create_device(
            session, settings, device_id=token.device_id, name=token.name, group=token.group
        )
    except ValueError as exc:  # registered by hand since the token was made
        raise EnrollmentRefused(409, f"token: {exc}") from exc
    ca = settings.device_mqtt_tls_ca
    return Enrolled(
        device_id=device.id,
        mqtt_host=settings.device_mqtt_host or settings.mqtt_host,
        mqtt_port=settings.device_mqtt_port or settings.mqtt_port,
        mqtt_password=password,
        tls_ca_pem=ca.read_text() if ca is not None else None,
    )
