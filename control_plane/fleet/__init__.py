"""Fleet health: enrollment, alert rules and notifications, the time-series sink, the API
(tokens, alerts, a device's events and series) and the enrollment pages of the console."""

from __future__ import annotations

from ..features import FeatureContext


def install(ctx: FeatureContext) -> None:
    """Enrollment API, alert rules as a periodic task, notifiers, the configured sink."""
    from . import api, notify, pages, rules, sinks

    ctx.api.include_router(api.router)
    ctx.api.include_router(api.alerts_router)
    ctx.api.include_router(api.devices_router)
    ctx.app.include_router(pages.router)
    ctx.periodic.add(
        "alert-rules", ctx.settings.alert_check_interval_s, rules.periodic_task(ctx.settings)
    )
    dispatcher = notify.dispatcher_from_settings(ctx.settings)
    ctx.app.state.alert_dispatcher = dispatcher
    if dispatcher is not None:
        ctx.startup.append(dispatcher.astart)
        ctx.shutdown.append(dispatcher.astop)
    if ctx.settings.telemetry_sink == "influx":
        influx = sinks.InfluxSink.from_settings(ctx.settings)
        ctx.ingest.sink = influx
        ctx.shutdown.append(influx.aclose)
    else:
        # The stored batch rows are the series; no second copy as one row per metric.
        ctx.ingest.sink = sinks.EmbeddedSink()
