"""The control plane's schedules through the edge daemon's wake wiring (no broker).

The schedule is built by the control plane's own code and handed to a real ``EdgeDaemon``
(fake kernel RTC directory, recorded power) as ``twin/desired`` would deliver it; each "boot"
is a new daemon over the same state directory at a later fake time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from control_plane.schedules.config import ScheduleConfig
from control_plane.schedules.expansion import Series, expand
from control_plane.schedules.service import build_schedule
from edge import protocol as p
from edge.commission import arm_test, check_commission
from edge.config import EdgeConfig, MqttConfig, PathsConfig, PowerConfig, WakeConfig
from edge.daemon import EdgeDaemon
from edge.outbox import OutboxKind
from edge.wake import FakeRtcDir
from edge.waking import scaled_clock

ROME = ZoneInfo("Europe/Rome")
UTC = dt.UTC
DAY = 86_400


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rome(*args: int) -> float:
    return dt.datetime(*args, tzinfo=ROME).timestamp()  # type: ignore[misc]


def cp_schedule(
    series: list[Series], now: float, *, version: int = 1, lead_s: int = 120, days: float = 14
) -> dict[str, Any]:
    """The schedule section the control plane would publish at ``now``."""
    config = ScheduleConfig(lead_s=lead_s, horizon_days=days)
    start = dt.datetime.fromtimestamp(now, UTC)
    end = start + dt.timedelta(days=days)
    windows = expand(series, ROME, start, end, gap=dt.timedelta(seconds=lead_s))
    return build_schedule(
        version=version, windows=windows, horizon_end=end, config=config, policy="poweroff"
    )


def desired(schedule: dict[str, Any], version: int) -> bytes:
    return msgspec.json.encode({"v": 1, "ts": 1.0, "version": version, "schedule": schedule})


def config_for(tmp_path: Path, **wake: Any) -> EdgeConfig:
    """A simulated PC; no broker here: its reports find it disconnected, as when offline."""
    return EdgeConfig(
        device_id="pc-edge-1",
        mqtt=MqttConfig(password="unused", port=1),
        paths=PathsConfig(
            state_dir=str(tmp_path / "state"), rtc_dir=str(tmp_path / "rtc"), fake_rtc=True
        ),
        power=PowerConfig(backend="record", record_file=str(tmp_path / "power.jsonl")),
        wake=WakeConfig(**wake),
    )


def boot(config: EdgeConfig, clock: Clock) -> EdgeDaemon:
    """One boot of the PC: a daemon started at ``clock``'s time, wake service started."""
    daemon = EdgeDaemon(config, clock=clock)
    assert daemon.wake is not None
    asyncio.run(daemon.wake.start())
    return daemon


def apply(daemon: EdgeDaemon, payload: bytes) -> None:
    asyncio.run(daemon._apply_desired(payload))


def events(daemon: EdgeDaemon) -> list[p.Event]:
    items = daemon.outbox.peek(limit=500)
    return [p.decode(i.payload, p.Event) for i in items if i.kind == OutboxKind.EVENT]


def rtc(config: EdgeConfig, clock: Clock) -> FakeRtcDir:
    return FakeRtcDir(Path(config.paths.rtc_dir), clock=clock)


MON_FRI_10 = Series(
    "7", dt.datetime(2024, 1, 1, 10), dt.timedelta(minutes=30), "FREQ=WEEKLY;BYDAY=MO,FR"
)


def test_weekend_gap_with_a_24h_rtc_relays(tmp_path: Path) -> None:
    config = config_for(tmp_path, rtc_max_ahead_s=DAY)
    clock = Clock(rome(2024, 5, 10, 12, 0))  # Friday noon, after the Friday call
    first = boot(config, clock)
    apply(first, desired(cp_schedule([MON_FRI_10], clock.now), version=3))
    reasons = [e.message for e in events(first) if e.kind == "alarm_armed"]
    assert reasons and "relay" in reasons[-1]
    monday_alarm = rome(2024, 5, 13, 10, 0) - 120
    armed = []
    daemon = first
    for _ in range(4):
        assert daemon.wake is not None
        alarm = daemon.wake.armed_alarm
        assert alarm is not None and 0 < alarm - clock.now <= DAY
        assert rtc(config, clock).read_alarm() == alarm  # a UTC RTC holds the UTC epoch
        armed.append(alarm)
        daemon.outbox.close()
        if alarm == monday_alarm:
            break
        # Powered off; the relay alarm fires; the BIOS takes 40 s; the next boot re-arms.
        clock.now = alarm + 40
        daemon = boot(config, clock)
        assert daemon.boot_reason == "rtc"
    # Friday noon to Monday 09:58 in relays of (24 h - 5 min), at the same time of day.
    assert armed[-1] == monday_alarm
    assert len(armed) == 3
    local = [dt.datetime.fromtimestamp(a, ROME).strftime("%a %H:%M") for a in armed]
    assert local == ["Sat 10:08", "Sun 10:03", "Mon 09:58"]


def test_local_time_rtc_is_armed_in_local_time(tmp_path: Path) -> None:
    config = config_for(tmp_path, rtc_local_time=True)
    # Saturday 30 March 2024: summer time starts the next night; Monday's call is at 10:00.
    clock = Clock(rome(2024, 3, 30, 12, 0))
    daemon = boot(config, clock)
    apply(daemon, desired(cp_schedule([MON_FRI_10], clock.now), version=1))
    assert daemon.wake is not None
    want = rome(2024, 4, 1, 10, 0) - 120  # after the DST change: 07:58 UTC
    assert daemon.wake.armed_alarm == want
    reported = daemon.wake.reported()
    assert reported["armed_alarm"] == want and reported["rtc_local_time"] is True
    # The RTC counts local wall-clock seconds with the offset it was set with (winter, +1 h).
    assert rtc(config, clock).read_alarm() == want + 3600
    daemon.outbox.close()


def test_ebusy_someone_else_armed_the_rtc(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    clock = Clock(rome(2024, 5, 6, 8, 0))
    other = rtc(config, clock)
    other.write("wakealarm", str(int(clock.now) + 5000))  # rtcwake, a BIOS tool...
    daemon = boot(config, clock)
    apply(daemon, desired(cp_schedule([MON_FRI_10], clock.now), version=1))
    assert daemon.wake is not None
    want = rome(2024, 5, 6, 10, 0) - 120
    assert daemon.wake.armed_alarm == want and other.read_alarm() == want
    assert daemon.wake.reported()["alarm_error"] is None
    daemon.outbox.close()


def test_malformed_schedule_is_refused_and_the_alarm_stays(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    clock = Clock(rome(2024, 5, 6, 8, 0))
    daemon = boot(config, clock)
    good = cp_schedule([MON_FRI_10], clock.now, version=5)
    apply(daemon, desired(good, version=5))
    assert daemon.wake is not None
    want = rome(2024, 5, 6, 10, 0) - 120
    assert rtc(config, clock).read_alarm() == want

    # Broken on the wire: a window ending before it starts. The whole twin is refused.
    broken = {**good, "version": 6, "wakes": [{"start": want + 999, "end": want}]}
    apply(daemon, desired(broken, version=6))
    # Valid for the contract but not for the service: a window of two days.
    too_long = {**good, "version": 7, "wakes": [{"start": want + 600, "end": want + 2 * DAY}]}
    apply(daemon, desired(too_long, version=7))

    errors = [e for e in events(daemon) if e.kind == "error"]
    assert len(errors) == 2
    assert errors[0].data["field"].endswith("end") and "twin/desired refused" in errors[0].message
    assert "schedule rejected" in errors[1].message and "wakes[0].end" in errors[1].data["field"]
    # The previous alarm is still armed and reported, with the refusal.
    assert rtc(config, clock).read_alarm() == want
    reported = daemon.wake.reported()
    assert reported["armed_alarm"] == want and reported["schedule_version"] == 5
    assert "schedule rejected" in (reported["alarm_error"] or "")
    daemon.outbox.close()


def test_window_passes_and_the_pc_powers_off(tmp_path: Path) -> None:
    config = config_for(tmp_path, tick_s=1)
    clock = Clock(rome(2024, 5, 6, 9, 55))
    daemon = boot(config, clock)
    schedule = cp_schedule([MON_FRI_10], clock.now)
    schedule["idle_s"] = 0
    apply(daemon, desired(schedule, version=1))
    assert daemon.wake is not None

    async def tick(at: float) -> str:
        clock.now = at
        assert daemon.wake is not None
        return (await daemon.wake.tick()).action

    assert asyncio.run(tick(rome(2024, 5, 6, 10, 10))) == "stay"  # in the window
    assert asyncio.run(tick(rome(2024, 5, 6, 10, 31))) == "poweroff"
    actions = [
        line for line in Path(config.power.record_file or "").read_text().splitlines() if line
    ]
    assert len(actions) == 1 and '"poweroff"' in actions[0]
    assert daemon.wake.armed_alarm == rome(2024, 5, 10, 10, 0) - 120  # Friday's, armed first
    daemon.outbox.close()


def test_commissioning_wake_from_off(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    clock = Clock(1_715_000_000.0)
    record = arm_test(config, minutes=3, clock=clock)
    assert record["alarm_at"] == math.floor(clock.now) + 180
    assert rtc(config, clock).read_alarm() == record["alarm_at"]

    # It came back by itself 50 s after the alarm: the next start reports success.
    clock.now = record["alarm_at"] + 50
    daemon = EdgeDaemon(config, clock=clock)
    (result,) = [e for e in events(daemon) if e.kind == "diagnostics"]
    assert result.data["check"] == "wake_from_off" and result.data["ok"] is True
    daemon.outbox.close()
    assert check_commission(config, clock.now) is None  # reported once

    arm_test(config, minutes=3, clock=clock)
    late = check_commission(config, clock.now + 3 * 3600)  # switched on by hand, hours later
    assert late is not None and late["ok"] is False and "by hand" in late["detail"]


def test_scaled_clock() -> None:
    base = Clock(1000.0)
    fast = scaled_clock(60, base)
    base.now += 2
    assert fast() == 1120.0
    assert scaled_clock(1, base) is base
