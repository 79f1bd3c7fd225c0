"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from . import __version__, web
from .api import errors
from .api.routes import auth, devices
from .config import Settings, get_settings
from .db import make_engine, make_sessionmaker, migrate
from .features import FeatureContext, install_features
from .ingest import Ingest, device_subscriptions
from .mqtt import MqttService
from .periodic import PeriodicRunner
from .twin import TwinPublisher

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, run_migrations: bool = True) -> FastAPI:
    """Build the control plane: API, console, and (in the lifespan) the MQTT ingest."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    ingest = Ingest(factory, errors_kept=settings.ingest_errors_kept)
    periodic = PeriodicRunner(factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            migrate(settings.database_url)
        mqtt: MqttService | None = None
        twin = TwinPublisher(factory, None, None)
        if settings.mqtt_enabled:
            share = settings.ingest_share_group if settings.ingest_shared else None
            mqtt = MqttService(settings, ingest.handle_many, list(device_subscriptions(share)))
            twin = TwinPublisher(factory, mqtt, asyncio.get_running_loop())
            # Retained state may be gone after a broker restart: publish every twin again.
            mqtt.on_connect(twin.republish)
            await mqtt.start()
        app.state.mqtt = mqtt
        app.state.twin = twin
        for hook in ctx.startup:
            await hook(app)
        await periodic.start()
        try:
            yield
        finally:
            await periodic.stop()
            for hook in ctx.shutdown:
                await hook(app)
            if mqtt is not None:
                await mqtt.stop()
            engine.dispose()

    app = FastAPI(
        title="ΔiFronte control plane",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.ingest = ingest
    app.state.periodic = periodic
    app.state.twin = TwinPublisher(factory, None, None)
    app.state.mqtt = None
    errors.install(app)
    web.install(app, settings)

    api = APIRouter(prefix="/api/v1")
    api.include_router(auth.router)
    api.include_router(devices.router)
    ctx = FeatureContext(
        app=app, settings=settings, sessionmaker=factory, ingest=ingest, periodic=periodic, api=api
    )
    install_features(ctx)
    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, object]:
        mqtt = app.state.mqtt
        return {"ok": True, "mqtt": bool(mqtt and mqtt.connected.is_set())}

    return app
