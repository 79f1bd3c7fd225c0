"""The console's VPN page: every PC's tunnel, whether the hub hears it, and how to reach it.

For fleet managers and technicians; it refreshes itself like the device list.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..api.deps import SessionDep
from ..db import utcnow
from ..models import Device, Role
from ..web import N_, Page, console_router, page_for_roles, register_nav
from .models import VpnPeer
from .service import last_handshake

router = console_router(prefix="/vpn")

register_nav(
    "/vpn",
    N_("Remote access"),
    [Role.FLEET_MANAGER, Role.TECHNICIAN],
    description_msgid=N_("The secure connection to each PC, used by technicians to reach it."),
    order=60,
)

VpnPage = Annotated[Page, Depends(page_for_roles(Role.FLEET_MANAGER, Role.TECHNICIAN))]

_DEFAULT_POLICY_S = 900.0


@dataclass(frozen=True)
class TunnelRow:
    """One PC's tunnel as the page shows it."""

    device_id: str
    name: str
    group: str
    address: str
    online: bool
    state: str  # "connected", "silent", "off"
    last_handshake: dt.datetime | None
    rotating: bool
    error: str | None


def tunnel_state(online: bool, last: dt.datetime | None, now: dt.datetime, policy_s: float) -> str:
    """ "connected" (a recent handshake), "silent" (on, but the hub hears nothing), or "off"."""
    if last is not None and (now - last).total_seconds() <= policy_s:
        return "connected"
    return "silent" if online else "off"


def _rows(db: Session, policy_s: float) -> list[TunnelRow]:
    now = utcnow()
    rows = db.execute(
        select(Device, VpnPeer)
        .join(VpnPeer, VpnPeer.device_id == Device.id)
        .where(Device.revoked_at.is_(None))
        .order_by(Device.group, Device.id)
    ).all()
    out = []
    for device, peer in rows:
        last = last_handshake(device, peer)
        reported = (device.reported or {}).get("vpn") or {}
        out.append(
            TunnelRow(
                device_id=device.id,
                name=device.name,
                group=device.group,
                address=peer.address,
                online=device.online,
                state=tunnel_state(device.online, last, now, policy_s),
                last_handshake=last,
                rotating=peer.pending_public_key is not None,
                error=reported.get("error"),
            )
        )
    return out


def _context(request: Request, db: Session) -> dict[str, Any]:
    runtime = getattr(request.app.state, "vpn", None)
    policy = runtime.settings.handshake_alert_s if runtime is not None else _DEFAULT_POLICY_S
    rows = _rows(db, policy)
    return {
        "rows": rows,
        "connected": sum(1 for r in rows if r.state == "connected"),
        "silent": sum(1 for r in rows if r.state == "silent"),
        "enabled": bool(runtime is not None and runtime.settings.enabled),
        "live_src": "/vpn/_rows",
    }


@router.get("")
def vpn_list(page: VpnPage, request: Request, db: SessionDep) -> Response:
    """Every PC's tunnel; refreshes by itself."""
    return page.render("vpn/list.html", **_context(request, db))


@router.get("/_rows")
def vpn_rows(page: VpnPage, request: Request, db: SessionDep) -> Response:
    """The live part of the page."""
    return page.render_fragment("vpn/_rows.html", **_context(request, db))
