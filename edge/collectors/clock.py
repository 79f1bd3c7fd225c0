"""Clock health: RTC drift against the system clock, and whether NTP has synchronised it."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .base import Metrics
from .runner import CommandError, Runner

__all__ = [
    "NtpCollector",
    "RtcCollector",
    "kernel_clock_synced",
    "read_rtc_time",
    "rtc_keeps_local_time",
]

# systemd (timedatectl's NTPSynchronized) calls the clock synchronised while the kernel's
# estimated maximum error is under 16 s; we use the same rule so both always agree.
_MAX_ERROR_SYNCED_US = 16_000_000


class _Timex(ctypes.Structure):
    """The head of struct timex (adjtimex(2)); c_long keeps the layout right on 32 and 64 bit."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        # The rest of the struct, which we don't read; generous so the kernel never
        # writes past our buffer.
        ("_rest", ctypes.c_byte * 256),
    ]


def rtc_keeps_local_time(adjtime: Path = Path("/etc/adjtime")) -> bool:
    """True when ``/etc/adjtime`` says the hardware clock keeps local time (dual-boot PCs)."""
    try:
        lines = adjtime.read_text().splitlines()
    except OSError:
        return False  # no adjtime file: hwclock's default is UTC
    return len(lines) >= 3 and lines[2].strip().upper() == "LOCAL"


def read_rtc_time(rtc_dir: Path, *, local: bool = False) -> float:
    """The RTC's current time as a Unix timestamp, from ``since_epoch`` or ``date``+``time``."""
    try:
        seconds = int((rtc_dir / "since_epoch").read_text().strip())
        wall = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    except FileNotFoundError:
        date = (rtc_dir / "date").read_text().strip()
        clock = (rtc_dir / "time").read_text().strip()
        try:
            wall = datetime.fromisoformat(f"{date}T{clock}")
        except ValueError as exc:
            raise ValueError(f"{rtc_dir}: unreadable date/time {date!r} {clock!r}") from exc
    except ValueError as exc:
        raise ValueError(f"{rtc_dir / 'since_epoch'}: not an integer") from exc
    # The kernel reads the RTC's wall clock as if it were UTC; on a PC whose RTC keeps local
    # time that is off by the UTC offset, so reinterpret it in the local zone.
    if local:
        return wall.timestamp()  # naive datetime: local time
    return wall.replace(tzinfo=UTC).timestamp()


class RtcCollector:
    """``rtc.drift_s``: RTC minus system clock. A growing drift means a dying CMOS battery."""

    name = "rtc"

    def __init__(
        self,
        rtc_dir: Path = Path("/sys/class/rtc/rtc0"),
        *,
        local: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rtc_dir = rtc_dir
        self._local = local
        self._clock = clock

    def collect(self) -> Metrics:
        """``rtc.drift_s`` (±1 s resolution: the RTC counts whole seconds)."""
        return {"rtc.drift_s": read_rtc_time(self._rtc_dir, local=self._local) - self._clock()}


def kernel_clock_synced() -> bool | None:
    """Whether the kernel counts the clock as NTP-synchronised (adjtimex); None off Linux."""
    try:
        adjtimex = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    timex = _Timex()  # modes=0: read only
    if adjtimex(ctypes.byref(timex)) < 0:
        return None
    return bool(timex.maxerror < _MAX_ERROR_SYNCED_US)


class NtpCollector:
    """``ntp.synced`` (1/0): the kernel's view first, timedatectl and timesyncd as fallbacks.

    The kernel answers with one system call what timedatectl would answer by spawning a
    process and a D-Bus round trip (often starting timedated) on every sample.
    """

    name = "ntp"

    def __init__(
        self,
        run: Runner,
        *,
        timesync_dir: Path = Path("/run/systemd/timesync"),
        kernel: Callable[[], bool | None] = kernel_clock_synced,
    ) -> None:
        self._run = run
        self._timesync_dir = timesync_dir
        self._kernel = kernel

    def _timedatectl(self) -> bool | None:
        try:
            result = self._run(
                ["timedatectl", "show", "-p", "NTPSynchronized", "--value"], timeout=5.0
            )
        except CommandError:
            return None
        answer = result.stdout.strip().lower()
        # Without systemd as PID 1 (containers, sysvinit images) timedatectl fails: fall back.
        if result.returncode != 0 or answer not in ("yes", "no"):
            return None
        return answer == "yes"

    def collect(self) -> Metrics:
        """``ntp.synced``; raises if no source can tell."""
        synced = self._kernel()
        if synced is None:
            synced = self._timedatectl()
        # timesyncd touches this file on every sync; its absence proves nothing (chrony).
        if synced is None and (self._timesync_dir / "synchronized").exists():
            synced = True
        if synced is None:
            raise RuntimeError("cannot tell: no timedatectl, no timesyncd, no adjtimex")
        return {"ntp.synced": 1.0 if synced else 0.0}
