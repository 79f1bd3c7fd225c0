"""VPN API: peers, the technicians' Ansible inventory, the hub's configuration."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import select

from ..api.deps import FleetUser, SessionDep, require_roles
from ..db import utcnow
from ..models import Device, Role, User
from .hub import render_hub_config
from .models import VpnPeer
from .runtime import VpnRuntime
from .service import hub_peers, inventory, last_handshake

router = APIRouter(prefix="/vpn", tags=["vpn"])

HubAdmin = Annotated[User, Depends(require_roles(Role.FLEET_MANAGER))]


class VpnPeerPublic(BaseModel):
    device_id: str
    name: str
    group: str
    online: bool
    revoked: bool
    address: str
    address6: str | None
    public_key: str
    pending_public_key: str | None
    enrolled_at: dt.datetime
    key_changed_at: dt.datetime
    rotation_started_at: dt.datetime | None
    # The device's own view (twin/reported) and the hub's.
    device_state: str | None
    device_error: str | None
    last_handshake: dt.datetime | None
    handshake_age_s: float | None
    hub_endpoint: str | None
    hub_rx_bytes: int
    hub_tx_bytes: int

    @classmethod
    def of(cls, device: Device, peer: VpnPeer, now: dt.datetime) -> VpnPeerPublic:
        reported = (device.reported or {}).get("vpn") or {}
        last = last_handshake(device, peer)
        return cls(
            device_id=device.id,
            name=device.name,
            group=device.group,
            online=device.online,
            revoked=device.revoked_at is not None,
            address=peer.address,
            address6=peer.address6,
            public_key=peer.public_key,
            pending_public_key=peer.pending_public_key,
            enrolled_at=peer.enrolled_at,
            key_changed_at=peer.key_changed_at,
            rotation_started_at=peer.rotation_started_at,
            device_state=reported.get("state"),
            device_error=reported.get("error"),
            last_handshake=last,
            handshake_age_s=round((now - last).total_seconds(), 1) if last else None,
            hub_endpoint=peer.hub_endpoint,
            hub_rx_bytes=peer.hub_rx_bytes,
            hub_tx_bytes=peer.hub_tx_bytes,
        )


class HubSyncPublic(BaseModel):
    applied: bool
    peers: int
    added_or_changed: list[str]
    removed: list[str]
    rotated: list[str]
    error: str | None


def _runtime(request: Request) -> VpnRuntime:
    runtime: VpnRuntime = request.app.state.vpn
    return runtime


@router.get("/peers", response_model=list[VpnPeerPublic])
def list_peers(
    session: SessionDep,
    _user: FleetUser,
    group: str | None = None,
    include_revoked: bool = False,
) -> list[VpnPeerPublic]:
    """Every enrolled device's tunnel: address, keys, last handshake."""
    query = select(Device, VpnPeer).join(VpnPeer, VpnPeer.device_id == Device.id)
    if group is not None:
        query = query.where(Device.group == group)
    if not include_revoked:
        query = query.where(Device.revoked_at.is_(None))
    now = utcnow()
    rows = session.execute(query.order_by(Device.id)).all()
    return [VpnPeerPublic.of(device, peer, now) for device, peer in rows]


@router.get("/peers/{device_id}", response_model=VpnPeerPublic)
def get_peer(device_id: str, session: SessionDep, _user: FleetUser) -> VpnPeerPublic:
    """One device's tunnel."""
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device with id {device_id!r}")
    peer = session.get(VpnPeer, device_id)
    if peer is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"device {device_id!r} has no tunnel yet (it has not reported a WireGuard key)",
        )
    return VpnPeerPublic.of(device, peer, utcnow())


@router.get("/inventory")
def ansible_inventory(
    session: SessionDep,
    _user: FleetUser,
    online: Annotated[bool, Query(description="only devices online now")] = False,
) -> dict[str, Any]:
    """Ansible dynamic inventory: enrolled, non-revoked devices by group, at their tunnel
    address (``ansible/inventory/difronte_inventory.py`` prints this)."""
    return inventory(session, online_only=online)


@router.get("/hub.conf", response_class=PlainTextResponse)
def hub_config(request: Request, session: SessionDep, _user: FleetUser) -> str:
    """The hub's wg-quick configuration (no secrets: the hub's private key stays in its file)."""
    settings = _runtime(request).settings
    if not settings.enabled:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "hub_public_key: the VPN is not configured (set DIFRONTE_VPN_HUB_PUBLIC_KEY and "
            "DIFRONTE_VPN_HUB_ENDPOINT)",
        )
    return render_hub_config(settings, hub_peers(session))


@router.post("/hub/sync", response_model=HubSyncPublic)
def sync_hub(request: Request, _user: HubAdmin) -> HubSyncPublic:
    """Apply the peers to the hub now (normally automatic after every change)."""
    runtime = _runtime(request)
    if runtime.driver is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "hub_apply: this control plane does not drive the hub (DIFRONTE_VPN_HUB_APPLY=off)",
        )
    result = runtime.sync_hub()
    runtime.request(publish=result.rotated)
    return HubSyncPublic(
        applied=result.error is None,
        peers=result.peers,
        added_or_changed=[c.public_key for c in result.changes if not c.remove],
        removed=[c.public_key for c in result.changes if c.remove],
        rotated=result.rotated,
        error=result.error,
    )
