"""The VPN feature: WireGuard tunnels from every device to a hub, managed by the control plane.

A device reports its public key in twin/reported; it gets an address from the pool and the
hub's peer in twin/desired.vpn; the hub gets the device as a peer, live. Key rotations stage
the new key on the hub first. Technicians reach devices over the tunnel with Ansible, through
the inventory this feature serves. Settings: :class:`VpnSettings` (``DIFRONTE_VPN_*``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from edge import protocol as p

from ..features import FeatureContext
from ..models import Device
from .hub import hub_driver, render_hub_config
from .runtime import VpnRuntime, mark
from .service import handle_report, hub_peers, inventory
from .settings import VpnSettings

__all__ = [
    "VpnRuntime",
    "VpnSettings",
    "handle_report",
    "hub_peers",
    "install",
    "inventory",
    "render_hub_config",
]


def install(ctx: FeatureContext, settings: VpnSettings | None = None) -> VpnRuntime:
    """Wire the VPN into the app: ingest of reported keys, hub sync, alerts, API."""
    from .api import router

    settings = settings or VpnSettings()
    runtime = VpnRuntime(settings, ctx.sessionmaker, hub_driver(settings))
    runtime.attach(ctx.sessionmaker)
    ctx.app.state.vpn = runtime

    def on_reported(
        session: Session, device: Device, _topic: p.ParsedTopic, message: Any, now: dt.datetime
    ) -> None:
        vpn = getattr(message, "vpn", None)
        if vpn is not None and handle_report(session, settings, device, vpn, now):
            mark(session, publish=[device.id], hub=True)

    ctx.ingest.register(p.TopicKind.TWIN_REPORTED, on_reported)
    ctx.periodic.add("vpn-hub", settings.hub_sync_s, runtime.periodic_hub)
    ctx.periodic.add("vpn-alerts", settings.alerts_every_s, runtime.periodic_alerts)
    ctx.startup.append(runtime.start)
    ctx.shutdown.append(runtime.stop)
    ctx.api.include_router(router)
    # The console page (imported here: the console registers its navigation on import).
    from . import pages

    ctx.app.include_router(pages.router)
    return runtime
