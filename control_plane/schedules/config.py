"""Timing of the wake-schedule feature, from ``DIFRONTE_SCHEDULE_*`` (tests shrink it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ScheduleConfig(BaseSettings):
    """How far ahead to publish, how early to wake, when a wake counts as missed."""

    model_config = SettingsConfigDict(env_prefix="DIFRONTE_SCHEDULE_", extra="ignore")

    # Wakes are published this far ahead, so a device keeps waking through an outage.
    horizon_days: float = Field(default=14.0, gt=0, le=60)
    # A schedule whose horizon has fallen this far behind now + horizon is published again.
    refresh_s: int = Field(default=6 * 3600, ge=1)
    # The device's alarm fires this long before an appointment (boot, network, call stack).
    lead_s: int = Field(default=120, ge=0, le=3600)
    # Between wakes: "poweroff", "suspend" or "stay"; a device's wake profile may override.
    policy: Literal["poweroff", "suspend", "stay"] = "poweroff"
    # A person switched the PC on: it stays this long after the last use.
    idle_s: int = Field(default=600, ge=0, le=86400)
    # Not online by window start + grace: a missed wake.
    grace_s: int = Field(default=300, ge=0, le=86400)
    # Seen online this long before the alarm still counts as up for the window (RTC drift).
    early_s: int = Field(default=600, ge=0, le=86400)
    # Online, yet still reporting an older schedule this long after publication: stale.
    stale_after_s: int = Field(default=900, ge=0)
    # The edge never arms an alarm closer than this (edge.wake.planner.MIN_AHEAD_S).
    min_ahead_s: int = Field(default=120, ge=0)
    # The watch creates wake records for windows that started at most this long ago (after
    # a control-plane outage it does not invent a month of missed wakes).
    lookback_s: int = Field(default=86400, ge=60)
    # Report windows that passed without a call (calls record themselves, see service).
    no_call_alerts: bool = True
    # How often the periodic tasks run.
    horizon_interval_s: float = Field(default=300.0, gt=0)
    watch_interval_s: float = Field(default=30.0, gt=0)
