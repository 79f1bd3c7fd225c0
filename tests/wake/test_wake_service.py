"""WakeService end to end with a fake clock, the fake RTC directory and recorded power."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from edge.protocol import Event, ScheduleDesired, Wake
from edge.wake.planner import ONE_DAY_S, RtcCapabilities
from edge.wake.power import RecordingPower
from edge.wake.rtc import FakeRtcDir, RtcBackend, SysfsRtc
from edge.wake.service import WakeService
from tests.support.wait import async_wait_until

ROME = ZoneInfo("Europe/Rome")
UNLIMITED = RtcCapabilities(max_ahead_s=None, local_time=False)


def at(day: int, h: int, mi: int = 0, month: int = 5) -> float:
    """Epoch of a Rome wall-clock time in 2024."""
    return datetime(2024, month, day, h, mi, tzinfo=ROME).timestamp()


def schedule(
    version: int, days: list[int], *, h: int = 10, horizon: float | None = None, **kw: Any
) -> ScheduleDesired:
    wakes = [Wake(start=at(d, h), end=at(d, h, 30), appointment_ids=[f"a{d}"]) for d in days]
    return ScheduleDesired(
        version=version,
        horizon_end=horizon if horizon is not None else at(days[-1] + 1, 0),
        wakes=wakes,
        **kw,
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Device:
    """One boot of the device: a WakeService over state that outlives it in ``root``."""

    def __init__(
        self,
        root: Path,
        clock: Clock,
        *,
        caps: RtcCapabilities = UNLIMITED,
        rtc: RtcBackend | None = None,
        **kw: Any,
    ) -> None:
        self.clock = clock
        self.reports: list[dict[str, Any]] = []
        self.events: list[Event] = []
        self.rtc = rtc if rtc is not None else FakeRtcDir(root / "rtc0", clock=clock)
        self.power = RecordingPower(root / "power.jsonl", clock=clock)
        self.service = WakeService(
            rtc=self.rtc,
            power=self.power,
            tz=ROME,
            caps=caps,
            schedule_path=root / "state" / "schedule.json",
            report=self._report,
            emit_event=self._emit,
            clock=clock,
            **kw,
        )

    async def _report(self, fields: dict[str, Any]) -> None:
        self.reports.append(fields)

    async def _emit(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def tick(self, at_time: float | None = None) -> str:
        if at_time is not None:
            self.clock.now = at_time
        return asyncio.run(self.service.tick()).action

    def apply(self, sched: ScheduleDesired | dict[str, Any]) -> bool:
        return asyncio.run(self.service.apply_schedule(sched))


def test_window_passing_powers_off_and_arms_the_next_wake(tmp_path: Path) -> None:
    clock = Clock(at(19, 18))
    # First boot: a technician switches it on; the schedule arrives.
    first = Device(tmp_path, clock, boot_time=clock.now - 60)
    assert first.apply(schedule(1, [20, 21, 22]))
    assert first.service.boot_reason == "unknown"  # no record yet from an earlier session
    assert first.rtc.read_alarm() == at(20, 9, 58)
    assert first.reports[-1]["armed_alarm"] == at(20, 9, 58)
    assert first.tick(at(19, 18, 5)) == "stay"  # a person switched it on: idle_s applies
    assert first.tick(at(19, 18, 11)) == "poweroff"
    assert [a["action"] for a in first.power.actions()] == ["poweroff"]

    # The alarm fires; the BIOS takes 45 s; the kernel boots.
    clock.now = at(20, 9, 58) + 45
    dev = Device(tmp_path, clock, boot_time=clock.now)
    asyncio.run(dev.service.start())
    assert dev.service.boot_reason == "rtc"
    assert dev.events[0].kind == "woke" and dev.events[0].data["boot_reason"] == "rtc"
    assert dev.service.schedule is not None and dev.service.schedule.version == 1
    assert dev.rtc.read_alarm() == at(21, 9, 58)  # the next one is armed already

    assert dev.tick(at(20, 10, 5)) == "stay"
    dev.service.set_busy(call=True)
    assert dev.tick(at(20, 10, 45)) == "stay"  # the call runs over the window
    assert "call" in (dev.service.decision.reason if dev.service.decision else "")
    dev.service.set_busy(call=False)
    assert dev.tick(at(20, 10, 46)) == "stay"  # a short grace after the call
    assert dev.tick(at(20, 10, 48)) == "poweroff"
    assert dev.tick(at(20, 10, 49)) == "poweroff"  # asked once, not every tick
    assert [a["action"] for a in dev.power.actions()] == ["poweroff", "poweroff"]
    assert dev.kinds().count("shutting_down") == 1
    assert dev.reports[-1]["armed_alarm"] == at(21, 9, 58)
    assert isinstance(dev.rtc, FakeRtcDir)
    assert dev.rtc.fired() == [int(at(20, 9, 58))]


def test_run_loop_powers_off_once_the_window_is_over(tmp_path: Path) -> None:
    clock = Clock(at(20, 9, 59))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "schedule.json").write_bytes(msgspec.json.encode(schedule(3, [20, 21])))
    # The last session armed today's alarm, and it fired a minute ago.
    (tmp_path / "state" / "schedule.alarm.json").write_text(
        f'{{"alarm_at": {at(20, 9, 58)}, "rtc_alarm": {at(20, 9, 58)}, '
        f'"kind": "wake", "armed_at": {at(19, 18)}}}'
    )
    dev = Device(tmp_path, clock, tick_s=0.005, grace_s=0, boot_time=at(20, 9, 58) + 30)

    async def scenario() -> None:
        task = asyncio.create_task(dev.service.run(), name="wake")
        await _until(lambda: dev.service.decision is not None)
        assert dev.service.boot_reason == "rtc"
        assert dev.service.decision is not None and dev.service.decision.action == "stay"
        clock.now = at(20, 10, 31)
        await _until(lambda: bool(dev.power.actions()))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert dev.power.actions()[0] == {"action": "poweroff", "ts": at(20, 10, 31)}
    assert dev.rtc.read_alarm() == at(21, 9, 58)


async def _until(cond: Any, timeout: float = 5.0) -> None:
    await async_wait_until(cond, timeout=timeout, interval=0.005)


def test_malformed_schedule_is_rejected_and_the_alarm_stays(tmp_path: Path) -> None:
    dev = Device(tmp_path, Clock(at(19, 18)))
    good = schedule(2, [20, 21])
    assert dev.apply(good)
    armed = dev.rtc.read_alarm()
    assert armed == at(20, 9, 58)

    raw = msgspec.to_builtins(schedule(3, [25, 26]))
    raw["wakes"][1]["end"] = raw["wakes"][1]["start"] - 60
    cases: list[tuple[ScheduleDesired | dict[str, Any], str]] = [
        (raw, "$.wakes[1].end"),
        ({**msgspec.to_builtins(good), "lead_s": 99_999}, "$.lead_s"),
        (ScheduleDesired(version=3, horizon_end=at(30, 0), wakes=[], lead_s=-5), "$.lead_s"),
        (schedule(1, [25]), "$.version"),
        (
            ScheduleDesired(
                version=4, horizon_end=at(30, 0), wakes=[Wake(start=at(25, 8), end=at(26, 9))]
            ),
            "$.wakes[0].end",
        ),
        (schedule(4, [25], horizon=at(24, 0)), "$.wakes[0].start"),
        ({"version": 5, "wakes": []}, "$"),
    ]
    for bad, field in cases:
        before = len(dev.events)
        assert not dev.apply(bad), field
        errors = [e for e in dev.events[before:] if e.kind == "error"]
        assert len(errors) == 1 and errors[0].data["field"] == field, errors
        assert errors[0].severity == "error" and errors[0].data["applied_version"] == 2
        assert dev.rtc.read_alarm() == armed
        assert dev.reports[-1]["alarm_error"].startswith("schedule rejected: " + field)
        assert dev.reports[-1]["schedule_version"] == 2
    assert dev.apply(schedule(2, [20, 21]))  # the same version again is fine (retained)
    assert dev.reports[-1]["alarm_error"] is None


def test_rtc_refusal_keeps_the_previous_alarm_and_the_pc_on(tmp_path: Path) -> None:
    clock = Clock(at(19, 18))
    # The probe was wrong: this CMOS only reaches a day ahead.
    rtc = FakeRtcDir(tmp_path / "rtc0", clock=clock, max_ahead_s=ONE_DAY_S)
    dev = Device(tmp_path, clock, rtc=rtc, boot_time=clock.now - 3600, idle_s=0)
    assert dev.apply(schedule(1, [20, 21]))
    assert rtc.read_alarm() == at(20, 9, 58)
    assert dev.apply(schedule(2, [23]))  # accepted, but the RTC can't reach Thursday
    assert rtc.read_alarm() == at(20, 9, 58)
    report = dev.reports[-1]
    assert "refused alarm" in report["alarm_error"]
    assert report["armed_alarm"] == at(20, 9, 58) and report["schedule_version"] == 2
    errors = [e for e in dev.events if e.kind == "error"]
    assert len(errors) == 1 and "RTC alarm not armed" in errors[0].message
    assert dev.tick(at(19, 20)) == "stay"
    assert dev.service.decision is not None and "not armed" in dev.service.decision.reason
    assert [e.kind for e in dev.events].count("error") == 1  # retried, reported once
    assert dev.power.actions() == []


def test_weekend_with_a_24h_rtc_arms_a_relay(tmp_path: Path) -> None:
    clock = Clock(at(17, 10, 30))
    caps = RtcCapabilities(max_ahead_s=ONE_DAY_S, local_time=False)
    dev = Device(tmp_path, clock, caps=caps, boot_time=at(17, 9, 58) + 30, grace_s=600)
    assert dev.apply(schedule(1, [17, 20]))
    alarm = dev.rtc.read_alarm()
    assert alarm is not None and alarm - clock.now <= ONE_DAY_S
    armed = [e for e in dev.events if e.kind == "alarm_armed"]
    assert armed[-1].data["kind"] == "relay"
    assert "relay wake" in dev.reports[-1]["alarm_reason"]
    assert dev.reports[-1]["rtc_max_ahead_s"] == ONE_DAY_S
    dev.service.note_activity()  # 10:30, the call just ended: grace until 10:40
    # The relay stays put while time passes: no re-arming on every tick.
    assert dev.tick(at(17, 10, 35)) == "stay"
    assert dev.tick(at(17, 10, 39)) == "stay"
    assert dev.kinds().count("alarm_armed") == 1 and dev.rtc.read_alarm() == alarm
    assert dev.tick(at(17, 10, 41)) == "poweroff"


def test_local_time_rtc(tmp_path: Path) -> None:
    clock = Clock(at(19, 18))
    caps = RtcCapabilities(max_ahead_s=None, local_time=True)
    rtc = FakeRtcDir(tmp_path / "rtc0", clock=clock, offset_s=7200)  # set to CEST wall time
    dev = Device(tmp_path, clock, caps=caps, rtc=rtc)
    assert dev.apply(schedule(1, [20]))
    assert rtc.read_alarm() == at(20, 9, 58) + 7200
    assert dev.reports[-1]["armed_alarm"] == at(20, 9, 58)
    assert dev.reports[-1]["rtc_local_time"] is True
    clock.now = at(20, 9, 58)
    assert rtc.fired() == [] and rtc.read_alarm() is None  # fires at 09:58 CEST, on time

    # An RTC whose clock can't be read: assume it was set at today's local offset.
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "wakealarm").write_text("")
    dev = Device(tmp_path / "b", Clock(at(19, 18)), caps=caps, rtc=SysfsRtc(plain))
    assert dev.apply(schedule(1, [20]))
    assert (plain / "wakealarm").read_text() == str(int(at(20, 9, 58)) + 7200)
    assert dev.reports[-1]["armed_alarm"] == at(20, 9, 58)


def test_alarm_set_by_someone_else_is_replaced(tmp_path: Path) -> None:
    clock = Clock(at(19, 18))
    rtc = FakeRtcDir(tmp_path / "rtc0", clock=clock)
    rtc.write("wakealarm", str(int(at(19, 23))))  # a technician's test wake, still armed
    dev = Device(tmp_path, clock, rtc=rtc)
    assert dev.apply(schedule(1, [20]))
    assert rtc.read_alarm() == at(20, 9, 58)


def test_offline_for_the_whole_horizon_falls_back_to_a_daily_wake(tmp_path: Path) -> None:
    clock = Clock(at(19, 18))
    online = Device(tmp_path, clock)
    assert online.apply(schedule(7, [20, 21, 22], h=16, horizon=at(23, 0)))

    # Saturday: no network since Wednesday, the schedule's horizon ran out on Thursday.
    clock.now = at(25, 12)
    offline = Device(tmp_path, clock, boot_time=clock.now - 30)
    asyncio.run(offline.service.start())
    assert offline.rtc.read_alarm() == at(25, 15, 58)
    report = offline.reports[-1]
    assert report["schedule_version"] == 7 and report["armed_alarm"] == at(25, 15, 58)
    assert "fallback daily wake at 16:00" in report["alarm_reason"]
    # During the fallback window it waits for the usual call.
    assert offline.tick(at(25, 16, 5)) == "stay"
    assert offline.service.plan is not None and offline.service.plan.active is not None


def test_no_schedule_stays_on_and_drops_a_stale_alarm(tmp_path: Path) -> None:
    clock = Clock(at(19, 18))
    rtc = FakeRtcDir(tmp_path / "rtc0", clock=clock)
    rtc.write("wakealarm", str(int(at(20, 3))))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "schedule.json").write_text("{not json")
    dev = Device(tmp_path, clock, rtc=rtc, boot_time=clock.now, idle_s=0)
    assert dev.tick() == "stay"
    assert dev.service.schedule is None
    assert rtc.read_alarm() is None
    assert dev.reports[-1]["armed_alarm"] is None
    assert dev.reports[-1]["alarm_reason"] == "no wakes scheduled"
    assert dev.service.decision is not None and "reachable" in dev.service.decision.reason


def test_suspend_policy_and_resume(tmp_path: Path) -> None:
    clock = Clock(at(20, 10))
    dev = Device(tmp_path, clock, boot_time=at(20, 9, 58) + 40, tick_s=30, grace_s=0)
    assert dev.apply(schedule(1, [20, 21], policy="suspend"))
    assert dev.tick(at(20, 10, 31)) == "suspend"
    assert dev.power.actions()[-1]["action"] == "suspend"
    # Frozen overnight; the alarm resumes it.
    clock.now = at(21, 9, 58) + 5
    assert dev.rtc.read_alarm() is None
    assert dev.tick() == "stay"
    woke = [e for e in dev.events if e.kind == "woke"]
    assert woke[-1].data == {"resumed": True} and dev.service.boot_reason == "rtc"
    assert dev.tick(at(21, 10, 31)) == "suspend"
    assert [a["action"] for a in dev.power.actions()] == ["suspend", "suspend"]


def test_help_button_boot_stays_for_the_idle_time(tmp_path: Path) -> None:
    clock = Clock(at(19, 18))
    dev = Device(tmp_path, clock, boot_time=clock.now, button_boot=True)
    assert dev.apply(schedule(1, [20], idle_s=900))  # the schedule's idle time rules
    assert dev.service.boot_reason == "button"
    assert dev.tick(at(19, 18, 10)) == "stay"
    dev.service.note_activity()  # the caregiver calls back, the person touches the screen
    assert dev.tick(at(19, 18, 20)) == "stay"
    assert dev.tick(at(19, 18, 25)) == "poweroff"
