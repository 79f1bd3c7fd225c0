"""Reported alarm against the plan, and presence at wake time. Pure."""

from __future__ import annotations

from typing import Any

from control_plane.schedules.reconcile import check_alarm, expected_alarm, presence, reconcile

H = 3600.0
DAY = 24 * H
T0 = 1_715_000_000.0  # a reporting moment
LEAD = 120.0
# Three wakes: in 10 hours, in a day and 10 hours, and in three days.
WINDOWS = [(T0 + 10 * H, T0 + 10.5 * H), (T0 + 34 * H, T0 + 34.5 * H), (T0 + 82 * H, T0 + 82.5 * H)]
SCHEDULE: dict[str, Any] = {
    "version": 7,
    "lead_s": LEAD,
    "horizon_end": T0 + 14 * DAY,
    "wakes": [{"start": s, "end": e, "appointment_ids": ["1"]} for s, e in WINDOWS],
}


def check(armed: float | None, *, at: float = T0, max_ahead: float | None = None) -> str | None:
    return check_alarm(
        report_ts=at,
        windows=WINDOWS,
        lead_s=LEAD,
        horizon_end=SCHEDULE["horizon_end"],
        armed=armed,
        rtc_max_ahead_s=max_ahead,
        min_ahead_s=120,
    )


def test_expected_alarm_is_the_next_window_minus_lead() -> None:
    assert expected_alarm(T0, WINDOWS, LEAD, 120) == T0 + 10 * H - LEAD
    # In a window (or less than min_ahead before its alarm): the next one.
    assert expected_alarm(T0 + 10.2 * H, WINDOWS, LEAD, 120) == T0 + 34 * H - LEAD
    assert expected_alarm(T0 + 10 * H - LEAD - 60, WINDOWS, LEAD, 120) == T0 + 34 * H - LEAD
    assert expected_alarm(T0 + 90 * H, WINDOWS, LEAD, 120) is None


def test_alarm_checks() -> None:
    want = T0 + 10 * H - LEAD
    assert check(want) is None
    assert check(want + 1.5) is None  # RTC whole seconds
    assert check(None) is not None and "no alarm armed" in (check(None) or "")
    assert "skips" in (check(T0 + 34 * H - LEAD) or "")
    assert "earlier" in (check(T0 + 5 * H) or "")
    # A 24 h RTC relays: any alarm within its reach, before the wake, is fine.
    # Reported after the second wake, the third is 47 h away: beyond a 24 h RTC's reach.
    relay_at = T0 + 82 * H - LEAD - (DAY - 300)
    assert check(relay_at, at=T0 + 35 * H, max_ahead=DAY) is None
    assert "earlier" in (check(relay_at, at=T0 + 35 * H) or "")
    # Past the last wake: nothing, or the edge's fallback daily wake beyond the horizon.
    late = T0 + 90 * H
    assert check(None, at=late) is None
    assert check(SCHEDULE["horizon_end"] + 10 * H, at=late) is None
    assert "no wake is due" in (check(T0 + 100 * H, at=late) or "")


def findings(
    reported: dict[str, Any] | None, *, online: bool = True, now: float = T0 + 3600
) -> list[str]:
    return [
        f.kind
        for f in reconcile(
            now=now,
            published_version=7,
            published_at=T0 - 600,
            schedule=SCHEDULE,
            reported=reported,
            online=online,
            online_since=T0 - 7200,
            stale_after_s=900,
            min_ahead_s=120,
        )
    ]


def test_reconcile_kinds() -> None:
    good = {"ts": T0, "schedule_version": 7, "armed_alarm": T0 + 10 * H - LEAD}
    assert findings(good) == []
    assert findings({**good, "armed_alarm": T0 + 34 * H - LEAD}) == ["mismatch"]
    refused = {**good, "schedule_version": 6, "alarm_error": "schedule rejected: $.wakes[0]..."}
    assert findings(refused) == ["refused"]
    assert findings({**good, "alarm_error": "RTC alarm not armed: EINVAL"}) == ["refused"]
    # Still on the old version long after publication while online: stale.
    assert findings({**good, "schedule_version": 6}) == ["stale"]
    assert findings({**good, "schedule_version": 6}, now=T0 - 300) == []  # not yet
    assert findings({**good, "schedule_version": 6}, online=False) == []  # it will, at boot
    assert findings(None) == ["stale"]


def test_presence() -> None:
    start, end = T0, T0 + 1800
    kw: dict[str, Any] = {
        "start": start,
        "end": end,
        "lead_s": LEAD,
        "grace_s": 300,
        "early_s": 600,
    }
    assert presence(now=start + 60, online=False, last_seen=None, **kw) == "pending"
    assert presence(now=start + 301, online=False, last_seen=None, **kw) == "missed"
    assert presence(now=start + 301, online=False, last_seen=start - 5 * H, **kw) == "missed"
    assert presence(now=start + 60, online=True, last_seen=start - 5 * H, **kw) == "woke"
    assert presence(now=start + 400, online=False, last_seen=start - LEAD + 90, **kw) == "woke"
    assert presence(now=start + 400, online=False, last_seen=None, online_at=start, **kw) == "woke"
