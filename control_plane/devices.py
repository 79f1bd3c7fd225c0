"""The device registry: adding devices, their broker credentials, revocation."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge.protocol import ProtocolError, validate_device_id

from .broker import BrokerFiles
from .config import Settings
from .db import utcnow
from .models import Device
from .security import mosquitto_hash, new_device_password

log = logging.getLogger(__name__)


class DeviceExists(ValueError):
    """A device with that id is already registered."""


def broker_files(settings: Settings) -> BrokerFiles | None:
    """The broker files this control plane manages, if configured."""
    if settings.broker_password_file is None or settings.broker_acl_file is None:
        return None
    return BrokerFiles(
        settings.broker_password_file, settings.broker_acl_file, settings.broker_pid_file
    )


def sync_broker(session: Session, settings: Settings) -> int:
    """Rewrite the broker's password and ACL files from the registry; returns the device count."""
    files = broker_files(settings)
    rows = session.execute(
        select(Device.id, Device.mqtt_password_hash).where(Device.revoked_at.is_(None))
    ).all()
    if files is None:
        return len(rows)
    files.write(
        settings.mqtt_username,
        mosquitto_hash(settings.mqtt_password),
        [(device_id, hashed) for device_id, hashed in rows],
    )
    log.info("broker credentials written for %d devices", len(rows))
    return len(rows)


def create_device(
    session: Session, settings: Settings, *, device_id: str, name: str = "", group: str = ""
) -> tuple[Device, str]:
    """Register a device; returns it and its MQTT password (shown once, stored hashed)."""
    try:
        validate_device_id(device_id)
    except ProtocolError as exc:
        raise ValueError(str(exc)) from exc
    if device_id == settings.mqtt_username:
        raise ValueError("device_id: reserved for the control plane")
    if session.get(Device, device_id) is not None:
        raise DeviceExists(f"device_id: {device_id} is already registered")
    password = new_device_password()
    device = Device(
        id=device_id, name=name, group=group, mqtt_password_hash=mosquitto_hash(password)
    )
    session.add(device)
    session.flush()
    sync_broker(session, settings)
    return device, password


def revoke_device(session: Session, settings: Settings, device: Device) -> None:
    """Take a device's broker credentials away (the broker then disconnects it)."""
    device.revoked_at = utcnow()
    # Its will may never be ingested (messages from revoked devices are refused): mark it
    # offline here so the fleet view tells the truth.
    device.online = False
    session.flush()
    sync_broker(session, settings)
