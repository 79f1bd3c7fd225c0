"""The pure alarm planner: DST, relay chains, lead times, past and in-progress wakes."""

from __future__ import annotations

import itertools
import math
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import Wake
from edge.wake.planner import (
    MIN_AHEAD_S,
    ONE_DAY_S,
    ONE_MONTH_S,
    RTC_MARGIN_S,
    RtcCapabilities,
    fallback_wakes,
    from_wall_epoch,
    in_window,
    plan_alarm,
    plan_with_fallback,
    rtc_offset,
    utc_offset,
    wall_epoch,
    windows_of,
)
from edge.wake.rtc import FakeRtcDir

ROME = ZoneInfo("Europe/Rome")
UNLIMITED = RtcCapabilities(max_ahead_s=None, local_time=False)
DAY_RTC = RtcCapabilities(max_ahead_s=ONE_DAY_S, local_time=False)
LEAD = 120


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    """Epoch of a Rome wall-clock time."""
    return datetime(y, mo, d, h, mi, tzinfo=ROME).timestamp()


def local(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, ROME)


def daily(y: int, mo: int, first_day: int, days: int, h: int = 10) -> list[Wake]:
    """A daily 30-minute appointment at ``h``:00 Rome time, as the control plane expands it."""
    out = []
    for i in range(days):
        day = date(y, mo, first_day) + timedelta(days=i)
        start = at(day.year, day.month, day.day, h)
        out.append(Wake(start=start, end=start + 1800))
    return out


def follow(
    start_now: float, wakes: list[Wake], caps: RtcCapabilities, steps: int
) -> list[tuple[float, str]]:
    """Live through ``steps`` plans: wake at each alarm, stay to the window's end, re-plan."""
    now = start_now
    alarms: list[tuple[float, str]] = []
    for _ in range(steps):
        plan = plan_alarm(now, wakes, LEAD, caps, ROME)
        assert plan.alarm_at is not None, plan.reason
        alarms.append((plan.alarm_at, plan.kind))
        if plan.kind == "relay":
            now = plan.alarm_at + 90  # booted, re-planning
        else:
            assert plan.window is not None
            now = plan.window[1]  # the appointment is over
    return alarms


@pytest.mark.parametrize(
    ("month", "first_day", "utc_step_h"),
    [
        (3, 28, 23),  # 31 March 2024: 02:00 CET -> 03:00 CEST, the night is an hour short
        (10, 25, 25),  # 27 October 2024: 03:00 CEST -> 02:00 CET, an hour long
    ],
    ids=["spring-forward", "fall-back"],
)
def test_daily_wake_stays_at_local_time_across_dst(
    month: int, first_day: int, utc_step_h: int
) -> None:
    wakes = daily(2024, month, first_day, 6)
    alarms = follow(at(2024, month, first_day, 11), wakes, UNLIMITED, 5)
    assert [kind for _, kind in alarms] == ["wake"] * 5
    for epoch, _ in alarms:
        assert (local(epoch).hour, local(epoch).minute) == (9, 58)
    steps = [b - a for (a, _), (b, _) in itertools.pairwise(alarms)]
    assert utc_step_h * 3600 in steps  # the DST night
    assert all(s in (utc_step_h * 3600, ONE_DAY_S) for s in steps)


def test_local_rtc_armed_before_spring_forward_fires_on_time(tmp_path: Path) -> None:
    # Saturday 20:00 CET the PC arms for Sunday's 10:00 CEST call and powers off. The RTC,
    # set to local time, counts on in winter time all night: nothing rewrites it while off.
    now = at(2024, 3, 30, 20)
    wakes = daily(2024, 3, 30, 3)
    caps = RtcCapabilities(max_ahead_s=ONE_DAY_S, local_time=True)
    plan = plan_alarm(now, wakes, LEAD, caps, ROME)
    assert plan.alarm_at is not None
    assert local(plan.alarm_at).strftime("%d %H:%M %Z") == "31 09:58 CEST"

    clock = [now]
    rtc = FakeRtcDir(tmp_path / "rtc", clock=lambda: clock[0], offset_s=utc_offset(now, ROME))
    offset = rtc_offset(caps, ROME, now=now, rtc_now=rtc.now())
    assert offset == 3600  # CET, the offset the RTC runs at, not CEST at the alarm
    assert rtc_offset(caps, ROME, now=now) == 3600  # the same when the RTC can't be read
    rtc.arm(plan.alarm_at + offset)
    clock[0] = plan.alarm_at - 1
    assert rtc.fired() == []
    clock[0] = plan.alarm_at
    assert rtc.read_alarm() is None
    assert rtc.fired() == [plan.alarm_at + 3600]

    # The naive conversion (wall time at the alarm, CEST) would have woken it an hour late.
    assert wall_epoch(plan.alarm_at, ROME) == plan.alarm_at + 7200


def test_wall_epoch_round_trip_across_dst() -> None:
    for epoch in (at(2024, 3, 31, 1, 30), at(2024, 3, 31, 3, 30), at(2024, 7, 1, 12)):
        assert from_wall_epoch(wall_epoch(epoch, ROME), ROME) == epoch
    # 02:30 happens twice on 27 October: fold picks which.
    first = datetime(2024, 10, 27, 2, 30, tzinfo=ROME, fold=0).timestamp()
    second = datetime(2024, 10, 27, 2, 30, tzinfo=ROME, fold=1).timestamp()
    assert second - first == 3600
    assert wall_epoch(first, ROME) == wall_epoch(second, ROME)
    assert from_wall_epoch(wall_epoch(second, ROME), ROME, fold=1) == second
    assert utc_offset(first, ROME) == 7200 and utc_offset(second, ROME) == 3600


def test_weekend_gap_with_a_24h_rtc_chains_relay_wakes() -> None:
    friday = Wake(start=at(2024, 5, 17, 10), end=at(2024, 5, 17, 10, 30))
    monday = Wake(start=at(2024, 5, 20, 10), end=at(2024, 5, 20, 10, 30))
    now = friday.end
    chain = []
    for _ in range(5):
        plan = plan_alarm(now, [friday, monday], LEAD, DAY_RTC, ROME)
        assert plan.alarm_at is not None
        assert plan.window == (monday.start, monday.end)
        assert now + MIN_AHEAD_S <= plan.alarm_at <= now + ONE_DAY_S - RTC_MARGIN_S
        chain.append(plan)
        if plan.kind == "wake":
            break
        assert "relay" in plan.reason and "24 h reach" in plan.reason
        now = plan.alarm_at + 90
    assert [p.kind for p in chain] == ["relay", "relay", "wake"]
    assert chain[-1].alarm_at == monday.start - LEAD
    # Relays step back from the wake by whole reaches: daytime, and stable tick after tick.
    reach = ONE_DAY_S - RTC_MARGIN_S
    assert [p.alarm_at for p in chain[:2]] == [monday.start - LEAD - k * reach for k in (2, 1)]
    later = plan_alarm(friday.end + 1800, [friday, monday], LEAD, DAY_RTC, ROME)
    assert later.alarm_at == chain[0].alarm_at
    # Switched on by hand a minute before a relay would fire: the next relay instead.
    assert chain[0].alarm_at is not None
    near = plan_alarm(chain[0].alarm_at - 60, [friday, monday], LEAD, DAY_RTC, ROME)
    assert near.alarm_at == chain[1].alarm_at


def test_unlimited_rtc_wakes_directly_across_the_weekend() -> None:
    friday = (at(2024, 5, 17, 10), at(2024, 5, 17, 10, 30))
    monday = (at(2024, 5, 20, 10), at(2024, 5, 20, 10, 30))
    plan = plan_alarm(friday[1], [friday, monday], LEAD, UNLIMITED, ROME)
    assert (plan.kind, plan.alarm_at) == ("wake", monday[0] - LEAD)
    month = RtcCapabilities(max_ahead_s=ONE_MONTH_S, local_time=False)
    assert plan_alarm(friday[1], [friday, monday], LEAD, month, ROME).kind == "wake"


def test_lead_time_larger_than_the_gap_keeps_the_device_on() -> None:
    wakes = daily(2024, 5, 20, 2)
    now = wakes[0].start - 60  # a minute before the call, lead is two
    plan = plan_alarm(now, wakes, LEAD, UNLIMITED, ROME)
    assert plan.active == (wakes[0].start, wakes[0].end)
    assert (plan.kind, plan.window) == ("wake", (wakes[1].start, wakes[1].end))
    assert plan.reason.startswith("in window")

    # Back-to-back appointments closer than the lead: no point going off in between.
    a = (at(2024, 5, 20, 10), at(2024, 5, 20, 10, 30))
    b = (at(2024, 5, 20, 10, 31), at(2024, 5, 20, 11))
    plan = plan_alarm(a[1], [a, b], 300, UNLIMITED, ROME)
    assert plan.active == b
    assert (plan.kind, plan.alarm_at) == ("none", None)
    assert "no later wake" in plan.reason


def test_all_wakes_in_the_past() -> None:
    wakes = daily(2024, 5, 20, 3)
    plan = plan_alarm(at(2024, 6, 1, 9), wakes, LEAD, UNLIMITED, ROME)
    assert (plan.alarm_at, plan.kind, plan.window, plan.active) == (None, "none", None, None)
    assert "all 3 wakes are in the past" in plan.reason
    assert "2024-05-22 10:30" in plan.reason


def test_no_wakes_at_all() -> None:
    plan = plan_alarm(at(2024, 6, 1, 9), [], LEAD, UNLIMITED, ROME)
    assert (plan.kind, plan.reason) == ("none", "no wakes scheduled")
    assert plan_with_fallback(at(2024, 6, 1, 9), [], LEAD, UNLIMITED, ROME).kind == "none"


def test_wake_in_progress_plans_the_next_one() -> None:
    wakes = daily(2024, 5, 20, 2)
    plan = plan_alarm(at(2024, 5, 20, 10, 10), wakes, LEAD, UNLIMITED, ROME)
    assert plan.active == (wakes[0].start, wakes[0].end)
    assert plan.alarm_at == wakes[1].start - LEAD
    assert in_window(at(2024, 5, 20, 10, 10), wakes) == plan.active
    assert in_window(at(2024, 5, 20, 10, 30), wakes) is None  # end is exclusive


def test_alarm_never_lands_inside_the_active_window() -> None:
    long = (at(2024, 5, 20, 10), at(2024, 5, 20, 12))
    inner = (at(2024, 5, 20, 11), at(2024, 5, 20, 11, 30))
    after = (at(2024, 5, 21, 10), at(2024, 5, 21, 10, 30))
    plan = plan_alarm(at(2024, 5, 20, 10, 5), [long, inner, after], LEAD, UNLIMITED, ROME)
    assert plan.window == after
    assert in_window(at(2024, 5, 20, 11, 10), [inner, long]) == long  # the later end wins


def test_offline_past_the_horizon_falls_back_to_the_last_appointment_time() -> None:
    wakes = daily(2024, 3, 27, 3, h=16)  # 27..29 March, 16:00 CET
    horizon = at(2024, 3, 30, 0)
    now = at(2024, 4, 2, 18)  # Tuesday after Easter and the DST change, no news since
    plan = plan_with_fallback(now, wakes, LEAD, UNLIMITED, ROME, horizon_end=horizon)
    assert plan.fallback and plan.kind == "wake"
    assert plan.alarm_at is not None
    assert local(plan.alarm_at).strftime("%m-%d %H:%M %Z") == "04-03 15:58 CEST"
    assert "fallback daily wake at 16:00" in plan.reason
    # Inside a fallback window the device stays up, as for a real one.
    inside = plan_with_fallback(
        at(2024, 4, 3, 16, 5), wakes, LEAD, UNLIMITED, ROME, horizon_end=horizon
    )
    assert inside.active is not None and local(inside.active[0]).hour == 16


def test_fallback_respects_a_deliberate_gap_inside_the_horizon() -> None:
    wakes = daily(2024, 5, 20, 1)  # Monday only; nothing until the horizon on Friday
    horizon = at(2024, 5, 24, 0)
    plan = plan_with_fallback(at(2024, 5, 21, 9), wakes, LEAD, UNLIMITED, ROME, horizon_end=horizon)
    assert plan.alarm_at == at(2024, 5, 24, 10) - LEAD
    windows = fallback_wakes(at(2024, 5, 21, 9), wakes, ROME, horizon_end=horizon)
    assert [local(s).day for s, _ in windows] == [24, 25]
    # A schedule still ahead wins over any fallback.
    plan = plan_with_fallback(at(2024, 5, 19, 9), wakes, LEAD, UNLIMITED, ROME, horizon_end=horizon)
    assert not plan.fallback and plan.alarm_at == wakes[0].start - LEAD


def test_fallback_after_months_offline_is_cheap_and_correct() -> None:
    wakes = daily(2023, 1, 10, 1)
    now = at(2024, 8, 1, 12)
    windows = fallback_wakes(now, wakes, ROME)
    assert [local(s).strftime("%m-%d %H:%M") for s, _ in windows] == ["08-02 10:00", "08-03 10:00"]


def test_invalid_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="max_ahead_s"):
        RtcCapabilities(max_ahead_s=60, local_time=False)
    with pytest.raises(ValueError, match=r"wakes\[1\]"):
        windows_of([(1.0, 2.0), (5.0, 3.0)])
    with pytest.raises(ValueError, match="lead_s"):
        plan_alarm(0, [], -1, UNLIMITED, ROME)


_windows = st.lists(
    st.tuples(
        st.floats(min_value=1.7e9, max_value=1.7e9 + 40 * ONE_DAY_S), st.integers(0, 7200)
    ).map(lambda t: (t[0], t[0] + t[1])),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(
    now=st.floats(min_value=1.7e9 - ONE_DAY_S, max_value=1.7e9 + 45 * ONE_DAY_S),
    windows=_windows,
    lead=st.integers(0, 3600),
    reach=st.sampled_from([None, ONE_DAY_S, ONE_MONTH_S]),
)
def test_plan_invariants(
    now: float, windows: list[tuple[float, float]], lead: int, reach: int | None
) -> None:
    caps = RtcCapabilities(max_ahead_s=reach, local_time=False)
    plan = plan_alarm(now, windows, lead, caps, ROME)
    if plan.alarm_at is None:
        assert plan.kind == "none"
        # Nothing to arm only when no window's alarm is still ahead, beyond any active one.
        limit = max(now + MIN_AHEAD_S, plan.active[1] if plan.active else -math.inf)
        assert all(start - lead < limit for start, _ in windows)
        return
    assert plan.alarm_at == math.floor(plan.alarm_at)
    assert plan.alarm_at >= now + MIN_AHEAD_S - 1
    if reach is not None:
        assert plan.alarm_at <= now + reach - RTC_MARGIN_S + MIN_AHEAD_S
    assert plan.window is not None
    if plan.kind == "wake":
        assert plan.alarm_at == math.floor(plan.window[0] - lead)
    else:
        assert plan.alarm_at < plan.window[0] - lead
    if plan.active is not None and plan.alarm_at < plan.active[1] - 1:
        # Only a relay whose next step the RTC can't reach yet may fall inside the window.
        assert plan.kind == "relay" and reach is not None
        assert plan.alarm_at + reach - RTC_MARGIN_S > now + reach - RTC_MARGIN_S + MIN_AHEAD_S
