"""Everything the collectors read from, in one object, and the default set built from it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .base import Collector
from .clock import NtpCollector, RtcCollector, kernel_clock_synced, rtc_keeps_local_time
from .runner import Runner, default_runner, find_tool
from .smart import SmartCollector
from .system import (
    BatteryCollector,
    CpuCollector,
    DiskCollector,
    LoadCollector,
    MemoryCollector,
    NetworkCollector,
    OutboxCollector,
    TemperatureCollector,
    UptimeCollector,
)

__all__ = ["CollectorContext", "default_collectors"]


def _find_smartctl() -> str | None:
    return find_tool("smartctl")


@dataclass(slots=True)
class CollectorContext:
    """Where collectors look and how they run tools; every field is a seam for tests."""

    rtc_dir: Path = Path("/sys/class/rtc/rtc0")
    smartctl: str | None = field(default_factory=_find_smartctl)
    outbox_depth: Callable[[], int] | None = None
    run: Runner = default_runner
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sysfs: Path = Path("/sys")
    adjtime: Path = Path("/etc/adjtime")
    timesync_dir: Path = Path("/run/systemd/timesync")
    kernel_clock_synced: Callable[[], bool | None] = kernel_clock_synced
    # label -> mount point; each becomes disk.<label>.*
    disk_paths: Mapping[str, str] = field(default_factory=lambda: {"root": "/"})
    smart_interval_s: float = 3600.0


def default_collectors(ctx: CollectorContext) -> list[Collector]:
    """The collectors that make sense on this machine (no SMART without smartctl, ...)."""
    collectors: list[Collector] = [
        CpuCollector(),
        LoadCollector(),
        MemoryCollector(),
        *(DiskCollector(label, path) for label, path in ctx.disk_paths.items()),
        TemperatureCollector(),
        BatteryCollector(),
        UptimeCollector(clock=ctx.clock),
        NetworkCollector(sysfs=ctx.sysfs),
    ]
    if ctx.smartctl:
        collectors.append(
            SmartCollector(
                ctx.run,
                ctx.smartctl,
                min_interval_s=ctx.smart_interval_s,
                monotonic=ctx.monotonic,
            )
        )
    # A machine without an RTC (a VM, some thin clients) is a fact, not a failing sensor.
    if ctx.rtc_dir.is_dir():
        collectors.append(
            RtcCollector(ctx.rtc_dir, local=rtc_keeps_local_time(ctx.adjtime), clock=ctx.clock)
        )
    collectors.append(
        NtpCollector(ctx.run, timesync_dir=ctx.timesync_dir, kernel=ctx.kernel_clock_synced)
    )
    if ctx.outbox_depth is not None:
        collectors.append(OutboxCollector(ctx.outbox_depth))
    return collectors
