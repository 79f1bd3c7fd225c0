"""Which RTC alarm to arm, given now, the wake windows and what the RTC can do. Pure.

Everything here is a function of its arguments: no clock, no files, no kernel. The service
(``edge.wake.service``) feeds it the time and the schedule and carries out the plan.

Times are UTC epoch seconds unless a name says ``rtc``. A window is ``(start, end)``; the
device must be up ``lead_s`` before ``start`` (boot, network, call stack) and stay up to
``end``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from edge.protocol import Wake

Window = tuple[float, float]
AlarmKind = Literal["wake", "relay", "none"]

# The alarm must lie at least this far ahead when it is armed: the shutdown after arming
# takes time, and an alarm that fires while the PC is still on is spent (one-shot) and the
# PC then sleeps through the appointment. For the same reason a wake whose alarm would fall
# closer than this counts as already begun: the device stays on for it.
MIN_AHEAD_S = 120
# Relay alarms keep this much below the RTC's reach, so the clock moving on between
# planning and writing never pushes the alarm out of range (the kernel answers EINVAL).
RTC_MARGIN_S = 300

ONE_DAY_S = 86_400
# "alarms up to one month": the alarm matches the day of the month, so the reach is the
# shortest month. "one year": month and day match.
ONE_MONTH_S = 28 * ONE_DAY_S
ONE_YEAR_S = 365 * ONE_DAY_S


@dataclass(frozen=True, slots=True)
class RtcCapabilities:
    """What the RTC can do: how far ahead an alarm may be (None: unlimited), its time base."""

    max_ahead_s: int | None
    local_time: bool

    def __post_init__(self) -> None:
        # Below an hour, relay wakes would follow each other faster than a PC boots.
        if self.max_ahead_s is not None and self.max_ahead_s < 3600:
            raise ValueError(f"max_ahead_s: must be None or >= 3600, got {self.max_ahead_s}")


@dataclass(frozen=True, slots=True)
class AlarmPlan:
    """The alarm to arm and why.

    ``alarm_at`` is the UTC instant to wake (None: arm nothing). ``window`` is the wake
    window the alarm leads to (for a relay, the one it leads towards). ``active`` is the
    window the device is in now, or so close to that powering off is pointless.
    """

    alarm_at: float | None
    kind: AlarmKind
    reason: str
    window: Window | None
    active: Window | None = None
    fallback: bool = False


def windows_of(wakes: Iterable[Wake | tuple[float, float]]) -> list[Window]:
    """The wakes as ``(start, end)`` windows, sorted by start."""
    out: list[Window] = []
    for i, wake in enumerate(wakes):
        start, end = (wake.start, wake.end) if isinstance(wake, Wake) else wake
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"wakes[{i}]: invalid window ({start!r}, {end!r})")
        out.append((float(start), float(end)))
    out.sort()
    return out


def in_window(
    now: float, wakes: Sequence[Wake | tuple[float, float]], lead_s: float = 0
) -> Window | None:
    """The window ``now`` lies in (its start brought forward by ``lead_s``), or None.

    When windows overlap, the one that ends last wins: the device stays up for all of them.
    """
    best: Window | None = None
    for start, end in windows_of(wakes):
        if start - lead_s <= now < end and (best is None or end > best[1]):
            best = (start, end)
    return best


def plan_alarm(
    now: float,
    wakes: Sequence[Wake | tuple[float, float]],
    lead_s: int,
    caps: RtcCapabilities,
    tz: tzinfo,
    *,
    min_ahead_s: int = MIN_AHEAD_S,
) -> AlarmPlan:
    """Plan the next RTC alarm: a wake ``lead_s`` before the next window, or a relay wake.

    A window in progress (or whose alarm would be less than ``min_ahead_s`` away) needs no
    alarm: the device is up and stays up. The plan is for the first window whose alarm is
    after that. If the RTC cannot reach it, the plan is a relay: wake within the RTC's
    reach (a whole number of reaches before the wake), re-plan, power off again.
    """
    if lead_s < 0:
        raise ValueError(f"lead_s: must be >= 0, got {lead_s}")
    windows = windows_of(wakes)
    active = in_window(now, windows, lead_s + min_ahead_s)
    # An alarm inside the active window would fire while the PC is on and be wasted.
    earliest = max(now + min_ahead_s, active[1] if active else -math.inf)
    target = next((w for w in windows if w[0] - lead_s >= earliest), None)
    prefix = f"in window {_span(active, tz)}; " if active else ""

    if target is None:
        if active is not None:
            reason = f"{prefix}no later wake known"
        elif not windows:
            reason = "no wakes scheduled"
        else:
            reason = (
                f"all {len(windows)} wakes are in the past "
                f"(the last ended {_fmt(max(end for _, end in windows), tz)})"
            )
        return AlarmPlan(None, "none", reason, None, active)

    # Whole seconds (the RTC's resolution), rounded down: a second early beats one late.
    wake_alarm = math.floor(target[0] - lead_s)
    ahead = wake_alarm - now
    # RTC_MARGIN_S > min_ahead_s, so an alarm pushed on by min_ahead_s is still in reach.
    reach = None if caps.max_ahead_s is None else caps.max_ahead_s - RTC_MARGIN_S
    if reach is None or ahead <= reach:
        reason = f"{prefix}next wake {_fmt(target[0], tz)}, alarm {lead_s} s before"
        return AlarmPlan(float(wake_alarm), "wake", reason, target, active)
    # Relays step back from the wake by whole reaches, not forward from now: the plan then
    # stays put from one tick to the next (no re-arming every tick), and the relays fall at
    # the same time of day as the wake rather than drifting into the night.
    steps = math.ceil(ahead / reach) - 1
    relay = wake_alarm - steps * reach  # the latest step within reach: now < relay <= reach
    # Too close to arm (on by hand just before a relay), or inside the active window (it would
    # fire while the PC is on): take the next step, as long as the RTC still reaches it. A
    # window too long for that gets its relay re-planned when it ends.
    while steps > 0 and relay < earliest and relay + reach <= now + reach + min_ahead_s:
        steps -= 1
        relay += reach
    if steps == 0:
        reason = f"{prefix}next wake {_fmt(target[0], tz)}, alarm {lead_s} s before"
        return AlarmPlan(float(wake_alarm), "wake", reason, target, active)
    reason = (
        f"{prefix}next wake {_fmt(target[0], tz)} is {_duration(ahead)} ahead, beyond the "
        f"RTC's {_duration(caps.max_ahead_s or 0)} reach: relay wake {_fmt(relay, tz)}"
    )
    return AlarmPlan(float(relay), "relay", reason, target, active)


def fallback_wakes(
    now: float,
    wakes: Sequence[Wake | tuple[float, float]],
    tz: tzinfo,
    *,
    horizon_end: float | None = None,
    count: int = 2,
) -> list[Window]:
    """Daily windows at the last known appointment's local time, after the schedule ends.

    A device offline past its schedule's horizon knows no more appointments, but its person
    most likely still expects the call at the usual time: it keeps waking daily at the last
    wake's local time of day, for as long, until a new schedule arrives. Days start after
    the last wake and not before ``horizon_end`` (inside the horizon a gap is deliberate).
    Returns windows that have not ended, at least ``count`` of them starting after ``now``.
    """
    windows = windows_of(wakes)
    if not windows:
        return []
    last_start, last_end = max(windows)
    duration = last_end - last_start
    local = datetime.fromtimestamp(last_start, tz)
    time_of_day = local.time()
    not_before = max(last_start + 1, horizon_end if horizon_end is not None else -math.inf)
    # Skip the days already gone, or not yet allowed, without walking them one by one (a
    # device offline for months; a horizon weeks away).
    first_day = max(
        local.date(),
        datetime.fromtimestamp(now, tz).date() - timedelta(days=1),
        datetime.fromtimestamp(not_before, tz).date() - timedelta(days=1),
    )
    out: list[Window] = []
    day = first_day
    while sum(1 for start, _ in out if start > now) < count:
        # fold=0: in the repeated hour of autumn, the first occurrence; in spring's missing
        # hour, zoneinfo moves the time forward by the gap, as the control plane's RRULE does.
        start = datetime.combine(day, time_of_day, tzinfo=tz).timestamp()
        if start >= not_before and start + duration > now:
            out.append((start, start + duration))
        day += timedelta(days=1)
    return out


def plan_with_fallback(
    now: float,
    wakes: Sequence[Wake | tuple[float, float]],
    lead_s: int,
    caps: RtcCapabilities,
    tz: tzinfo,
    *,
    horizon_end: float | None = None,
    min_ahead_s: int = MIN_AHEAD_S,
) -> AlarmPlan:
    """``plan_alarm`` over the schedule, then over ``fallback_wakes`` beyond its horizon."""
    windows = windows_of(wakes)
    extra = fallback_wakes(now, windows, tz, horizon_end=horizon_end)
    plan = plan_alarm(now, windows + extra, lead_s, caps, tz, min_ahead_s=min_ahead_s)
    if plan.window is not None and plan.window in extra:
        time_of_day = datetime.fromtimestamp(plan.window[0], tz).strftime("%H:%M")
        reason = (
            f"schedule exhausted (horizon {_fmt(horizon_end, tz) if horizon_end else 'unknown'}"
            f"): fallback daily wake at {time_of_day} local, the last appointment's time; "
            f"{plan.reason}"
        )
        return AlarmPlan(plan.alarm_at, plan.kind, reason, plan.window, plan.active, True)
    return plan


# --- the RTC's time base ------------------------------------------------------------------


def utc_offset(epoch: float, tz: tzinfo) -> int:
    """Seconds ``tz`` is ahead of UTC at the instant ``epoch`` (DST included)."""
    offset = datetime.fromtimestamp(epoch, UTC).astimezone(tz).utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def wall_epoch(epoch: float, tz: tzinfo) -> float:
    """The local wall-clock time at ``epoch``, as an epoch computed as if it were UTC."""
    return epoch + utc_offset(epoch, tz)


def from_wall_epoch(wall: float, tz: tzinfo, *, fold: int = 0) -> float:
    """Inverse of ``wall_epoch``; ``fold`` picks the occurrence of an hour that repeats."""
    naive = datetime.fromtimestamp(wall, UTC).replace(tzinfo=None)
    return naive.replace(tzinfo=tz, fold=fold).timestamp()


def rtc_offset(
    caps: RtcCapabilities, tz: tzinfo, *, now: float, rtc_now: float | None = None
) -> int:
    """How far the RTC's epoch runs ahead of UTC: what to add to a UTC alarm to arm it.

    An RTC just counts seconds from whatever it was last set to, so an alarm fires when
    that count reaches it. A local-time RTC keeps the offset it was set with until someone
    rewrites it (the kernel's NTP sync uses the offset from boot), not the offset in force
    at the alarm: a PC powered off on Saturday evening still counts in winter time when
    summer time starts on Sunday morning. So the offset is measured (``rtc_now`` against
    ``now``) when the RTC can be read, as util-linux's rtcwake does; otherwise a local RTC
    is assumed to have been set at the current offset and a UTC one to read UTC.
    """
    if rtc_now is not None:
        return round(rtc_now - now)
    return utc_offset(now, tz) if caps.local_time else 0


def _fmt(epoch: float | None, tz: tzinfo) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M %Z").strip()


def _span(window: Window | None, tz: tzinfo) -> str:
    if window is None:
        return ""
    return f"{_fmt(window[0], tz)}–{datetime.fromtimestamp(window[1], tz).strftime('%H:%M')}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    # Up to two days in hours: "24 h" is how people speak of an RTC's day-long reach.
    days, rest = divmod(seconds, ONE_DAY_S) if seconds >= 2 * ONE_DAY_S else (0, seconds)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else ""]
    if not days:
        parts.append(f"{minutes} min" if minutes or not hours else "")
    return " ".join(p for p in parts if p)
