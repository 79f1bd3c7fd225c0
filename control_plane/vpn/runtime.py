"""After the commit: the hub follows the database, and changed twins are published.

Code that changes peers (the ingest handler, a revocation anywhere, the periodic catch-up)
marks its session; once that transaction commits, :class:`VpnRuntime` wakes a background task
that applies the hub's peers live and publishes the devices' desired twins. Nothing reaches
the hub or the broker from a transaction that rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session, object_session, sessionmaker

from ..db import transaction, utcnow
from ..models import Device
from .hub import HubDriver, HubError, plan_hub
from .models import VpnPeer
from .service import (
    check_handshakes,
    enroll_reported,
    hub_peers,
    known_keys,
    pending_rotations,
    record_hub_state,
    sync_desired,
)
from .settings import VpnSettings
from .uapi import PeerChange

log = logging.getLogger(__name__)

_PUBLISH = "vpn_publish"
_HUB = "vpn_hub"
_ROTATION_POLL_S = 0.2  # while a rotation is staged, look for the new key's handshake this often


def mark(session: Session, *, publish: Iterable[str] = (), hub: bool = True) -> None:
    """After this session commits: publish these devices' twins and/or re-sync the hub."""
    session.info.setdefault(_PUBLISH, set()).update(publish)
    if hub:
        session.info[_HUB] = True


def _on_revoked(target: Device, value: Any, _old: Any, _initiator: Any) -> None:
    # Whoever revokes a device (API, CLI, another feature), the hub drops its peer right after.
    session = object_session(target)
    if session is not None and value is not None:
        mark(session, hub=True)


def watch_revocations() -> None:
    """Listen for ``Device.revoked_at`` being set (once per process)."""
    if not event.contains(Device.revoked_at, "set", _on_revoked):
        event.listen(Device.revoked_at, "set", _on_revoked)


@dataclass
class HubSync:
    """What one hub synchronisation did."""

    changes: list[PeerChange] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    peers: int = 0
    error: str | None = None


class VpnRuntime:
    """The VPN's moving parts in a running app: hub driver, after-commit work, periodic tasks."""

    def __init__(
        self,
        settings: VpnSettings,
        factory: sessionmaker[Session],
        driver: HubDriver | None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.driver = driver
        self.last_sync: HubSync | None = None
        self._lock = threading.Lock()  # guards the pending work below
        self._hub_lock = threading.Lock()  # one hub change set at a time in this process
        self._publish: set[str] = set()
        self._hub_dirty = False
        self._rotations = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._twin: Any = None
        self._failing = False

    # -- wiring --------------------------------------------------------------------------------

    def attach(self, factory: sessionmaker[Session]) -> None:
        """Follow commits and rollbacks of sessions made by ``factory``."""
        event.listen(factory, "after_commit", self._after_commit)
        event.listen(factory, "after_rollback", self._after_rollback)
        watch_revocations()

    def _after_commit(self, session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint (ingest isolates each message in one): wait for the real commit
        publish = session.info.pop(_PUBLISH, set())
        hub = session.info.pop(_HUB, False)
        if publish or hub:
            self.request(publish=publish, hub=hub)

    def _after_rollback(self, session: Session) -> None:
        if session.in_nested_transaction():
            return  # one message's savepoint: the others' marks stand (re-syncing is harmless)
        session.info.pop(_PUBLISH, None)
        session.info.pop(_HUB, None)

    def request(self, *, publish: Iterable[str] = (), hub: bool = False) -> None:
        """Ask the background task to publish twins and/or sync the hub (any thread)."""
        with self._lock:
            self._publish.update(publish)
            self._hub_dirty = self._hub_dirty or hub
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(wake.set)

    async def start(self, app: FastAPI) -> None:
        """Start the after-commit worker (app startup)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._twin = app.state.twin
        self._task = asyncio.create_task(self._worker(), name="vpn-runtime")
        self.request(hub=self.driver is not None)

    async def stop(self, app: FastAPI) -> None:
        """Stop the worker (app shutdown)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None

    async def _worker(self) -> None:
        assert self._wake is not None
        while True:
            timeout = _ROTATION_POLL_S if (self._rotations and self.driver) else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            with self._lock:
                publish, self._publish = self._publish, set()
                hub, self._hub_dirty = self._hub_dirty, False
            if self.driver is not None and (hub or self._rotations):
                try:
                    result = await asyncio.to_thread(self.sync_hub)
                except Exception:
                    # A database hiccup must not end the worker: retry on the next wake-up.
                    log.exception("VPN: hub sync failed")
                    self.request(hub=True)
                    await asyncio.sleep(1.0)
                    continue
                publish.update(result.rotated)
            if publish and self._twin is not None:
                try:
                    await self._twin.publish(sorted(publish))
                except Exception as exc:  # the broker is down: twins go out on reconnect
                    log.warning("VPN: twins not published now (%s)", exc)

    # -- the hub -------------------------------------------------------------------------------

    def sync_hub(self, now: dt.datetime | None = None) -> HubSync:
        """Bring the hub's peers in line with the database, live (blocking; any thread)."""
        result = HubSync()
        driver = self.driver
        if driver is None:
            return result
        now = now or utcnow()
        pools = [self.settings.pool] + ([self.settings.pool6] if self.settings.pool6 else [])
        with self._hub_lock:
            try:
                with transaction(self.factory) as session:
                    state = driver.peers()
                    result.rotated = record_hub_state(session, state, now)
                    for device_id in result.rotated:
                        device = session.get(Device, device_id)
                        peer = session.get(VpnPeer, device_id)
                        if device is not None and peer is not None:
                            sync_desired(session, self.settings, device, peer)
                    known = known_keys(session)

                    def managed(key: str, nets: Sequence[str]) -> bool:
                        # Ours: a key we know, or addresses from our pools. Anything else on
                        # the hub (a technician's laptop) was put there by a person: leave it.
                        return key in known or (
                            bool(nets) and all(_in_pools(net, pools) for net in nets)
                        )

                    desired = hub_peers(session)
                    result.peers = len(desired)
                    actual = {key: peer.allowed_ips for key, peer in state.items()}
                    result.changes = plan_hub(actual, desired, managed)
                    driver.apply(result.changes)
                    self._rotations = pending_rotations(session)
            except HubError as exc:
                result.error = str(exc)
                if not self._failing:  # a hub that stays down is logged once
                    log.error("VPN hub %s: %s", self.settings.hub_interface, exc)
                self._failing = True
                self.last_sync = result
                return result
        self._failing = False
        if result.changes:
            log.info(
                "VPN hub: %d change(s): %s",
                len(result.changes),
                ", ".join(f"{'-' if c.remove else '+'}{c.public_key[:8]}" for c in result.changes),
            )
        self.last_sync = result
        return result

    # -- periodic tasks --------------------------------------------------------------------------

    def periodic_hub(self, factory: sessionmaker[Session], now: dt.datetime) -> None:
        """Catch up on unhandled reports and settings changes, then sync the hub."""
        with transaction(factory) as session:
            changed = enroll_reported(session, self.settings, now)
        if changed:
            self.request(publish=changed)
        if self.driver is not None:
            self.sync_hub(now)

    def periodic_alerts(self, factory: sessionmaker[Session], now: dt.datetime) -> None:
        """The no-handshake rule."""
        if not self.settings.enabled:
            return
        with transaction(factory) as session:
            check_handshakes(session, self.settings, now)


def _in_pools(net: str, pools: Sequence[Any]) -> bool:
    network = ipaddress.ip_network(net, strict=False)
    return any(network.version == pool.version and network.subnet_of(pool) for pool in pools)
