"""Jobs: remote operations on devices with staged rollouts, modelled on AWS IoT Jobs.

``states`` and ``rollout`` are the pure core (execution state machine, rollout planner,
abort criteria); ``service`` applies them to the database; ``notifier`` publishes
``jobs/notify``; ``routes`` and ``uploads`` are the HTTP API. :func:`install` plugs them in.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from edge import protocol as p

from ..features import FeatureContext
from .notifier import Notifier
from .routes import device_router, router
from .service import (
    TIMING,
    JobTiming,
    handle_job_update,
    jobs_get_handler,
    periodic_task,
    register_busy_check,
    run_tick,
    unregister_busy_check,
)
from .states import ExecStatus, JobStatus
from .uploads import latest_report
from .uploads import router as uploads_router

__all__ = [
    "TIMING",
    "ExecStatus",
    "JobStatus",
    "JobTiming",
    "Notifier",
    "install",
    "latest_report",
    "register_busy_check",
    "run_tick",
    "unregister_busy_check",
]


def install(ctx: FeatureContext) -> None:
    """Routes, ingest handlers for job updates and ``jobs/get``, and the rollout tick."""
    notifier = Notifier(ctx.sessionmaker)
    ctx.app.state.jobs_notifier = notifier
    ctx.api.include_router(router)
    ctx.api.include_router(device_router)
    ctx.api.include_router(uploads_router)
    ctx.ingest.register(p.TopicKind.JOB_UPDATE, handle_job_update)
    ctx.ingest.register(p.TopicKind.JOBS_GET, jobs_get_handler(notifier))
    ctx.periodic.add("jobs", TIMING.tick_s, periodic_task(notifier))

    async def _start(app: FastAPI) -> None:
        notifier.attach(lambda: app.state.mqtt, asyncio.get_running_loop())

    async def _stop(app: FastAPI) -> None:
        notifier.detach()

    ctx.startup.append(_start)
    ctx.shutdown.append(_stop)

    # The console pages (imported here: the console registers its navigation on import).
    from . import pages

    ctx.app.include_router(pages.router)
