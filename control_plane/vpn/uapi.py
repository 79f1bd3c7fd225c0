"""A minimal, blocking client for wireguard-go's UAPI socket, for driving the hub.

Deliberately a small copy of the edge's ``edge/vpn/uapi.py`` (the control plane imports only
the MQTT contract from ``edge``): the hub needs just ``get`` with peer statistics and ``set``
with peer upserts and removals. A test feeds both parsers the same answer so they cannot drift.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HubPeerState", "PeerChange", "UapiError", "format_set", "parse_get", "uapi_call"]

_END = b"\n\n"
_MAX_RESPONSE = 16 * 1024 * 1024


class UapiError(OSError):
    """The socket is missing, or wireguard-go refused or garbled the request."""


@dataclass(slots=True)
class HubPeerState:
    """One peer of the hub, as wireguard-go reports it."""

    public_key: str
    endpoint: str | None = None
    allowed_ips: list[str] = field(default_factory=list)
    latest_handshake: float | None = None
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True, slots=True)
class PeerChange:
    """Upsert a peer with exactly ``allowed_ips``, or remove it (``allowed_ips`` None)."""

    public_key: str
    allowed_ips: tuple[str, ...] | None

    @property
    def remove(self) -> bool:
        return self.allowed_ips is None


def _hex(key: str) -> str:
    raw = base64.b64decode(key, validate=True)
    if len(raw) != 32:
        raise ValueError(f"public_key: a WireGuard key is 32 bytes, got {len(raw)}")
    return raw.hex()


def format_set(changes: Sequence[PeerChange]) -> str:
    """One ``set=1`` request applying every change in order."""
    lines = ["set=1"]
    for change in changes:
        lines.append(f"public_key={_hex(change.public_key)}")
        if change.allowed_ips is None:
            lines.append("remove=true")
            continue
        lines.append("replace_allowed_ips=true")
        lines.extend(f"allowed_ip={net}" for net in change.allowed_ips)
    return "\n".join(lines) + "\n\n"


def parse_get(text: str) -> dict[str, HubPeerState]:
    """The peers in an answer to ``get=1``, by base64 public key."""
    peers: dict[str, HubPeerState] = {}
    current: HubPeerState | None = None
    seconds = nanos = 0
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not line:
            continue
        if not sep:
            raise UapiError(f"UAPI: unreadable line {line!r}")
        try:
            if key == "errno":
                if value != "0":
                    raise UapiError(int(value), f"UAPI get: errno={value}")
            elif key == "public_key":
                current = HubPeerState(base64.b64encode(bytes.fromhex(value)).decode())
                peers[current.public_key] = current
                seconds = nanos = 0
            elif current is None:
                continue  # the interface's own lines (private_key, listen_port, fwmark)
            elif key == "endpoint":
                current.endpoint = value
            elif key == "allowed_ip":
                current.allowed_ips.append(value)
            elif key == "rx_bytes":
                current.rx_bytes = int(value)
            elif key == "tx_bytes":
                current.tx_bytes = int(value)
            elif key in ("last_handshake_time_sec", "last_handshake_time_nsec"):
                if key.endswith("_sec"):
                    seconds = int(value)
                else:
                    nanos = int(value)
                # Zero means "never".
                current.latest_handshake = seconds + nanos / 1e9 if seconds else None
        except ValueError as exc:
            raise UapiError(f"UAPI: bad value for {key}: {value!r} ({exc})") from None
    return peers


def uapi_call(path: Path, request: str, *, timeout: float = 5.0) -> str:
    """Send one request to the socket at ``path`` and return the answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(request.encode("ascii"))
            data = b""
            while not data.endswith(_END):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > _MAX_RESPONSE:
                    raise UapiError(f"UAPI {path}: answer larger than expected")
    except TimeoutError:
        raise UapiError(f"UAPI {path}: no answer within {timeout}s") from None
    except UapiError:
        raise
    except OSError as exc:  # no socket, wireguard-go gone or dying (refused, reset)
        raise UapiError(exc.errno or 0, f"UAPI {path}: {exc.strerror or exc}") from None
    if not data.endswith(_END):
        raise UapiError(f"UAPI {path}: connection closed mid-answer")
    answer = data.decode("ascii", errors="replace")
    if request.startswith("set=1"):
        errno_text = answer.strip().rpartition("errno=")[2]
        if errno_text != "0":
            code = int(errno_text) if errno_text.isdigit() else 0
            raise UapiError(code, f"UAPI set on {path.name} failed: errno={errno_text}")
    return answer
