"""Addresses, routes and link state of the tunnel interface, through pyroute2 (rtnetlink).

:func:`link_changes` is pure (what to add and remove); :class:`LinkConfigurator` reads the
kernel's view and applies the difference, touching only the tunnel interface; the routes it
owns carry ``proto static`` so the kernel's own routes on the link are never removed.
:func:`watch_links` reports link, address and route changes so the manager can put back what
someone or something (NetworkManager, ``ip addr flush``) took away.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LinkChanges", "LinkConfigurator", "LinkMissing", "link_changes", "watch_links"]

log = logging.getLogger(__name__)

_IFF_UP = 0x1
_PROTO_STATIC = 4  # rtnetlink RTPROT_STATIC: "installed by an administrator", here by us
_SCOPE_UNIVERSE = 0


class LinkMissing(RuntimeError):
    """The interface is not there (wireguard-go died, someone deleted the link)."""


@dataclass(frozen=True, slots=True)
class LinkChanges:
    """What to change on the interface to match the desired tunnel."""

    add_addresses: tuple[str, ...] = ()
    remove_addresses: tuple[str, ...] = ()
    add_routes: tuple[str, ...] = ()
    remove_routes: tuple[str, ...] = ()
    bring_up: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.add_addresses
            or self.remove_addresses
            or self.add_routes
            or self.remove_routes
            or self.bring_up
        )


def _iface(text: str) -> str:
    return ipaddress.ip_interface(text).with_prefixlen


def _net(text: str) -> str:
    return ipaddress.ip_network(text, strict=False).with_prefixlen


def link_changes(
    *,
    want_addresses: Sequence[str],
    want_routes: Sequence[str],
    have_addresses: Sequence[str],
    have_routes: Sequence[str],
    is_up: bool,
) -> LinkChanges:
    """The difference between the desired and the present addresses, routes and state."""
    want_a = {_iface(a) for a in want_addresses}
    have_a = {_iface(a) for a in have_addresses}
    # A route already covered by an address's own prefix route needs no second entry.
    covered = {ipaddress.ip_interface(a).network.with_prefixlen for a in want_a}
    want_r = {_net(r) for r in want_routes} - covered
    have_r = {_net(r) for r in have_routes}
    return LinkChanges(
        add_addresses=tuple(sorted(want_a - have_a)),
        remove_addresses=tuple(sorted(have_a - want_a)),
        add_routes=tuple(sorted(want_r - have_r)),
        remove_routes=tuple(sorted(have_r - want_r)),
        bring_up=not is_up,
    )


def _split(cidr: str) -> tuple[str, int, int]:
    net = ipaddress.ip_interface(cidr)
    family = 2 if net.version == 4 else 10  # AF_INET, AF_INET6
    return str(net.ip), net.network.prefixlen, family


class LinkConfigurator:
    """Brings one interface to the wanted addresses and routes."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.index: int | None = None

    async def apply(self, addresses: Sequence[str], routes: Sequence[str]) -> LinkChanges:
        """Add and remove what differs; returns what was changed (empty when all was right)."""
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        async with AsyncIPRoute(groups=0) as ipr:
            found = await ipr.link_lookup(ifname=self.ifname)
            if not found:
                self.index = None
                raise LinkMissing(f"interface {self.ifname} is not there")
            index = self.index = int(found[0])
            (link,) = await ipr.link("get", index=index)
            have_addresses = [
                f"{a.get('address')}/{a.get('prefixlen')}"
                async for a in await ipr.addr("dump", index=index)
                # Only global addresses are ours: the kernel owns link-local ones (fe80::).
                if a.get("scope") == _SCOPE_UNIVERSE
            ]
            have_routes = [
                f"{r.get('dst') or _default(r.get('family'))}/{r.get('dst_len')}"
                async for r in await ipr.route("dump", oif=index)
                if r.get("proto") == _PROTO_STATIC and r.get("table") == 254
            ]
            changes = link_changes(
                want_addresses=addresses,
                want_routes=routes,
                have_addresses=have_addresses,
                have_routes=have_routes,
                is_up=bool(link.get("flags", 0) & _IFF_UP),
            )
            try:
                if changes.bring_up:
                    await ipr.link("set", index=index, state="up")
                for cidr in changes.remove_addresses:
                    addr, prefix, _family = _split(cidr)
                    await ipr.addr("del", index=index, address=addr, prefixlen=prefix)
                for cidr in changes.add_addresses:
                    addr, prefix, _family = _split(cidr)
                    await ipr.addr("add", index=index, address=addr, prefixlen=prefix)
                for cidr in changes.remove_routes:
                    await ipr.route("del", dst=cidr, oif=index, proto=_PROTO_STATIC)
                for cidr in changes.add_routes:
                    await ipr.route("replace", dst=cidr, oif=index, proto=_PROTO_STATIC)
            except NetlinkError as exc:
                raise OSError(exc.code, f"configuring {self.ifname}: {exc}") from exc
        if changes:
            log.info("%s: %s", self.ifname, changes)
        return changes


def _default(family: Any) -> str:
    return "::" if family == 10 else "0.0.0.0"


def _relevant(msg: Any, ifname: str, index: int | None) -> bool:
    event = msg.get("event")
    if event in ("RTM_NEWLINK", "RTM_DELLINK"):
        return bool(
            msg.get("ifname") == ifname or (index is not None and msg.get("index") == index)
        )
    if event in ("RTM_NEWADDR", "RTM_DELADDR"):
        return index is not None and msg.get("index") == index
    if event in ("RTM_NEWROUTE", "RTM_DELROUTE"):
        return index is not None and msg.get("oif") == index
    return False


async def watch_links(
    ifname: str, index: Callable[[], int | None], on_change: Callable[[str], None]
) -> None:
    """Call ``on_change(event)`` for every link, address or route change of ``ifname``.

    Runs until cancelled. ``index`` gives the interface's current index (it changes when the
    interface is re-created).
    """
    from pyroute2 import AsyncIPRoute
    from pyroute2.netlink.rtnl import (
        RTMGRP_IPV4_IFADDR,
        RTMGRP_IPV4_ROUTE,
        RTMGRP_IPV6_IFADDR,
        RTMGRP_IPV6_ROUTE,
        RTMGRP_LINK,
    )

    groups = (
        RTMGRP_LINK
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV6_IFADDR
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_ROUTE
    )
    async with AsyncIPRoute() as ipr:
        await ipr.bind(groups=groups)
        while True:
            async for msg in ipr.get():
                if _relevant(msg, ifname, index()):
                    on_change(str(msg.get("event")))
