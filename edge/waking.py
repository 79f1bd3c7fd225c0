"""Builds the wake service and the help button from the config, for the daemon.

The backends are chosen here and nowhere else: the kernel's sysfs RTC (or util-linux
``rtcwake``) and systemd in production; the fake kernel RTC directory and the recording
power backend in tests and the demo (``paths.fake_rtc``, ``power.backend = "record"``).
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.button import HelpButton
from edge.config import EdgeConfig
from edge.wake import (
    FakeRtcDir,
    PowerBackend,
    RecordingPower,
    RtcBackend,
    RtcCapabilities,
    RtcwakeRtc,
    SysfsRtc,
    SystemdPower,
    WakeService,
    probe_capabilities,
    utc_offset,
)
from edge.wake.service import EmitEvent, Report

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def scaled_clock(speed: float, base: Clock = time.time) -> Clock:
    """``base``, running ``speed`` times faster from now on (tests and the demo); 1: ``base``."""
    if speed == 1:
        return base
    origin = base()

    def clock() -> float:
        return origin + (base() - origin) * speed

    return clock


def device_zone(config: EdgeConfig) -> ZoneInfo:
    """The device's time zone; UTC (logged) when the configured one is unknown."""
    try:
        return ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        log.error("timezone: unknown zone %r, using UTC", config.timezone)
        return ZoneInfo("UTC")


def _kernel_log() -> str:
    # rtc_cmos announces its reach at boot; without the kernel log, /proc/driver/rtc decides.
    try:
        done = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def rtc_capabilities(config: EdgeConfig) -> RtcCapabilities:
    """What the RTC can do: the config's values where given, else probed (fake RTC: no limit)."""
    wake = config.wake
    if config.paths.fake_rtc:
        return RtcCapabilities(
            max_ahead_s=wake.rtc_max_ahead_s, local_time=bool(wake.rtc_local_time)
        )
    probed = probe_capabilities(Path("/proc/driver/rtc"), _kernel_log(), Path("/etc/adjtime"))
    return RtcCapabilities(
        max_ahead_s=wake.rtc_max_ahead_s
        if wake.rtc_max_ahead_s is not None
        else probed.max_ahead_s,
        local_time=wake.rtc_local_time if wake.rtc_local_time is not None else probed.local_time,
    )


def build_rtc(config: EdgeConfig, caps: RtcCapabilities, clock: Clock) -> RtcBackend:
    """The RTC backend: a fake kernel RTC directory, sysfs, or rtcwake."""
    rtc_dir = Path(config.paths.rtc_dir)
    if config.paths.fake_rtc:
        # A local-time RTC runs ahead of UTC by the zone's offset, as hwclock set it.
        offset = utc_offset(clock(), device_zone(config)) if caps.local_time else 0
        return FakeRtcDir(rtc_dir, clock=clock, offset_s=offset, max_ahead_s=caps.max_ahead_s)
    if config.wake.rtc_backend == "rtcwake":
        return RtcwakeRtc(rtc_dir.name, sysfs_root=rtc_dir.parent)
    return SysfsRtc(rtc_dir)


def build_power(config: EdgeConfig, clock: Clock) -> PowerBackend:
    """The power backend: systemd, or a file recording what would have been done."""
    if config.power.backend == "record":
        record = config.power.record_file or str(config.state_dir / "power.jsonl")
        return RecordingPower(Path(record), clock=clock)
    return SystemdPower()


def boot_time(config: EdgeConfig, clock: Clock) -> float | None:
    """When this PC booted (epoch); a simulated one (fake RTC) boots when its daemon starts."""
    if config.paths.fake_rtc:
        return clock()  # a simulated PC boots when its daemon starts
    try:
        import psutil

        return float(psutil.boot_time())
    except Exception:  # no /proc/stat in a container: the boot reason becomes "unknown"
        return None


def boot_id(config: EdgeConfig) -> str | None:
    """This boot's unique id (the kernel's); a simulated PC gets a new one per daemon start."""
    if config.paths.fake_rtc:
        return uuid.uuid4().hex
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def build_wake_service(
    config: EdgeConfig,
    *,
    clock: Clock,
    report: Report,
    emit_event: EmitEvent,
    booted: float | None = None,
) -> WakeService:
    """The wake service for this device, its state kept in ``state_dir``."""
    caps = rtc_capabilities(config)
    wake = config.wake
    return WakeService(
        rtc=build_rtc(config, caps, clock),
        power=build_power(config, clock),
        tz=device_zone(config),
        caps=caps,
        schedule_path=config.state_dir / "schedule.json",
        report=report,
        emit_event=emit_event,
        clock=clock,
        lead_s=wake.lead_s,
        idle_s=wake.idle_s,
        grace_s=wake.grace_s,
        policy=wake.policy,
        tick_s=wake.tick_s,
        boot_time=booted,
    )


def build_button(config: EdgeConfig, on_help: Callable[[], None]) -> HelpButton | None:
    """The help button and LED, if enabled; None (logged) when the pins cannot be had."""
    button = config.button
    if not button.enabled:
        return None
    factory = None
    if button.mock:
        from gpiozero.pins.mock import MockFactory

        factory = MockFactory()
    try:
        return HelpButton(button.pin, button.led_pin, button.hold_s, on_help, factory)
    except Exception as exc:  # gpiozero raises many kinds: no GPIO chip, pin in use...
        log.error("help button on pin %s not available: %s", button.pin, exc)
        return None
