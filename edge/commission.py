"""Commissioning the wake: does the RTC alarm bring this board back from power-off?

(Suspend is not tested here: a board that fails this test is tried with the suspend policy.)

``difronte-edge commission-wake`` arms the alarm a few minutes ahead, writes down what it
armed (``state_dir/commission.json``) and powers off. At the next start the daemon compares
its boot time with that alarm (``check_commission``) and reports the result as a
``diagnostics`` event (``data.check == "wake_from_off"``); the control plane marks the board
as "wakes from off", or records the failure so a technician tries suspend or fixes the BIOS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.config import ConfigError, EdgeConfig, load_config
from edge.state import atomic_write
from edge.wake import RtcError, rtc_offset
from edge.wake.policy import RTC_BOOT_EARLY_S, RTC_BOOT_LATE_S

log = logging.getLogger(__name__)

CHECK = "wake_from_off"
RECORD_NAME = "commission.json"
DAEMON_UNIT = "difronte-edge.service"


class CommissionError(Exception):
    """The test could not be set up; nothing was powered off."""


def record_path(config: EdgeConfig) -> Path:
    """Where the pending test is written down."""
    return config.state_dir / RECORD_NAME


def arm_test(config: EdgeConfig, *, minutes: float, clock: Callable[[], float]) -> dict[str, Any]:
    """Arm the alarm ``minutes`` ahead and write the pending test down; returns the record."""
    # Imported here: the daemon imports this module for check_commission only.
    from edge.waking import build_rtc, device_zone, rtc_capabilities

    if not 1 <= minutes <= 60:
        raise CommissionError(f"minutes: must be 1..60, got {minutes:g}")
    caps = rtc_capabilities(config)
    rtc = build_rtc(config, caps, clock)
    now = clock()
    alarm_at = float(math.floor(now + minutes * 60))
    try:
        rtc_now: float | None = rtc.now()
    except RtcError:
        rtc_now = None
    offset = rtc_offset(caps, device_zone(config), now=now, rtc_now=rtc_now)
    try:
        armed = rtc.arm(alarm_at + offset)
    except RtcError as exc:
        raise CommissionError(f"the RTC refused the test alarm: {exc}") from exc
    record = {
        "check": CHECK,
        "mode": "poweroff",
        "alarm_at": alarm_at,
        "rtc_alarm": armed,
        "armed_at": now,
    }
    atomic_write(record_path(config), json.dumps(record).encode())
    return record


def check_commission(config: EdgeConfig, boot_time: float | None) -> dict[str, Any] | None:
    """The result of a pending test, judged from this boot's time; None when none is pending.

    The record is consumed: the result is reported once. Up to ``RTC_BOOT_LATE_S`` after the
    alarm (a slow POST) counts as on time; later means a person switched it on.
    """
    path = record_path(config)
    try:
        record = json.loads(path.read_text())
        alarm_at = float(record["alarm_at"])
        mode = str(record.get("mode", "poweroff"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the commissioning record %s: %s", path, exc)
        path.unlink(missing_ok=True)
        return None
    if boot_time is None:
        ok, detail = False, "boot time unknown: cannot tell whether the alarm woke the PC"
    elif boot_time < alarm_at - RTC_BOOT_EARLY_S:
        ok, detail = False, "started before the alarm: the power-off did not happen"
    elif boot_time <= alarm_at + RTC_BOOT_LATE_S:
        ok, detail = True, f"came back {boot_time - alarm_at:+.0f} s from the alarm"
    else:
        ok = False
        detail = (
            f"came back {boot_time - alarm_at:.0f} s after the alarm: switched on by hand, "
            f"the alarm did not wake it from {mode}"
        )
    path.replace(path.with_name(f"{path.stem}.done.json"))
    return {
        "check": CHECK,
        "ok": ok,
        "mode": mode,
        "alarm_at": alarm_at,
        "boot_time": boot_time,
        "detail": detail,
    }


def _stop_daemon() -> None:
    # The running daemon re-arms the RTC for the schedule on every tick: it must not run
    # between our alarm and the power-off.
    try:
        subprocess.run(["systemctl", "stop", DAEMON_UNIT], check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not stop %s: %s", DAEMON_UNIT, exc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``commission-wake`` subcommand's options."""
    parser.add_argument("--config", default="/etc/difronte/edge.toml")
    parser.add_argument("--minutes", type=float, default=3.0, help="alarm this far ahead (1-60)")


def run(args: argparse.Namespace) -> int:
    """Arm the test alarm and power off."""
    from edge.waking import build_power

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if config.power.backend == "systemd":
        _stop_daemon()
    try:
        record = arm_test(config, minutes=args.minutes, clock=time.time)
    except CommissionError as exc:
        print(f"commissioning not started: {exc}", file=sys.stderr)
        return 1
    when = time.strftime("%H:%M:%S", time.localtime(record["alarm_at"]))
    print(f"alarm armed for {when}; powering off now. Leave the PC alone: it should come back")
    print("by itself. If it does not, switch it on by hand: the failure is reported.")
    power = build_power(config, time.time)
    asyncio.run(power.poweroff())
    return 0
