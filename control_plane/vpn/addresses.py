"""The tunnel address plan: which address a newly enrolled device gets (pure functions)."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

__all__ = ["PoolExhausted", "allocate", "paired_ipv6"]


class PoolExhausted(RuntimeError):
    """Every address of the pool is taken."""


def allocate(
    pool: ipaddress.IPv4Network,
    taken: Collection[str],
    reserved: Collection[ipaddress.IPv4Address] = (),
) -> ipaddress.IPv4Address:
    """The lowest free host address of ``pool`` (not taken, not reserved, e.g. the hub's)."""
    used = {ipaddress.IPv4Address(a) for a in taken} | set(reserved)
    # Walking from the bottom keeps addresses compact and predictable for the technicians.
    for host in pool.hosts():
        if host not in used:
            return host
    raise PoolExhausted(f"pool: every address of {pool} is taken ({len(used)} in use)")


def paired_ipv6(
    address: ipaddress.IPv4Address, pool: ipaddress.IPv4Network, pool6: ipaddress.IPv6Network
) -> ipaddress.IPv6Address:
    """The IPv6 address with the same offset in ``pool6`` as ``address`` has in ``pool``.

    10.8.3.7 in 10.8.0.0/16 pairs with fd00:8::307 in fd00:8::/64: one look tells a technician
    both addresses of a device, and no second allocation can disagree with the first.
    """
    offset = int(address) - int(pool.network_address)
    if offset >= pool6.num_addresses:
        raise PoolExhausted(f"pool6: {pool6} is smaller than pool {pool}")
    return pool6.network_address + offset
