"""Pure decisions of the tunnel manager: what the interface should hold, and what to change.

Nothing here touches a socket or the kernel: the manager reads a
:class:`~edge.vpn.wg.DeviceStatus`, asks these functions what to do, and applies it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from edge import protocol as p

from .wg import DeviceStatus, PeerUpdate

__all__ = [
    "TunnelSpec",
    "handshake_age",
    "hub_peer_updates",
    "should_promote",
    "spec_from_desired",
    "split_endpoint",
]


@dataclass(frozen=True, slots=True)
class TunnelSpec:
    """The desired tunnel, normalised."""

    addresses: tuple[str, ...]
    hub_public_key: str
    hub_host: str
    hub_port: int
    allowed_ips: tuple[str, ...]
    keepalive_s: int
    accepted_keys: tuple[str, ...]


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``("vpn.example.org", 51820)`` from ``vpn.example.org:51820`` (IPv6 in brackets)."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"hub_endpoint: must be host:port, got {endpoint!r}")
    return host.strip("[]"), int(port)


def _networks(cidrs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    # WireGuard stores allowed IPs masked ("10.8.0.1/24" reads back as "10.8.0.0/24").
    return tuple(sorted({ipaddress.ip_network(c, strict=False).with_prefixlen for c in cidrs}))


def spec_from_desired(desired: p.VpnDesired) -> TunnelSpec:
    """Normalise the contract's ``vpn`` section."""
    host, port = split_endpoint(desired.hub_endpoint)
    addresses = [ipaddress.ip_interface(desired.address).with_prefixlen]
    if desired.address6:
        addresses.append(ipaddress.ip_interface(desired.address6).with_prefixlen)
    return TunnelSpec(
        addresses=tuple(addresses),
        hub_public_key=desired.hub_public_key,
        hub_host=host,
        hub_port=port,
        allowed_ips=_networks(desired.allowed_ips),
        keepalive_s=desired.keepalive_s,
        accepted_keys=tuple(desired.accepted_keys),
    )


def hub_peer_updates(
    status: DeviceStatus,
    spec: TunnelSpec,
    endpoint: str,
    *,
    set_endpoint: bool,
    kick: bool,
) -> list[PeerUpdate]:
    """Changes that leave exactly the hub as peer, configured as ``spec`` says.

    An unchanged hub peer is not touched, and a changed one is updated in place (never
    removed and re-added), so its session survives: the tunnel does not drop when only the
    allowed IPs or the keepalive change. The hub's upsert comes first so that, if the hub's
    key changed, the allowed IPs move to the new peer before the old one goes.
    """
    updates: list[PeerUpdate] = []
    hub = status.peer(spec.hub_public_key)
    stale = (
        hub is None
        or _networks(list(hub.allowed_ips)) != spec.allowed_ips
        or hub.keepalive_s != spec.keepalive_s
        or (set_endpoint and hub.endpoint != endpoint)
    )
    if stale or kick:
        updates.append(
            PeerUpdate(
                public_key=spec.hub_public_key,
                endpoint=endpoint if (hub is None or set_endpoint) else None,
                keepalive_s=spec.keepalive_s,
                allowed_ips=spec.allowed_ips,
                kick_keepalive=kick or hub is None,
            )
        )
    updates.extend(
        PeerUpdate(public_key=peer.public_key, remove=True)
        for peer in status.peers
        if peer.public_key != spec.hub_public_key
    )
    return updates


def should_promote(pending_public_key: str | None, spec: TunnelSpec | None) -> bool:
    """True when the hub accepts the pending key: time to switch to it."""
    return bool(pending_public_key and spec and pending_public_key in spec.accepted_keys)


def handshake_age(latest: float | None, now: float) -> float | None:
    """Seconds since the last handshake (never negative), None if there was none."""
    if latest is None:
        return None
    return max(0.0, now - latest)
