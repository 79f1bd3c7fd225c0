"""Factotum: the cooperative's marketplace of household services, paid partly in goods.

Catalogue, worker profiles, Italian full-text search, quote requests with goods offered in
exchange, ranked assignment, quotes with credit, ratings, stock and e-mail notifications.
``install`` plugs it into the control plane (see ``control_plane.features``).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from ..api.errors import problem
from ..features import FeatureContext
from .context import Market, build_market
from .errors import Conflict, Forbidden, Invalid, MarketError, NotFound
from .mail import deliver_pending
from .photos import purge_orphans

log = logging.getLogger(__name__)

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "Market",
    "MarketError",
    "NotFound",
    "build_market",
    "install",
]

_TITLES = {403: "Forbidden", 404: "Not found", 409: "Conflict", 422: "Invalid request"}


async def _market_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MarketError)
    errors = [{"field": f, "reason": r} for f, r in exc.errors]
    return problem(exc.status, _TITLES.get(exc.status, "Error"), str(exc), errors=errors)


def install(ctx: FeatureContext) -> None:
    """Mount the marketplace API (and pages, when the console is there); start its tasks."""
    from . import routes_catalogue, routes_jobs

    market = build_market(ctx.settings)
    ctx.app.state.market = market
    ctx.app.add_exception_handler(MarketError, _market_error)
    ctx.api.include_router(routes_catalogue.router)
    ctx.api.include_router(routes_jobs.router)

    def send_mail(factory: sessionmaker[Session], now: dt.datetime) -> None:
        # Read the sender at each run, so a test (or a reload) can swap it on app.state.
        current: Market = ctx.app.state.market
        deliver_pending(
            factory, current.sender, now, max_attempts=current.settings.mail_max_attempts
        )

    def purge_uploads(factory: sessionmaker[Session], now: dt.datetime) -> None:
        current: Market = ctx.app.state.market
        max_age = dt.timedelta(hours=current.settings.orphan_media_hours)
        purge_orphans(factory, current.store, now, max_age)

    ctx.periodic.add("market-mail", market.settings.mail_interval, send_mail)
    ctx.periodic.add("market-media-purge", 3600.0, purge_uploads)
    _install_pages(ctx)


def _install_pages(ctx: FeatureContext) -> None:
    # The pages need the web console; a build without it still serves the API.
    if importlib.util.find_spec("control_plane.web") is None:
        log.info("marketplace pages not installed: no web console")
        return
    from . import pages

    pages.install(ctx)
