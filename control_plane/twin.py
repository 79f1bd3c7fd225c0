"""The desired side of each device's twin: sections owned by features, one retained message.

A feature sets its section (``schedule``, ``telemetry``, ``vpn``, ``call``) in the database;
the version goes up; after the commit the whole desired state is published retained on
``dev/{id}/twin/desired``. Sections are validated against the contract before they are stored,
so a device never receives something it must refuse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge import protocol as p

from .models import Device

log = logging.getLogger(__name__)

SECTIONS = ("schedule", "telemetry", "vpn", "call")


class TwinError(ValueError):
    """A desired section does not satisfy the contract."""


def build_desired(device: Device, now: float | None = None) -> p.TwinDesired:
    """The contract message for a device's stored desired state."""
    body: dict[str, Any] = {
        "v": 1,
        "ts": now if now is not None else p.now(),
        "version": device.desired_version,
    }
    body.update({k: v for k, v in (device.desired or {}).items() if v is not None})
    try:
        return msgspec.convert(body, p.TwinDesired)
    except msgspec.ValidationError as exc:
        raise TwinError(str(exc)) from exc


def set_section(session: Session, device: Device, name: str, value: dict[str, Any] | None) -> int:
    """Replace one section (None removes it); validates and bumps the version. No publish."""
    if name not in SECTIONS:
        raise TwinError(f"section: unknown section {name!r}")
    desired = dict(device.desired or {})
    if value is None:
        desired.pop(name, None)
    else:
        desired[name] = value
    candidate = Device(id=device.id, desired=desired, desired_version=device.desired_version + 1)
    build_desired(candidate)  # raises TwinError naming the field
    device.desired = desired
    device.desired_version += 1
    session.flush()
    return device.desired_version


class TwinPublisher:
    """Publishes desired twins through the control plane's MQTT service."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        mqtt: Any | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._factory = factory
        self._mqtt = mqtt
        self._loop = loop

    async def publish(self, device_ids: Iterable[str]) -> int:
        """Publish the desired twin of each device (retained); returns how many."""
        if self._mqtt is None:
            return 0
        ids = list(device_ids)
        messages = await asyncio.to_thread(self._load, ids)
        for device_id, payload in messages:
            await self._mqtt.publish(
                p.topic(p.TopicKind.TWIN_DESIRED, device_id), payload, retain=True
            )
        return len(messages)

    async def publish_all(self) -> int:
        """Re-publish every device's desired twin (after a broker restart lost retained state)."""
        ids = await asyncio.to_thread(self._all_ids)
        return await self.publish(ids)

    async def republish(self) -> None:
        """On (re)connect: publish every twin again, logging what was done."""
        count = await self.publish_all()
        if count:
            log.info("re-published %d desired twins", count)

    def publish_sync(self, device_ids: Iterable[str], timeout: float = 10.0) -> int:
        """From a worker thread (sync route): publish and wait; 0 when MQTT is off or down."""
        if self._mqtt is None or self._loop is None:
            return 0
        future = asyncio.run_coroutine_threadsafe(self.publish(list(device_ids)), self._loop)
        try:
            return future.result(timeout)
        except Exception as exc:  # the broker is down: it is re-published on reconnect
            log.warning("desired twin not published now (%s); will be on reconnect", exc)
            return 0

    def _load(self, ids: list[str]) -> list[tuple[str, bytes]]:
        out = []
        with self._factory() as session:
            for device in session.execute(select(Device).where(Device.id.in_(ids))).scalars():
                if device.revoked_at is None and device.desired_version > 0:
                    out.append((device.id, p.encode(build_desired(device))))
        return out

    def _all_ids(self) -> list[str]:
        with self._factory() as session:
            return list(
                session.execute(
                    select(Device.id).where(Device.revoked_at.is_(None), Device.desired_version > 0)
                ).scalars()
            )
