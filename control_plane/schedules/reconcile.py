"""Is the device's armed alarm the one the plan needs, and was the device up on time? Pure.

The control plane publishes wake windows; the edge plans its alarm (``edge.wake.planner``)
and reports it in ``twin/reported``. These functions compare the two from the facts alone,
so they are tested without a database or a broker. They judge the report as of the moment
the device sent it (its ``ts``): a device that has been off since then knew no later facts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

FindingKind = Literal["stale", "refused", "mismatch"]
Presence = Literal["pending", "woke", "missed"]

# An armed alarm within this many seconds of the planned one is the planned one (the edge
# uses the same tolerance, edge.wake.service.MATCH_TOLERANCE_S).
TOLERANCE_S = 2.0

Window = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Finding:
    """Something wrong between plan and report; ``kind`` picks the alert."""

    kind: FindingKind
    message: str
    data: dict[str, Any] = field(default_factory=dict)


def windows_of(schedule: Mapping[str, Any]) -> list[Window]:
    """The ``(start, end)`` epoch windows of a published schedule section, sorted."""
    return sorted((float(w["start"]), float(w["end"])) for w in schedule.get("wakes", []))


def expected_alarm(
    report_ts: float, windows: Sequence[Window], lead_s: float, min_ahead_s: float
) -> float | None:
    """The wake alarm (UTC epoch) the device should have armed when it reported, or None.

    As the edge plans it: a window in progress, or whose alarm is less than ``min_ahead_s``
    away, needs no alarm; the alarm is for the first window after that, ``lead_s`` early.
    """
    active_end = -math.inf
    for start, end in windows:
        if start - lead_s - min_ahead_s <= report_ts < end:
            active_end = max(active_end, end)
    earliest = max(report_ts + min_ahead_s, active_end)
    for start, _end in sorted(windows):
        alarm = math.floor(start - lead_s)
        if alarm >= earliest - TOLERANCE_S:
            return float(alarm)
    return None


def check_alarm(
    *,
    report_ts: float,
    windows: Sequence[Window],
    lead_s: float,
    horizon_end: float,
    armed: float | None,
    rtc_max_ahead_s: float | None,
    min_ahead_s: float,
) -> str | None:
    """None when ``armed`` fits the plan; otherwise what is wrong, in words.

    Besides the wake alarm itself the edge may arm a relay (an RTC that cannot reach the
    wake: any alarm within its reach, before the wake) or, past the horizon, a fallback
    daily wake: both are accepted when the report's facts allow them.
    """
    want = expected_alarm(report_ts, windows, lead_s, min_ahead_s)
    relay_ok = (
        armed is not None
        and rtc_max_ahead_s is not None
        and report_ts < armed <= report_ts + rtc_max_ahead_s + TOLERANCE_S
    )
    if want is None:
        if armed is None or relay_ok:
            return None
        if windows and armed >= horizon_end - lead_s - TOLERANCE_S:
            return None  # the edge's fallback daily wake beyond the published horizon
        return f"alarm armed at {_iso(armed)} but no wake is due"
    if armed is None:
        return f"no alarm armed; the next wake needs one at {_iso(want)}"
    if abs(armed - want) <= TOLERANCE_S:
        return None
    if armed < want and relay_ok:
        return None
    if armed < want:
        return f"alarm armed at {_iso(armed)}, earlier than the next wake's {_iso(want)}"
    return f"alarm armed at {_iso(armed)} skips the wake whose alarm is {_iso(want)}"


def reconcile(
    *,
    now: float,
    published_version: int,
    published_at: float,
    schedule: Mapping[str, Any],
    reported: Mapping[str, Any] | None,
    online: bool,
    online_since: float | None,
    stale_after_s: float,
    min_ahead_s: float,
) -> list[Finding]:
    """The findings for one device: a refused alarm, a stale report, an alarm mismatch."""
    findings: list[Finding] = []
    # Stale: online for a while since the schedule went out, still not reporting it.
    since = max(published_at, online_since if online_since is not None else published_at)
    overdue = online and now - since >= stale_after_s
    if reported is None:
        if overdue:
            findings.append(
                Finding(
                    "stale",
                    f"no report since schedule v{published_version} was published",
                    {"published_version": published_version},
                )
            )
        return findings
    error = reported.get("alarm_error")
    version = reported.get("schedule_version")
    base = {"published_version": published_version, "reported_version": version}
    if error:
        findings.append(Finding("refused", f"the device refused: {error}", {**base}))
    if version is None or version < published_version:
        if overdue and not error:
            have = "no schedule" if version is None else f"schedule v{version}"
            findings.append(
                Finding(
                    "stale",
                    f"still on {have}; v{published_version} was published",
                    base,
                )
            )
        return findings
    if error:
        return findings  # what is armed after a refusal is the old plan: nothing to compare
    armed = reported.get("armed_alarm")
    report_ts = float(reported.get("ts") or now)
    problem = check_alarm(
        report_ts=report_ts,
        windows=windows_of(schedule),
        lead_s=float(schedule.get("lead_s", 0)),
        horizon_end=float(schedule.get("horizon_end", 0)),
        armed=None if armed is None else float(armed),
        rtc_max_ahead_s=reported.get("rtc_max_ahead_s"),
        min_ahead_s=min_ahead_s,
    )
    if problem:
        findings.append(
            Finding("mismatch", problem, {**base, "armed_alarm": armed, "report_ts": report_ts})
        )
    return findings


def presence(
    *,
    now: float,
    start: float,
    end: float,
    lead_s: float,
    grace_s: float,
    early_s: float,
    online: bool,
    last_seen: float | None,
    online_at: float | None = None,
) -> Presence:
    """Was the device up for the window starting at ``start``: woke, missed, or not yet known.

    Up means: seen (any message) since shortly before its alarm, or online now while the
    window lasts. ``online_at`` is when the control plane saw it come online for this
    window, if it did. Missed is decided at ``start + grace_s``, not before.
    """
    seen_from = start - lead_s - early_s
    if online_at is not None and seen_from <= online_at <= end:
        return "woke"
    if online and seen_from <= now <= end:
        return "woke"
    if last_seen is not None and seen_from <= last_seen <= max(end, start + grace_s):
        return "woke"
    if now < start + grace_s:
        return "pending"
    return "missed"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
