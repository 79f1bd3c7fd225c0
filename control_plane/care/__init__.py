"""Calls and care: WebRTC calls browser ↔ PC, outcomes, escalations, contact sheets.

The browser talks to :mod:`.relay` over a WebSocket; the relay speaks ``call/in`` and
``call/out`` with the device. After a call the caregiver records an outcome; problems become
escalations that coordinators follow up (:mod:`.escalations`, :mod:`.notify`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from ..features import FeatureContext


def install(ctx: FeatureContext) -> None:
    """The API and call relay, escalation notifications and reminders, the console pages."""
    from . import api, escalations
    from .notify import EscalationNotifier
    from .relay import CallRelay

    relay = CallRelay(ctx.sessionmaker, ctx.settings)
    notifier = EscalationNotifier(ctx.sessionmaker, ctx.settings)
    ctx.app.state.care_relay = relay
    ctx.app.state.care_notifier = notifier
    ctx.startup.append(notifier.astart)
    ctx.startup.append(relay.start)
    ctx.shutdown.append(relay.stop)
    ctx.shutdown.append(notifier.astop)
    ctx.api.include_router(api.router)
    # A job with a maintenance window waits while the PC is in a call.
    from ..jobs import register_busy_check
    from .calls import devices_in_a_call

    register_busy_check(devices_in_a_call)

    interval = ctx.settings.care_urgent_renotify_s

    def remind_urgent(factory: sessionmaker[Session], now: dt.datetime) -> None:
        # Urgent escalations nobody has taken are notified again and again, never left waiting.
        with factory() as session:
            due = escalations.due_for_reminder(session, now, interval)
        for escalation_id in due:
            notifier.submit(escalation_id, reminder=True)

    ctx.periodic.add("care-urgent-reminders", min(60.0, interval / 2), remind_urgent)
    try:
        from . import pages
    except ImportError:  # the console is not part of this build
        return
    pages.install(ctx)
