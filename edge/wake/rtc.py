"""RTC wake alarm backends: the kernel's sysfs file, util-linux rtcwake, and a fake kernel.

Every backend speaks the RTC's own time base: the epoch seconds the kernel shows in
``/sys/class/rtc/rtcN/since_epoch`` and ``wakealarm``, which for an RTC kept in local time
are local wall-clock seconds counted as if they were UTC. Converting from UTC is the
planner's job (``edge.wake.planner.rtc_offset``).

Kernel facts these follow (drivers/rtc/rtc-sysfs.c, ``wakealarm_store``): the alarm is
one-shot; writing a future time while one is armed fails with EBUSY; writing a time not in
the future (``0`` included) disarms; ``+N`` means N seconds from now; reading gives the armed
epoch seconds, or nothing when none is armed.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from edge.wake.planner import ONE_DAY_S, ONE_MONTH_S, ONE_YEAR_S, RtcCapabilities

log = logging.getLogger(__name__)

DEFAULT_RTC = Path("/sys/class/rtc/rtc0")


class RtcError(Exception):
    """The RTC refused an alarm, or did not read back what was written."""


class RtcBackend(Protocol):
    """An RTC wake alarm, in the RTC's own epoch seconds."""

    def read_alarm(self) -> float | None:
        """The armed alarm, or None when none is armed."""
        ...

    def arm(self, epoch: float) -> float:
        """Arm the alarm at ``epoch``; return the value read back (RtcError on refusal)."""
        ...

    def disarm(self) -> None:
        """Disarm any alarm."""
        ...

    def now(self) -> float:
        """The RTC's current time."""
        ...


def _whole_seconds(epoch: float) -> int:
    if isinstance(epoch, bool) or not math.isfinite(epoch) or epoch < 0:
        raise RtcError(f"alarm: must be finite epoch seconds >= 0, got {epoch!r}")
    return int(epoch)


class SysfsRtc:
    """The kernel's ``wakealarm`` file in an RTC's sysfs directory (any directory works)."""

    def __init__(self, directory: Path = DEFAULT_RTC) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.directory)!r})"

    # The two attribute accessors are the only file I/O: FakeRtcDir overrides them with the
    # kernel's semantics and inherits the arming procedure unchanged.
    def _read_attr(self, name: str) -> str:
        return (self.directory / name).read_text(encoding="ascii")

    def _write_attr(self, name: str, text: str) -> None:
        # One write() straight to the file: sysfs reports EBUSY/EINVAL from that call, and a
        # buffered file object would defer it to close() or split the value.
        fd = os.open(self.directory / name, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, text.encode("ascii"))
        finally:
            os.close(fd)

    def read_alarm(self) -> float | None:
        """The armed alarm from ``wakealarm``, or None when it reads empty."""
        try:
            text = self._read_attr("wakealarm").strip()
        except OSError as exc:
            raise RtcError(f"{self.directory / 'wakealarm'}: cannot read: {exc}") from exc
        try:
            value = int(text) if text else 0
        except ValueError:
            raise RtcError(f"{self.directory / 'wakealarm'}: unexpected value {text!r}") from None
        # The kernel shows nothing when disarmed; a plain file (a test, a copy) keeps our "0".
        return float(value) if value > 0 else None

    def now(self) -> float:
        """The RTC's time from ``since_epoch``."""
        path = self.directory / "since_epoch"
        try:
            return float(int(self._read_attr("since_epoch").strip()))
        except (OSError, ValueError) as exc:
            raise RtcError(f"{path}: cannot read the RTC time: {exc}") from exc

    def disarm(self) -> None:
        """Write ``0``: a time in the past disarms."""
        try:
            self._write_attr("wakealarm", "0")
        except OSError as exc:
            raise RtcError(f"{self.directory / 'wakealarm'}: cannot disarm: {exc}") from exc

    def arm(self, epoch: float) -> float:
        """Write ``0`` then ``epoch``, read it back; on failure re-arm what was there."""
        target = _whole_seconds(epoch)
        path = self.directory / "wakealarm"
        previous = self._previous()
        try:
            self._write_attr("wakealarm", "0")
            try:
                self._write_attr("wakealarm", str(target))
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                # Something (rtcwake, another agent) armed between our two writes: the
                # schedule is ours to keep, so clear it and try once more.
                log.warning("%s: busy, disarming and retrying once", path)
                self._write_attr("wakealarm", "0")
                self._write_attr("wakealarm", str(target))
        except OSError as exc:
            self._restore(previous)
            raise RtcError(
                f"{path}: refused alarm {target}: {exc.strerror or exc}"
                + (" (beyond the RTC's reach?)" if exc.errno == errno.EINVAL else "")
            ) from exc
        got = self.read_alarm()
        if got != target:
            self._restore(previous)
            what = "nothing" if got is None else f"{got:.0f}"
            hint = " (a time in the past disarms)" if got is None else ""
            raise RtcError(f"{path}: armed {target} but read back {what}{hint}")
        return got

    def _previous(self) -> float | None:
        try:
            return self.read_alarm()
        except RtcError:
            return None

    def _restore(self, previous: float | None) -> None:
        # Best effort: a failed change must not leave the device with no alarm at all when
        # it had a good one before. A previous alarm now in the past simply stays disarmed.
        try:
            self._write_attr("wakealarm", "0")
            if previous is not None:
                self._write_attr("wakealarm", str(int(previous)))
        except OSError as exc:
            log.warning("%s: could not restore alarm %s: %s", self.directory, previous, exc)


class FakeRtcDir(SysfsRtc):
    """A fake kernel RTC kept in a directory, for tests and the demo.

    The directory holds what the kernel would show: ``wakealarm`` (armed epoch or empty),
    ``since_epoch``, and, fake-only, ``fired`` (one line per alarm that went off), so a
    restarted process or a test sees the same state. ``write``/``read`` behave like the
    sysfs attribute; ``offset_s`` makes the RTC run ahead of ``clock`` (a local-time RTC);
    ``max_ahead_s`` makes it refuse far alarms with EINVAL, as rtc_cmos does.
    """

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], float] = time.time,
        offset_s: int = 0,
        max_ahead_s: int | None = None,
    ) -> None:
        super().__init__(directory)
        self._clock = clock
        self.offset_s = offset_s
        self.max_ahead_s = max_ahead_s
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.directory / "wakealarm").exists():
            self._save(None)

    def now(self) -> float:
        """The fake RTC's time: whole seconds, like ``since_epoch``."""
        return float(self._now())

    def read(self, name: str) -> str:
        """Read an attribute as the kernel shows it."""
        return self._read_attr(name)

    def write(self, name: str, text: str) -> None:
        """Write an attribute with the kernel's semantics (OSError EBUSY, EINVAL...)."""
        self._write_attr(name, text)

    def fired(self) -> list[int]:
        """The alarms that went off, oldest first."""
        path = self.directory / "fired"
        if not path.exists():
            return []
        return [int(line) for line in path.read_text(encoding="ascii").split()]

    def _now(self) -> int:
        return int(self._clock()) + self.offset_s

    def _read_attr(self, name: str) -> str:
        if name == "wakealarm":
            armed = self._load()
            return "" if armed is None else f"{armed}\n"
        if name == "since_epoch":
            now = self._now()
            (self.directory / "since_epoch").write_text(f"{now}\n", encoding="ascii")
            return f"{now}\n"
        raise FileNotFoundError(errno.ENOENT, "no such attribute", str(self.directory / name))

    def _write_attr(self, name: str, text: str) -> None:
        if name != "wakealarm":
            raise PermissionError(errno.EACCES, "read-only attribute", str(self.directory / name))
        text = text.strip()
        relative = text.startswith("+")
        try:
            value = int(text[1:] if relative else text, 0)
        except ValueError:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL)) from None
        now = self._now()
        alarm = now + value if relative else value
        if alarm > now or relative:
            if self._load() is not None:
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
            if self.max_ahead_s is not None and alarm - now > self.max_ahead_s:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            self._save(alarm)
        else:
            self._save(None)

    def _load(self) -> int | None:
        text = (self.directory / "wakealarm").read_text(encoding="ascii").strip()
        armed = int(text) if text else None
        if armed is not None and self._now() >= armed:
            # The alarm went off while nobody looked: one-shot, so it is spent.
            with (self.directory / "fired").open("a", encoding="ascii") as f:
                f.write(f"{armed}\n")
            self._save(None)
            return None
        return armed

    def _save(self, armed: int | None) -> None:
        # Write-then-rename: a reader in another process never sees half a value.
        tmp = self.directory / ".wakealarm.tmp"
        tmp.write_text("" if armed is None else f"{armed}\n", encoding="ascii")
        tmp.replace(self.directory / "wakealarm")


class RtcwakeRtc:
    """util-linux ``rtcwake -m no`` arms the alarm; sysfs reads it back."""

    def __init__(
        self,
        device: str = "rtc0",
        *,
        sysfs_root: Path = Path("/sys/class/rtc"),
        rtcwake: str = "rtcwake",
        timeout_s: float = 10.0,
        tolerance_s: int = 2,
    ) -> None:
        self.device = device
        self._sysfs = SysfsRtc(sysfs_root / device)
        self._rtcwake = rtcwake
        self._timeout_s = timeout_s
        # rtcwake reads the RTC itself, a moment after we do: allow for the second ticking.
        self._tolerance_s = tolerance_s

    def read_alarm(self) -> float | None:
        """The armed alarm from sysfs."""
        return self._sysfs.read_alarm()

    def now(self) -> float:
        """The RTC's time from sysfs."""
        return self._sysfs.now()

    def disarm(self) -> None:
        """``rtcwake -m disable``."""
        self._run(["-m", "disable"])

    def arm(self, epoch: float) -> float:
        """``rtcwake -m no -s N``, with N counted on the RTC's own clock; read back."""
        target = _whole_seconds(epoch)
        # --utc plus a relative time keeps rtcwake out of time zones: it arms its RTC
        # reading + N + 1 as read, which is exactly our RTC-base target.
        seconds = target - int(self.now()) - 1
        if seconds <= 0:
            raise RtcError(f"alarm: {target} is not in the RTC's future")
        self._run(["-m", "no", "--utc", "-s", str(seconds)])
        got = self.read_alarm()
        if got is None or abs(got - target) > self._tolerance_s:
            raise RtcError(f"rtcwake armed {target} but sysfs reads back {got}")
        return got

    def _run(self, args: Sequence[str]) -> None:
        cmd = [self._rtcwake, "-d", self.device, *args]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self._timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RtcError(f"{' '.join(cmd)}: {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            raise RtcError(f"{' '.join(cmd)}: {detail}")


# --- capability probe ---------------------------------------------------------------------

# rtc_cmos at probe: "rtc_cmos 00:01: alarms up to one day, y3k, 242 bytes nvram, hpet irqs".
_ALARMS_UP_TO = re.compile(r"\balarms up to one (day|month|year)\b")
_REACH = {"day": ONE_DAY_S, "month": ONE_MONTH_S, "year": ONE_YEAR_S}


def probe_capabilities(proc_driver_rtc: Path, dmesg_text: str, adjtime: Path) -> RtcCapabilities:
    """What the RTC can do, from /proc/driver/rtc, the kernel log and /etc/adjtime.

    The kernel log's rtc_cmos line is authoritative. Failing that, /proc/driver/rtc on older
    kernels prints the alarm date fields the CMOS cannot match as ``**``. Failing both, assume
    one day: relay wakes cost a boot, a missed wake costs a person their call.
    """
    max_ahead = _reach_from_dmesg(dmesg_text)
    if max_ahead is None:
        max_ahead = _reach_from_proc(proc_driver_rtc)
    return RtcCapabilities(
        max_ahead_s=ONE_DAY_S if max_ahead is None else max_ahead,
        local_time=_adjtime_is_local(adjtime),
    )


def _reach_from_dmesg(text: str) -> int | None:
    # The last probe wins: a driver re-bound after a module reload reports again.
    found = _ALARMS_UP_TO.findall(text)
    return _REACH[found[-1]] if found else None


def _reach_from_proc(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() != "alrm_date":
            continue
        parts = value.strip().split("-")
        if len(parts) != 3:
            return None
        _year, month, day = parts
        if "*" in day:
            return ONE_DAY_S
        if "*" in month:
            return ONE_MONTH_S
        return None
    return None


def _adjtime_is_local(path: Path) -> bool:
    # hwclock's format: drift line, last calibration line, then "UTC" or "LOCAL". A missing
    # file or line means UTC, as hwclock and rtcwake assume.
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return False
    return len(lines) >= 3 and lines[2].strip().upper() == "LOCAL"
