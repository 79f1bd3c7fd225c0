"""The ``rotate-vpn-key`` operation: hand the work to the tunnel manager."""

from __future__ import annotations

from typing import Any

import msgspec

from .operations import BaseOperation, ExecutionContext, JobFailed


class RotateVpnParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class RotateVpnKey(BaseOperation):
    """New WireGuard key, reported, accepted by the hub, switched; the old key then goes.

    The tunnel manager does the choreography (``TunnelManager.rotate_key``); the device is out
    of reach only between its switch and the hub moving the address (about one handshake).
    """

    name = "rotate-vpn-key"
    params = RotateVpnParams

    async def run(self, ctx: ExecutionContext, params: RotateVpnParams) -> dict[str, str]:
        """Rotate, and report the new public key."""
        vpn: Any = ctx.env.extra.get("vpn")
        if vpn is None:
            raise JobFailed("this device has no VPN tunnel to rotate")
        from edge.vpn.manager import RotationError

        await ctx.progress(10, step="new key made; waiting for the hub to accept it")
        try:
            new_key: str = await vpn.rotate_key(timeout=float(ctx.execution.timeout_s))
        except RotationError as exc:
            raise JobFailed(str(exc)) from exc
        return {"public_key": new_key}
