"""Wiring of the workshop into the app: API, console pages, linking of deployed PCs.

A machine deployed to a beneficiary gets an enrollment token; the PC enrolls itself on its
first boot at home. The link to the beneficiary is made as soon as the new device's first
birth message arrives (an ingest handler) and, as a safety net for a device that enrolled
but has not connected, by a periodic task.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from edge import protocol as p

from ..api.errors import problem
from ..db import transaction
from ..features import FeatureContext
from ..models import Device
from . import api, intake_pages, pages, work_api, work_pages
from .config import WorkshopConfig
from .deployment import link_enrolled_devices
from .errors import WorkshopError

log = logging.getLogger(__name__)

_TITLES = {
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    422: "Invalid request",
}


async def workshop_problem(request: Request, exc: Exception) -> JSONResponse:
    """A WorkshopError as problem+json: the field, a stable code, English and Italian."""
    assert isinstance(exc, WorkshopError)
    return problem(
        exc.status,
        _TITLES.get(exc.status, "Error"),
        exc.detail,
        code=exc.code,
        field=exc.field,
        detail_it=f"{exc.field}: {exc.message_it}",
        errors=[{"field": exc.field, "reason": exc.message_en}],
        **({"details": dict(exc.details)} if exc.details else {}),
    )


def on_status(
    session: Session, device: Device, _topic: p.ParsedTopic, msg: Any, now: dt.datetime
) -> None:
    """A device's birth: if it is a deployed workshop PC, link it to its beneficiary."""
    if isinstance(msg, p.Status) and msg.online and device.online:
        for tag in link_enrolled_devices(session, now, device_id=device.id):
            log.info("%s: enrolled as %s and linked to its beneficiary", tag, device.id)


def link_task(factory: sessionmaker[Session], now: dt.datetime) -> None:
    """Periodic: link every deployed machine whose PC has enrolled since."""
    with transaction(factory) as session:
        linked = link_enrolled_devices(session, now)
    if linked:
        log.info("linked deployed machines to their beneficiaries: %s", ", ".join(linked))


def install(ctx: FeatureContext) -> None:
    """Routes, the WorkshopError handler, the enrollment linking, and the console pages."""
    config = WorkshopConfig()
    ctx.app.state.workshop_config = config
    ctx.api.include_router(api.router)
    ctx.api.include_router(work_api.router)
    ctx.app.add_exception_handler(WorkshopError, workshop_problem)
    ctx.ingest.register(p.TopicKind.STATUS, on_status)
    ctx.periodic.add("workshop-link", config.link_interval_s, link_task)
    ctx.app.include_router(pages.router)
    ctx.app.include_router(pages.assets_router)
    ctx.app.include_router(intake_pages.router)
    ctx.app.include_router(work_pages.router)
