"""Wiring of wake schedules into the app: routes, ingest handlers, periodic tasks."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from edge import protocol as p

from ..db import transaction
from ..features import FeatureContext
from ..models import Device
from . import service
from .api import router
from .config import ScheduleConfig
from .models import SchedulePublication
from .service import Scheduler

log = logging.getLogger(__name__)


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


class _Handlers:
    """Ingest handlers and periodic tasks, reading the scheduler's config when they run."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    # -- ingest: in the ingest transaction, after the built-in handling ----------------------

    def on_status(
        self, session: Session, device: Device, _t: p.ParsedTopic, msg: Any, now: dt.datetime
    ) -> None:
        """A device came online: its wake counts, its missed-wake alert clears."""
        # The built-in handler ignored a stale will; only a birth it accepted counts.
        if (
            isinstance(msg, p.Status)
            and msg.online
            and device.online
            and device.session == msg.session
        ):
            service.device_came_online(session, device, now, self.scheduler.config)

    def on_reported(
        self, session: Session, device: Device, _t: p.ParsedTopic, msg: Any, now: dt.datetime
    ) -> None:
        """A new report: compare the armed alarm with the plan right away."""
        pub = session.get(SchedulePublication, device.id)
        schedule = (device.desired or {}).get("schedule")
        if pub is not None and schedule:
            service.reconcile_device(session, device, pub, schedule, now, self.scheduler.config)

    def on_event(
        self, session: Session, device: Device, _t: p.ParsedTopic, msg: Any, now: dt.datetime
    ) -> None:
        """Help button, calls and commissioning results reported by the device."""
        if not isinstance(msg, p.Event):
            return
        if msg.kind == "help":
            service.help_requested(session, device, _ts(msg.ts), {"event_id": msg.id})
        elif msg.kind == "call":
            service.record_call(
                session, device.id, _ts(msg.ts), early_s=self.scheduler.config.early_s
            )
        elif msg.kind == "diagnostics" and msg.data.get("check") == service.COMMISSION_CHECK:
            service.record_commission(session, device, msg.data, _ts(msg.ts))

    # -- periodic: in a worker thread --------------------------------------------------------

    def horizon(self, factory: sessionmaker[Session], now: dt.datetime) -> None:
        """Publish schedules that changed or whose horizon moved on."""
        with transaction(factory) as session:
            changed = service.sync_all(session, now, self.scheduler.config)
        if changed:
            log.info("schedules published for %d devices", len(changed))
            self.scheduler.publish(changed)

    def watch(self, factory: sessionmaker[Session], now: dt.datetime) -> None:
        """Missed wakes, calls, and reported alarms against the plan."""
        with transaction(factory) as session:
            service.watch(session, now, self.scheduler.config)


def install(ctx: FeatureContext) -> None:
    """Mount the API, register ingest handlers and periodic tasks."""
    scheduler = Scheduler(ScheduleConfig())
    ctx.app.state.schedules = scheduler
    handlers = _Handlers(scheduler)
    ctx.api.include_router(router)
    ctx.ingest.register(p.TopicKind.STATUS, handlers.on_status)
    ctx.ingest.register(p.TopicKind.TWIN_REPORTED, handlers.on_reported)
    ctx.ingest.register(p.TopicKind.EVENTS, handlers.on_event)
    config = scheduler.config
    ctx.periodic.add("schedules.horizon", config.horizon_interval_s, handlers.horizon)
    ctx.periodic.add("schedules.watch", config.watch_interval_s, handlers.watch)

    async def _bind(app: FastAPI) -> None:
        # The twin publisher exists once the lifespan has connected MQTT.
        scheduler.bind(lambda ids: app.state.twin.publish_sync(list(ids)))

    ctx.startup.append(_bind)
    try:
        from . import pages
    except ImportError:  # the console is not part of this build
        return
    ctx.app.include_router(pages.router)
