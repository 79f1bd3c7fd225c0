"""Where the WireGuard interface lives: the kernel (netlink) or wireguard-go (UAPI socket).

Both backends read into :class:`~edge.vpn.wg.DeviceStatus` and apply
:class:`~edge.vpn.wg.PeerUpdate` changes. :func:`open_backend` finds an existing interface or
creates one, preferring the kernel and falling back to wireguard-go where the kernel has no
WireGuard (old kernels, containers).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from .uapi import UapiClient, UapiError
from .wg import DeviceStatus, PeerStatus, PeerUpdate, format_endpoint

__all__ = [
    "Backend",
    "BackendError",
    "KernelBackend",
    "KernelUnavailable",
    "UserspaceBackend",
    "open_backend",
    "status_from_netlink",
]

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """The interface cannot be created or configured; the message says why."""


class KernelUnavailable(BackendError):
    """This kernel has no WireGuard: use wireguard-go."""


class Backend(Protocol):
    """One WireGuard interface, however it is implemented."""

    kind: str
    ifname: str

    async def exists(self) -> bool: ...

    async def create(self) -> None: ...

    async def get(self) -> DeviceStatus: ...

    async def set(
        self,
        *,
        private_key: bytes | None = None,
        listen_port: int | None = None,
        peers: Sequence[PeerUpdate] = (),
    ) -> None: ...


# -- userspace -------------------------------------------------------------------------------


class UserspaceBackend:
    """wireguard-go, configured through its UAPI socket.

    wireguard-go is started detached (it daemonizes itself), so the tunnel outlives a restart
    of the edge daemon: a technician upgrading the agent over the VPN keeps the connection.
    """

    kind = "userspace"

    def __init__(
        self,
        ifname: str,
        *,
        wireguard_go: str = "wireguard-go",
        uapi_dir: Path = Path("/var/run/wireguard"),
        start_timeout: float = 10.0,
    ) -> None:
        self.ifname = ifname
        self.wireguard_go = wireguard_go
        self.uapi = UapiClient(ifname, uapi_dir)
        self.start_timeout = start_timeout

    async def exists(self) -> bool:
        """True when wireguard-go answers on the interface's socket."""
        if not self.uapi.exists():
            return False
        try:
            await self.uapi.get()
        except UapiError:
            return False  # a stale socket left by a killed wireguard-go
        return True

    async def create(self) -> None:
        """Start wireguard-go for the interface and wait for its socket."""
        env = {**os.environ, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
        env.pop("WG_PROCESS_FOREGROUND", None)
        try:
            proc = await asyncio.create_subprocess_exec(
                self.wireguard_go,
                self.ifname,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise BackendError(
                f"wireguard_go: {self.wireguard_go!r} not found (install wireguard-go)"
            ) from None
        try:
            async with asyncio.timeout(self.start_timeout):
                _, stderr = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BackendError(f"wireguard-go {self.ifname} did not start in time") from None
        if proc.returncode != 0:
            lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
            raise BackendError(
                f"wireguard-go {self.ifname} exited with {proc.returncode}: "
                + (lines[-1] if lines else "no message")
            )
        # The parent exits once the daemon is up; the socket appears with it.
        deadline = time.monotonic() + self.start_timeout
        while not await self.exists():
            if time.monotonic() > deadline:
                raise BackendError(
                    f"wireguard-go {self.ifname}: no UAPI socket at {self.uapi.path}"
                )
            await asyncio.sleep(0.05)
        log.info("started wireguard-go for %s", self.ifname)

    async def get(self) -> DeviceStatus:
        """Configuration and statistics."""
        try:
            return await self.uapi.get()
        except UapiError as exc:
            raise BackendError(str(exc)) from exc

    async def set(
        self,
        *,
        private_key: bytes | None = None,
        listen_port: int | None = None,
        peers: Sequence[PeerUpdate] = (),
    ) -> None:
        """Apply one change set in a single UAPI transaction."""
        try:
            await self.uapi.set(private_key=private_key, listen_port=listen_port, peers=peers)
        except UapiError as exc:
            raise BackendError(str(exc)) from exc


# -- kernel ----------------------------------------------------------------------------------


def _text(value: object) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _attr(msg: Any, name: str) -> Any:
    getter = getattr(msg, "get_attr", None)
    return getter(name) if getter is not None else None


def status_from_netlink(messages: Iterable[Any]) -> DeviceStatus:
    """Merge the messages of a WG_CMD_GET_DEVICE dump (a big peer list spans several)."""
    private_key: bytes | None = None
    listen_port: int | None = None
    peers: dict[str, PeerStatus] = {}
    for msg in messages:
        key = _attr(msg, "WGDEVICE_A_PRIVATE_KEY")
        if key:
            private_key = base64.b64decode(_text(key))
        port = _attr(msg, "WGDEVICE_A_LISTEN_PORT")
        if port is not None:
            listen_port = int(port)
        for peer in _attr(msg, "WGDEVICE_A_PEERS") or ():
            public_key = _text(_attr(peer, "WGPEER_A_PUBLIC_KEY"))
            allowed = tuple(
                str(a.get("addr"))
                for a in (_attr(peer, "WGPEER_A_ALLOWEDIPS") or ())
                if a.get("addr")
            )
            previous = peers.get(public_key)
            if previous is not None:
                # The kernel continues a long allowed-IP list in the next message: only the
                # key and more addresses there.
                peers[public_key] = replace(previous, allowed_ips=previous.allowed_ips + allowed)
                continue
            endpoint_nla = _attr(peer, "WGPEER_A_ENDPOINT")
            endpoint = None
            if endpoint_nla is not None and endpoint_nla.get("port"):
                endpoint = format_endpoint(endpoint_nla["addr"], endpoint_nla["port"])
            handshake_nla = _attr(peer, "WGPEER_A_LAST_HANDSHAKE_TIME")
            handshake = None
            if handshake_nla is not None and handshake_nla.get("tv_sec"):
                handshake = handshake_nla["tv_sec"] + handshake_nla.get("tv_nsec", 0) / 1e9
            peers[public_key] = PeerStatus(
                public_key=public_key,
                endpoint=endpoint,
                allowed_ips=allowed,
                latest_handshake=handshake,
                rx_bytes=int(_attr(peer, "WGPEER_A_RX_BYTES") or 0),
                tx_bytes=int(_attr(peer, "WGPEER_A_TX_BYTES") or 0),
                keepalive_s=int(_attr(peer, "WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") or 0),
            )
    return DeviceStatus(
        private_key=private_key, listen_port=listen_port, peers=tuple(peers.values())
    )


def netlink_peer(update: PeerUpdate) -> dict[str, Any]:
    """The peer dict pyroute2's WireGuard.set() takes for ``update``."""
    peer: dict[str, Any] = {"public_key": update.public_key}
    if update.remove:
        peer["remove"] = True
        return peer
    if update.update_only:
        peer["update_only"] = True
    if update.endpoint is not None:
        host, _, port = update.endpoint.rpartition(":")
        peer["endpoint_addr"] = host.strip("[]")
        peer["endpoint_port"] = int(port)
    if update.keepalive_s is not None:
        peer["persistent_keepalive"] = update.keepalive_s
    if update.allowed_ips is not None:
        peer["allowed_ips"] = list(update.allowed_ips)
        peer["replace_allowed_ips"] = update.replace_allowed_ips
    return peer


class KernelBackend:
    """Kernel WireGuard through generic netlink (pyroute2)."""

    kind = "kernel"

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname

    async def exists(self) -> bool:
        """True when a WireGuard link with our name is there."""
        from pyroute2 import AsyncIPRoute

        async with AsyncIPRoute() as ipr:
            if not await ipr.link_lookup(ifname=self.ifname):
                return False
            links = await ipr.link("get", ifname=self.ifname)
        return any(link.get(("linkinfo", "kind")) == "wireguard" for link in links)

    async def create(self) -> None:
        """Add the link; KernelUnavailable when the kernel has no WireGuard."""
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        async with AsyncIPRoute() as ipr:
            try:
                await ipr.link("add", ifname=self.ifname, kind="wireguard")
            except NetlinkError as exc:
                if exc.code in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL):
                    raise KernelUnavailable(f"kernel WireGuard unavailable: {exc}") from exc
                raise BackendError(f"cannot add {self.ifname}: {exc}") from exc
        log.info("created kernel WireGuard interface %s", self.ifname)

    async def _wg(self) -> Any:
        from pyroute2 import AsyncWireGuard

        wg = AsyncWireGuard()
        await wg.setup_endpoint()
        return wg

    async def get(self) -> DeviceStatus:
        """Configuration and statistics."""
        from pyroute2.netlink.exceptions import NetlinkError

        wg = await self._wg()
        try:
            return status_from_netlink(await wg.info(self.ifname))
        except NetlinkError as exc:
            raise BackendError(f"reading {self.ifname}: {exc}") from exc
        finally:
            wg.close()

    async def set(
        self,
        *,
        private_key: bytes | None = None,
        listen_port: int | None = None,
        peers: Sequence[PeerUpdate] = (),
    ) -> None:
        """Apply the changes (pyroute2 sets one peer per request)."""
        from pyroute2.netlink.exceptions import NetlinkError

        wg = await self._wg()
        try:
            if private_key is not None or listen_port is not None:
                await wg.set(
                    self.ifname,
                    private_key=base64.b64encode(private_key).decode() if private_key else None,
                    listen_port=listen_port,
                )
            for update in peers:
                if update.kick_keepalive and update.keepalive_s and not update.remove:
                    # Off, then on below: the kernel sends a keepalive when it is switched on.
                    off = {"public_key": update.public_key, "persistent_keepalive": 0}
                    await wg.set(self.ifname, peer={**off, "update_only": True})
                await wg.set(self.ifname, peer=netlink_peer(update))
        except NetlinkError as exc:
            raise BackendError(f"configuring {self.ifname}: {exc}") from exc
        finally:
            wg.close()


async def open_backend(
    ifname: str,
    *,
    prefer: str = "auto",
    wireguard_go: str = "wireguard-go",
    uapi_dir: Path = Path("/var/run/wireguard"),
) -> Backend:
    """The backend holding ``ifname``, creating the interface if it is not there yet."""
    kernel = KernelBackend(ifname)
    userspace = UserspaceBackend(ifname, wireguard_go=wireguard_go, uapi_dir=uapi_dir)
    if prefer in ("auto", "userspace") and await userspace.exists():
        return userspace
    if prefer in ("auto", "kernel") and await kernel.exists():
        return kernel
    if prefer in ("auto", "kernel"):
        try:
            await kernel.create()
            return kernel
        except KernelUnavailable:
            if prefer == "kernel":
                raise
            log.info("no kernel WireGuard here: using wireguard-go for %s", ifname)
    await userspace.create()
    return userspace
