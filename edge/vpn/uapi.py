"""A small client for the userspace WireGuard (wireguard-go) UAPI socket.

The protocol is line-based text over ``/var/run/wireguard/<ifname>.sock``: ``get=1`` answers
``key=value`` lines, ``set=1`` takes them; both end with an empty line and the server answers
``errno=N``. Keys travel in hex. :func:`format_set` and :func:`parse_get` are pure; the
:class:`UapiClient` only moves the text. The control plane keeps its own copy of this small
module (``control_plane/vpn/uapi.py``): it may import only the MQTT contract from ``edge``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .wg import DeviceStatus, PeerStatus, PeerUpdate

__all__ = ["UapiClient", "UapiError", "format_set", "parse_get"]

DEFAULT_DIR = Path("/var/run/wireguard")
_END = b"\n\n"
_MAX_RESPONSE = 4 * 1024 * 1024  # a hub with thousands of peers answers a few hundred KiB


class UapiError(OSError):
    """The UAPI socket is missing, refused the request, or answered something unreadable."""


def _hex(b64: str, field: str) -> str:
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{field}: not base64: {exc}") from None
    if len(raw) != 32:
        raise ValueError(f"{field}: a WireGuard key is 32 bytes, got {len(raw)}")
    return raw.hex()


def _b64(hex_text: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_text)).decode("ascii")


def format_set(
    *,
    private_key: bytes | None = None,
    listen_port: int | None = None,
    replace_peers: bool = False,
    peers: Sequence[PeerUpdate] = (),
) -> str:
    """The text of one ``set=1`` request (ending with the blank line)."""
    lines = ["set=1"]
    if private_key is not None:
        if len(private_key) != 32:
            raise ValueError(f"private_key: must be 32 bytes, got {len(private_key)}")
        lines.append(f"private_key={private_key.hex()}")
    if listen_port is not None:
        lines.append(f"listen_port={listen_port}")
    if replace_peers:
        lines.append("replace_peers=true")
    for i, peer in enumerate(peers):
        lines.append(f"public_key={_hex(peer.public_key, f'peers[{i}].public_key')}")
        if peer.remove:
            lines.append("remove=true")
            continue
        if peer.update_only:
            lines.append("update_only=true")
        if peer.endpoint is not None:
            lines.append(f"endpoint={peer.endpoint}")
        if peer.kick_keepalive and peer.keepalive_s:
            lines.append("persistent_keepalive_interval=0")
            lines.append(f"persistent_keepalive_interval={peer.keepalive_s}")
        elif peer.keepalive_s is not None:
            lines.append(f"persistent_keepalive_interval={peer.keepalive_s}")
        if peer.allowed_ips is not None:
            if peer.replace_allowed_ips:
                lines.append("replace_allowed_ips=true")
            lines.extend(f"allowed_ip={net}" for net in peer.allowed_ips)
    return "\n".join(lines) + "\n\n"


@dataclass(slots=True)
class _PeerReading:
    public_key: str
    endpoint: str | None = None
    allowed_ips: list[str] = field(default_factory=list)
    handshake_sec: int = 0
    handshake_nsec: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    keepalive_s: int = 0

    def status(self) -> PeerStatus:
        # WireGuard says "never" with a zero time.
        handshake = self.handshake_sec + self.handshake_nsec / 1e9 if self.handshake_sec else None
        return PeerStatus(
            public_key=self.public_key,
            endpoint=self.endpoint,
            allowed_ips=tuple(self.allowed_ips),
            latest_handshake=handshake,
            rx_bytes=self.rx_bytes,
            tx_bytes=self.tx_bytes,
            keepalive_s=self.keepalive_s,
        )


_PEER_INTS = {
    "last_handshake_time_sec": "handshake_sec",
    "last_handshake_time_nsec": "handshake_nsec",
    "rx_bytes": "rx_bytes",
    "tx_bytes": "tx_bytes",
    "persistent_keepalive_interval": "keepalive_s",
}


def parse_get(text: str) -> DeviceStatus:
    """Read the answer to ``get=1`` (raises UapiError for a non-zero errno)."""
    private_key: bytes | None = None
    listen_port: int | None = None
    peers: list[_PeerReading] = []
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiError(f"UAPI: unreadable line {line!r}")
        try:
            if key == "errno":
                if value != "0":
                    raise UapiError(int(value), f"UAPI get: errno={value}")
            elif key == "public_key":
                peers.append(_PeerReading(public_key=_b64(value)))
            elif not peers:
                if key == "private_key":
                    private_key = bytes.fromhex(value)
                elif key == "listen_port":
                    listen_port = int(value)
            elif key == "endpoint":
                peers[-1].endpoint = value
            elif key == "allowed_ip":
                peers[-1].allowed_ips.append(value)
            elif key in _PEER_INTS:
                setattr(peers[-1], _PEER_INTS[key], int(value))
        except ValueError as exc:
            raise UapiError(f"UAPI: bad value for {key}: {value!r} ({exc})") from None
    return DeviceStatus(
        private_key=private_key,
        listen_port=listen_port,
        peers=tuple(p.status() for p in peers),
    )


class UapiClient:
    """Talks to one interface's UAPI socket; each call is one short connection."""

    def __init__(self, ifname: str, directory: Path = DEFAULT_DIR, timeout: float = 5.0) -> None:
        self.ifname = ifname
        self.path = directory / f"{ifname}.sock"
        self.timeout = timeout

    def exists(self) -> bool:
        """True when the socket file is there (wireguard-go runs, or crashed and left it)."""
        return self.path.exists()

    async def _call(self, request: str) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(str(self.path))
                try:
                    writer.write(request.encode("ascii"))
                    await writer.drain()
                    data = b""
                    while not data.endswith(_END):
                        chunk = await reader.read(65536)
                        if not chunk:
                            break
                        data += chunk
                        if len(data) > _MAX_RESPONSE:
                            raise UapiError(f"UAPI {self.path}: answer larger than expected")
                finally:
                    writer.close()
                    await writer.wait_closed()
        except TimeoutError:
            raise UapiError(f"UAPI {self.path}: no answer within {self.timeout}s") from None
        except UapiError:
            raise
        except OSError as exc:  # no socket, wireguard-go gone or dying (refused, reset)
            raise UapiError(exc.errno or 0, f"UAPI {self.path}: {exc.strerror or exc}") from None
        if not data.endswith(_END):
            raise UapiError(f"UAPI {self.path}: connection closed mid-answer")
        return data.decode("ascii", errors="replace")

    async def get(self) -> DeviceStatus:
        """The interface's configuration and peer statistics."""
        return parse_get(await self._call("get=1\n\n"))

    async def set(
        self,
        *,
        private_key: bytes | None = None,
        listen_port: int | None = None,
        replace_peers: bool = False,
        peers: Sequence[PeerUpdate] = (),
    ) -> None:
        """Apply one change set atomically; raises UapiError with the errno it answered."""
        answer = await self._call(
            format_set(
                private_key=private_key,
                listen_port=listen_port,
                replace_peers=replace_peers,
                peers=peers,
            )
        )
        errno_text = answer.strip().rpartition("errno=")[2]
        if errno_text != "0":
            code = int(errno_text) if errno_text.isdigit() else 0
            raise UapiError(code, f"UAPI set on {self.ifname} failed: errno={errno_text}")
