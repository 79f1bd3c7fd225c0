"""What a WireGuard interface holds and how to change it, whichever backend applies it.

The kernel (netlink) and userspace (UAPI socket) backends both read into :class:`DeviceStatus`
and both take :class:`PeerUpdate` changes, so the tunnel manager's decisions stay pure.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["DeviceStatus", "PeerStatus", "PeerUpdate", "format_endpoint"]


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One peer as the interface reports it."""

    public_key: str  # base64
    endpoint: str | None = None
    allowed_ips: tuple[str, ...] = ()
    latest_handshake: float | None = None  # epoch seconds; None: never
    rx_bytes: int = 0
    tx_bytes: int = 0
    keepalive_s: int = 0


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """The interface's own key and port, and its peers."""

    private_key: bytes | None = None
    listen_port: int | None = None
    peers: tuple[PeerStatus, ...] = ()

    def peer(self, public_key: str) -> PeerStatus | None:
        """The peer with ``public_key``, if configured."""
        for peer in self.peers:
            if peer.public_key == public_key:
                return peer
        return None


@dataclass(frozen=True, slots=True)
class PeerUpdate:
    """A change to one peer; fields left None are left as they are."""

    public_key: str  # base64
    remove: bool = False
    update_only: bool = False  # do not create the peer if it is not there
    endpoint: str | None = None  # "192.0.2.1:51820" or "[2001:db8::1]:51820", never a name
    keepalive_s: int | None = None
    allowed_ips: tuple[str, ...] | None = None
    # Replace the peer's allowed IPs with ``allowed_ips`` (else add to them).
    replace_allowed_ips: bool = True
    # Switch persistent keepalive off and on again: both WireGuards then send a keepalive at
    # once, which starts a handshake now instead of at the next timer (used after a new key).
    kick_keepalive: bool = False


def format_endpoint(host: str, port: int) -> str:
    """``host:port`` as WireGuard wants it (IPv6 in brackets); ``host`` must be an address."""
    address = ipaddress.ip_address(host)
    if address.version == 6:
        return f"[{address.compressed}]:{port}"
    return f"{address}:{port}"
