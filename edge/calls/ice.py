"""ICE set-up that does not hold a call up: probe servers first, offer useful interfaces only.

aiortc uses only the *first* STUN and the *first* TURN server of its configuration, and gathers
every candidate before it answers, waiting up to 5 s for each server. So: probe the servers
with one STUN Binding request each (in parallel, with a short timeout), keep the first that
answer, and never fall back to aiortc's default public STUN server. Host candidates are limited
to real interfaces: a VPN tunnel or a container bridge only adds checks that cannot succeed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import re
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_MAGIC = 0x2112A442
_URI = re.compile(
    r"^(?P<scheme>stuns?|turns?):(?P<host>\[[0-9a-fA-F:.]+\]|[^?:\[\]]+)(:(?P<port>\d+))?"
    r"(\?transport=(?P<transport>udp|tcp))?$"
)


@dataclass(frozen=True)
class ServerUri:
    """One parsed ``stun:``/``turn:`` URI."""

    scheme: str
    host: str
    port: int
    transport: str

    @property
    def is_turn(self) -> bool:
        """True for turn: and turns: URIs."""
        return self.scheme.startswith("turn")


def parse_uri(uri: str) -> ServerUri:
    """Parse a STUN/TURN URI (RFC 7064/7065); ValueError naming the URI otherwise."""
    m = _URI.match(uri.strip())
    if m is None:
        raise ValueError(f"ice_servers.urls: not a stun:/turn: URI: {uri!r}")
    scheme = m["scheme"]
    secure = scheme.endswith("s")
    default_port = 5349 if secure else 3478
    transport = m["transport"] or ("tcp" if secure else "udp")
    return ServerUri(scheme, m["host"].strip("[]"), int(m["port"] or default_port), transport)


def binding_request() -> tuple[bytes, bytes]:
    """A STUN Binding request and its transaction id."""
    txid = os.urandom(12)
    return struct.pack("!HHI", 0x0001, 0, _MAGIC) + txid, txid


def is_binding_response(data: bytes, txid: bytes) -> bool:
    """True for a success or error response to our request (either proves the server is up)."""
    if len(data) < 20:
        return False
    kind, _length, magic = struct.unpack("!HHI", data[:8])
    return magic == _MAGIC and data[8:20] == txid and kind in (0x0101, 0x0111)


class _Probe(asyncio.DatagramProtocol):
    def __init__(self, txid: bytes, done: asyncio.Future[bool]) -> None:
        self.txid, self.done = txid, done

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if is_binding_response(data, self.txid) and not self.done.done():
            self.done.set_result(True)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_result(False)


async def probe(uri: ServerUri, timeout: float) -> bool:
    """True when the server answers a STUN Binding request (UDP) or accepts a TCP connection."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(uri.host, uri.port, type=socket.SOCK_DGRAM)
            family, _, _, _, sockaddr = infos[0]
            addr = (str(sockaddr[0]), int(sockaddr[1]))
            if uri.transport == "tcp":
                _reader, writer = await asyncio.open_connection(addr[0], addr[1])
                writer.close()
                return True
            done: asyncio.Future[bool] = loop.create_future()
            request, txid = binding_request()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Probe(txid, done), family=family, remote_addr=addr
            )
            try:
                # Resend once halfway: a single lost datagram should not drop a good server.
                transport.sendto(request)
                try:
                    return await asyncio.wait_for(asyncio.shield(done), timeout / 2)
                except TimeoutError:
                    transport.sendto(request)
                    return await done
            finally:
                transport.close()
    except (TimeoutError, OSError, IndexError):
        return False


async def usable_servers(servers: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """The first reachable STUN and the first reachable TURN server, each with one URL."""
    candidates: list[tuple[ServerUri, str, dict[str, Any]]] = []
    for server in servers:
        for url in server.get("urls") or []:
            try:
                candidates.append((parse_uri(url), url, server))
            except ValueError as exc:
                log.warning("%s", exc)
    results = await asyncio.gather(*(probe(uri, timeout) for uri, _, _ in candidates))
    chosen: list[dict[str, Any]] = []
    have_stun = have_turn = False
    for (uri, url, server), ok in zip(candidates, results, strict=True):
        if not ok:
            log.info("ICE server %s did not answer in %.1fs: left out of this call", url, timeout)
            continue
        if uri.is_turn and not have_turn:
            # A TURN server also answers STUN: let it serve as STUN too if none is given.
            chosen.append(
                {
                    "urls": [url],
                    "username": server.get("username"),
                    "credential": server.get("credential"),
                }
            )
            have_turn = True
        elif not uri.is_turn and not have_stun:
            chosen.append({"urls": [url]})
            have_stun = True
    return chosen


def interface_allowed(name: str, excluded: Iterable[str]) -> bool:
    """False when ``name`` matches one of the excluded glob patterns."""
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in excluded)


def host_addresses(excluded: Sequence[str], ipv6: bool) -> list[str]:
    """The addresses to offer as host candidates (aioice's own list, filtered by interface)."""
    import ifaddr

    out: list[str] = []
    for adapter in ifaddr.get_adapters():
        if not interface_allowed(adapter.nice_name, excluded):
            continue
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                if ip.ip != "127.0.0.1":
                    out.append(ip.ip)
            elif ipv6 and ip.ip[0] != "::1" and ip.ip[2] == 0:
                out.append(ip.ip[0])
    return out


def restrict_host_addresses(excluded: Sequence[str], ipv6: bool) -> None:
    """Make aioice gather host candidates from allowed interfaces only (call process only)."""
    import aioice.ice

    # aiortc exposes no interface setting; the call runs in its own short-lived process, so
    # replacing aioice's address lookup there affects this call and nothing else.
    def _addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return host_addresses(excluded, ipv6 and use_ipv6)

    aioice.ice.get_host_addresses = _addresses
