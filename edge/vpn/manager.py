"""The tunnel manager: keeps this device's WireGuard tunnel to the hub as the control plane wants.

One long-lived loop converges the interface on the desired ``vpn`` section (the twin's) and
re-converges whenever it changes, whenever netlink says the link, an address or a route moved,
and on a timer that also reads the handshake and transfer counters. Converging never removes
and re-adds the hub peer, so the tunnel survives changes of allowed IPs or keepalive.

Key rotation (the ``rotate-vpn-key`` job) is make-before-break on the hub's side: a new key is
made and reported as *pending*; the control plane adds it to the hub as a second peer with no
allowed IPs and lists it in ``accepted_keys``; the device then switches (the new key is on disk
before it is on the interface) and starts a handshake at once; the hub moves the device's
address to the new peer and drops the old one. The device is out of reach only between its
switch and the hub's move: one handshake and one report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from edge import protocol as p
from edge.config import VpnConfig

from .backend import Backend, BackendError, open_backend
from .keys import KeyStore, WireGuardKeyError, public_key, to_base64
from .netconf import LinkConfigurator, LinkMissing, watch_links
from .plan import TunnelSpec, handshake_age, hub_peer_updates, should_promote, spec_from_desired
from .uapi import UapiError
from .wg import DeviceStatus, PeerStatus, format_endpoint

__all__ = ["RotationError", "TunnelManager", "VpnCollector"]

log = logging.getLogger(__name__)

State = Literal["down", "up", "error"]
BackendOpener = Callable[[], Awaitable[Backend]]

_RESOLVE_EVERY_S = 300.0  # a hub on a dynamic address moves; look its name up again this often
_FAST_REFRESH_S = 0.2  # while a rotation waits for its handshake
_MAX_BACKOFF_S = 60.0


class RotationError(RuntimeError):
    """A key rotation could not complete; the message says how far it got."""


class TunnelManager:
    """Owns the device's key pair and its tunnel interface."""

    def __init__(
        self,
        config: VpnConfig,
        key_dir: Path,
        *,
        on_state: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        open_backend_fn: BackendOpener | None = None,
    ) -> None:
        self.config = config
        self.keys = KeyStore(key_dir)
        self._on_state = on_state
        self._clock = clock
        self._open_backend = open_backend_fn or self._default_backend
        self._link = LinkConfigurator(config.interface)
        self._key: bytes | None = None
        self._pending: bytes | None = None
        self._desired: p.VpnDesired | None = None
        self._backend: Backend | None = None
        self._hub: PeerStatus | None = None
        self._state: State = "down"
        self._error: str | None = None
        self._endpoint: tuple[str, str, float] | None = None  # (hub_endpoint, resolved, at)
        self._switched_at: float | None = None
        self._rotations = 0  # rotations waiting: refresh fast meanwhile
        self._kick = asyncio.Event()
        self._changed = asyncio.Event()
        self._last_report: tuple[object, ...] | None = None

    # -- keys --------------------------------------------------------------------------------

    def load_keys(self) -> None:
        """Load the key pair, generating it on first start (a damaged key file is set aside)."""
        if not self.config.enabled:
            return
        try:
            self._key = self.keys.load_or_create()
        except WireGuardKeyError as exc:
            aside = self.keys.current_path.with_name(f"private.key.damaged-{int(self._clock())}")
            log.error("%s; moving it to %s and generating a new key", exc, aside)
            self.keys.current_path.replace(aside)
            self._key = self.keys.load_or_create()
        try:
            self._pending = self.keys.pending()
        except WireGuardKeyError as exc:
            log.error("%s; abandoning that rotation", exc)
            self.keys.discard_pending()

    @property
    def public_key(self) -> str | None:
        """This device's public key (base64), None when the VPN is disabled."""
        return to_base64(public_key(self._key)) if self._key is not None else None

    @property
    def pending_public_key(self) -> str | None:
        """The public key of an unfinished rotation."""
        return to_base64(public_key(self._pending)) if self._pending is not None else None

    # -- what the daemon calls ----------------------------------------------------------------

    def set_desired(self, desired: p.VpnDesired | None) -> None:
        """Take a new desired tunnel from twin/desired (None: keep the current one)."""
        if desired is None or desired == self._desired:
            return
        self._desired = desired
        self._kick.set()

    def reported(self) -> p.VpnReported | None:
        """The ``vpn`` part of twin/reported (None when the VPN is disabled)."""
        key = self.public_key
        if key is None:
            return None
        hub = self._hub
        return p.VpnReported(
            public_key=key,
            state=self._state,
            latest_handshake=hub.latest_handshake if hub else None,
            rx_bytes=hub.rx_bytes if hub else 0,
            tx_bytes=hub.tx_bytes if hub else 0,
            error=self._error[:1000] if self._error else None,
            pending_public_key=self.pending_public_key,
        )

    def metrics(self) -> dict[str, float]:
        """Telemetry: tunnel up, handshake age, transfer counters."""
        if self._key is None or self._desired is None:
            return {}
        out = {"vpn.up": 1.0 if self._state == "up" else 0.0}
        hub = self._hub
        if hub is not None:
            age = handshake_age(hub.latest_handshake, self._clock())
            if age is not None:
                out["vpn.handshake_age_s"] = round(age, 1)
            out["vpn.rx_bytes"] = float(hub.rx_bytes)
            out["vpn.tx_bytes"] = float(hub.tx_bytes)
        return out

    def collector(self) -> VpnCollector:
        """A telemetry collector reading this manager's last figures."""
        return VpnCollector(self)

    async def run(self) -> None:
        """Converge, watch and refresh until cancelled."""
        if not self.config.enabled:
            return
        if self._key is None:
            try:
                self.load_keys()
            except OSError as exc:
                # No key, no tunnel; the rest of the daemon (calls, wakes) must still run.
                log.error("VPN disabled: cannot keep a key in %s: %s", self.keys.directory, exc)
                return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(), name="vpn-watch")
            tg.create_task(self._loop(), name="vpn-converge")

    async def rotate_key(self, *, timeout: float = 300.0) -> str:
        """The ``rotate-vpn-key`` job: returns the new public key once the hub has shaken hands.

        Raises RotationError if the hub does not accept the new key in ``timeout`` seconds (the
        old key then stays and the pending one is dropped), or if no handshake follows the switch.
        """
        if self._key is None:
            raise RotationError("the VPN is disabled on this device")
        if self._desired is None:
            raise RotationError("no tunnel configured yet: nothing to rotate")
        self._pending = self.keys.create_pending()
        new_key = self.pending_public_key
        assert new_key is not None
        log.info("key rotation: new key %s waits for the hub", new_key)
        self._rotations += 1
        self._kick.set()
        try:
            async with asyncio.timeout(timeout):
                while not self._rotation_done(new_key):
                    await self._wait_changed()
        except TimeoutError:
            if self.public_key != new_key:
                self.keys.discard_pending()
                self._pending = None
                self._kick.set()
                raise RotationError(
                    f"the hub did not accept the new key within {timeout:g}s; the old key stays"
                ) from None
            raise RotationError(
                f"switched to the new key but no handshake with the hub within {timeout:g}s"
            ) from None
        finally:
            self._rotations -= 1
        log.info("key rotation done: %s", new_key)
        return new_key

    # -- the loop ----------------------------------------------------------------------------

    def _rotation_done(self, new_key: str) -> bool:
        hub = self._hub
        return (
            self.public_key == new_key
            and self._switched_at is not None
            and hub is not None
            and hub.latest_handshake is not None
            and hub.latest_handshake >= self._switched_at
        )

    async def _wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def _loop(self) -> None:
        backoff = 1.0
        while True:
            self._kick.clear()
            wait = self.config.refresh_s
            if self._desired is not None:
                try:
                    await self._converge(spec_from_desired(self._desired))
                    self._set_state("up", None)
                    backoff = 1.0
                except Exception as exc:
                    expected = (BackendError, LinkMissing, UapiError, OSError, ValueError)
                    if self._error != str(exc):  # a repeating error is logged once
                        if isinstance(exc, expected):
                            log.warning("tunnel %s: %s", self.config.interface, exc)
                        else:
                            log.exception("tunnel %s: unexpected failure", self.config.interface)
                    self._set_state("error", str(exc) or type(exc).__name__)
                    wait, backoff = backoff, min(backoff * 2, _MAX_BACKOFF_S)
                await self._read_status()
            if self._rotations:
                wait = min(wait, _FAST_REFRESH_S)
            await self._report_if_changed()
            self._changed.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._kick.wait()

    async def _converge(self, spec: TunnelSpec) -> None:
        assert self._key is not None
        if should_promote(self.pending_public_key, spec):
            # On disk first: a crash after this line comes back with the new key everywhere.
            self._key = self.keys.promote_pending()
            self._pending = None
            self._switched_at = self._clock()
            log.info("the hub accepts the new key: switching to %s", self.public_key)
        backend = self._backend
        if backend is None or not await backend.exists():
            backend = self._backend = await self._open_backend()
        status = await backend.get()
        key_changed = status.private_key != self._key
        port = self.config.listen_port
        set_port = port if (port and status.listen_port != port) else None
        if key_changed or set_port is not None:
            await backend.set(private_key=self._key if key_changed else None, listen_port=set_port)
        # Up and addressed before the peer is set, so the first keepalive goes out at once.
        await self._link.apply(spec.addresses, spec.allowed_ips)
        endpoint, fresh = await self._resolve(spec)
        updates = hub_peer_updates(
            status,
            spec,
            endpoint,
            set_endpoint=fresh,
            # A new key (first start, rotation) handshakes now rather than at the next timer.
            kick=key_changed,
        )
        if updates:
            await backend.set(peers=updates)

    async def _resolve(self, spec: TunnelSpec) -> tuple[str, bool]:
        """The hub's endpoint as an address; ``fresh`` when it was (re)resolved just now."""
        wanted = f"{spec.hub_host}:{spec.hub_port}"
        cached = self._endpoint
        now = time.monotonic()
        if cached and cached[0] == wanted and now - cached[2] < _RESOLVE_EVERY_S:
            return cached[1], False
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(spec.hub_host, spec.hub_port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            if cached and cached[0] == wanted:
                return cached[1], False  # keep the last good address while DNS is down
            raise OSError(f"hub_endpoint: cannot resolve {spec.hub_host!r}: {exc}") from exc
        # Prefer IPv4: most home routers still give a device no global IPv6.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        endpoint = format_endpoint(str(infos[0][4][0]), spec.hub_port)
        changed = not cached or cached[1] != endpoint
        self._endpoint = (wanted, endpoint, now)
        return endpoint, changed

    async def _read_status(self) -> None:
        backend = self._backend
        if backend is None or self._desired is None:
            self._hub = None
            return
        try:
            status: DeviceStatus = await backend.get()
        except (BackendError, OSError):
            self._hub = None  # the next converge finds out and repairs
            return
        self._hub = status.peer(self._desired.hub_public_key)

    def _set_state(self, state: State, error: str | None) -> None:
        self._state = state
        self._error = error

    async def _report_if_changed(self) -> None:
        hub = self._hub
        key = (
            self._state,
            self._error,
            self.public_key,
            self.pending_public_key,
            hub is not None and hub.latest_handshake is not None,
        )
        if key == self._last_report:
            return
        self._last_report = key
        if self._on_state is not None:
            try:
                await self._on_state()
            except Exception:  # reporting is best effort; the next change reports again
                log.exception("reporting the tunnel state failed")

    async def _watch(self) -> None:
        def changed(event: str) -> None:
            log.debug("netlink %s on %s: re-applying", event, self.config.interface)
            self._kick.set()

        try:
            await watch_links(self.config.interface, lambda: self._link.index, changed)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Without the watch the timer still re-converges; never take the daemon down.
            log.exception("netlink watch failed; relying on the %gs refresh", self.config.refresh_s)

    async def _default_backend(self) -> Backend:
        return await open_backend(
            self.config.interface,
            prefer=self.config.backend,
            wireguard_go=self.config.wireguard_go,
            uapi_dir=Path(self.config.uapi_dir),
        )


class VpnCollector:
    """The tunnel's telemetry for the daemon's sampler (reads cached figures, never blocks)."""

    name = "vpn"

    def __init__(self, manager: TunnelManager) -> None:
        self._manager = manager

    def collect(self) -> dict[str, float]:
        """The manager's current metrics."""
        return self._manager.metrics()
