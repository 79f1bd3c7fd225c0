"""Feature packages plug into the app here: routes, ingest handlers, periodic tasks.

Each module listed in ``FEATURES`` has ``install(ctx: FeatureContext) -> None``. Adding a
feature is one line here (and one in ``schema.MODEL_MODULES`` if it has tables).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from .config import Settings
from .ingest import Ingest
from .periodic import PeriodicRunner

FEATURES: tuple[str, ...] = (
    "control_plane.vpn",
    "control_plane.fleet",
    "control_plane.care",
    "control_plane.jobs",
    "control_plane.schedules",
    "control_plane.people",
    "control_plane.marketplace",
    "control_plane.workshop.feature",
)


@dataclass
class FeatureContext:
    """What a feature may hook into while the app is built."""

    app: FastAPI
    settings: Settings
    sessionmaker: sessionmaker[Session]
    ingest: Ingest
    periodic: PeriodicRunner
    api: APIRouter  # mounted at /api/v1 after every feature is installed
    startup: list[Callable[[FastAPI], Awaitable[None]]] = field(default_factory=list)
    shutdown: list[Callable[[FastAPI], Awaitable[None]]] = field(default_factory=list)


def install_features(ctx: FeatureContext, names: tuple[str, ...] = FEATURES) -> None:
    """Import each feature module and let it install itself."""
    for name in names:
        module = importlib.import_module(name)
        module.install(ctx)
