"""Missed wakes, calls, help, commissioning and reconciliation: ingest and the periodic watch."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from control_plane.db import transaction
from control_plane.models import Alert, AlertStatus, Device
from control_plane.schedules import service
from control_plane.schedules.models import (
    Appointment,
    DeviceWakeProfile,
    WakeOutcome,
    WakeRecord,
)
from edge import protocol as p
from tests.schedules.conftest import Env

UTC = dt.UTC
ROME = ZoneInfo("Europe/Rome")


def ingest(env: Env, device_id: str, kind: p.TopicKind, message: p.Message) -> None:
    env.client.app.state.ingest.handle(p.topic(kind, device_id), p.encode(message))  # type: ignore[attr-defined]


def status(env: Env, device_id: str, online: bool, session: int) -> None:
    ingest(env, device_id, p.TopicKind.STATUS, p.Status(ts=p.now(), online=online, session=session))


def event(env: Env, device_id: str, kind: str, ts: float, **data: Any) -> None:
    ingest(
        env,
        device_id,
        p.TopicKind.EVENTS,
        p.Event(ts=ts, id=f"ev-{kind}-{ts}-{len(data)}", kind=kind, data=data),  # type: ignore[arg-type]
    )


def alerts_of(env: Env, device_id: str, kind: str) -> list[Alert]:
    with env.session() as session:
        return list(
            session.execute(
                select(Alert)
                .where(Alert.device_id == device_id, Alert.kind == kind)
                .order_by(Alert.id)
            ).scalars()
        )


def records(env: Env, device_id: str) -> list[WakeRecord]:
    with env.session() as session:
        return list(
            session.execute(
                select(WakeRecord)
                .where(WakeRecord.device_id == device_id)
                .order_by(WakeRecord.start_at)
            ).scalars()
        )


def watch(env: Env, now: dt.datetime, device_id: str) -> None:
    """The periodic watch, for this test's device (the module shares one database)."""
    with transaction(env.factory) as session:
        device = session.get(Device, device_id)
        assert device is not None
        service.watch_device(session, device, now, env.scheduler.config)


def sync(env: Env, now: dt.datetime, beneficiary_id: int) -> list[str]:
    """The periodic horizon task, for this test's beneficiary."""
    with transaction(env.factory) as session:
        return service.refresh_beneficiary(
            session, beneficiary_id, now, env.scheduler.config, force=False
        )


def minute_floor(when: dt.datetime) -> dt.datetime:
    return when.replace(second=0, microsecond=0)


def test_missed_wake_opens_and_resolves_when_the_device_comes_online(env: Env) -> None:
    env.configure(lead_s=60, grace_s=120, early_s=300)
    bid = env.beneficiary("Maria Rossi", device_id="pc-watch-1")
    # The window began ten minutes ago and lasts an hour; the PC has not come on.
    start = minute_floor(dt.datetime.now(ROME) - dt.timedelta(minutes=10))
    appt = env.appointment(bid, start=start.replace(tzinfo=None).isoformat(), duration_min=60)
    watch(env, dt.datetime.now(UTC), "pc-watch-1")
    (record,) = records(env, "pc-watch-1")
    assert record.outcome == WakeOutcome.MISSED.value and record.start_at == start
    assert record.appointment_ids == [str(appt["id"])]
    (alert,) = alerts_of(env, "pc-watch-1", service.MISSED_WAKE)
    assert alert.severity == "high" and alert.status == AlertStatus.OPEN.value
    assert alert.beneficiary_id == bid and "Maria Rossi" in alert.message
    assert alert.data["audience"] == ["caregiver", "coordinator"]
    watch(env, dt.datetime.now(UTC), "pc-watch-1")  # opens once
    assert len(alerts_of(env, "pc-watch-1", service.MISSED_WAKE)) == 1

    status(env, "pc-watch-1", True, session=1)  # it comes on, late, during the window
    (alert,) = alerts_of(env, "pc-watch-1", service.MISSED_WAKE)
    assert alert.status == AlertStatus.RESOLVED.value
    (record,) = records(env, "pc-watch-1")
    assert record.outcome == WakeOutcome.LATE.value and record.online_at is not None

    r = env.client.get(f"/api/v1/beneficiaries/{bid}/wakes", headers=env.h("anna"))
    assert r.status_code == 200 and r.json()[0]["outcome"] == "late"


def test_device_offline_for_the_whole_horizon(env: Env) -> None:
    env.configure(lead_s=120, grace_s=300, horizon_days=3, refresh_s=6 * 3600)
    bid = env.beneficiary("Giuseppe Bianchi", device_id="pc-watch-2")
    env.appointment(bid, start="2024-05-06T10:00:00", duration_min=30, rrule="FREQ=DAILY")
    now = dt.datetime(2024, 5, 6, 6, 0, tzinfo=UTC)
    assert sync(env, now, bid) == ["pc-watch-2"]
    first = env.desired_schedule("pc-watch-2")
    assert first is not None and len(first["wakes"]) == 3

    versions = {first["version"]}
    horizons = []
    for _hour in range(5 * 24):  # five days, hour by hour, the PC never on
        now += dt.timedelta(hours=1)
        sync(env, now, bid)
        watch(env, now, "pc-watch-2")
        schedule = env.desired_schedule("pc-watch-2")
        assert schedule is not None
        versions.add(schedule["version"])
        horizons.append(schedule["horizon_end"])
        # The published horizon always reaches at least (horizon - refresh) ahead.
        assert schedule["horizon_end"] >= (now + dt.timedelta(days=3, hours=-6)).timestamp()
    # Republished as the horizon moved (every 6 h), not every hour.
    assert 15 <= len(versions) <= 22
    assert horizons == sorted(horizons)
    missed = [r for r in records(env, "pc-watch-2")]
    assert [r.start_at.day for r in missed] == [6, 7, 8, 9, 10]
    assert all(r.outcome == WakeOutcome.MISSED.value for r in missed)
    # One alert for the device, counting the windows it missed.
    (alert,) = alerts_of(env, "pc-watch-2", service.MISSED_WAKE)
    assert alert.status == AlertStatus.OPEN.value and alert.data["missed"] == 5
    assert alert.data["last_window"]["start"].startswith("2024-05-10T08:00")

    with transaction(env.factory) as session:
        device = session.get(Device, "pc-watch-2")
        assert device is not None
        device.online, device.last_seen = True, now
        service.device_came_online(session, device, now, env.scheduler.config)
    (alert,) = alerts_of(env, "pc-watch-2", service.MISSED_WAKE)
    assert alert.status == AlertStatus.RESOLVED.value


def test_woke_but_no_call_then_a_call_is_recorded(env: Env) -> None:
    env.configure(lead_s=120, grace_s=300, early_s=600)
    bid = env.beneficiary("Lucia Verdi", device_id="pc-watch-3")
    env.appointment(bid, start="2024-05-06T10:00:00", duration_min=30, rrule="FREQ=DAILY")
    sync(env, dt.datetime(2024, 5, 6, 6, 0, tzinfo=UTC), bid)
    start = dt.datetime(2024, 5, 6, 8, 0, tzinfo=UTC)  # 10:00 in Rome
    with transaction(env.factory) as session:
        device = session.get(Device, "pc-watch-3")
        assert device is not None
        device.online, device.last_seen = True, start - dt.timedelta(minutes=1)
    watch(env, start + dt.timedelta(minutes=1), "pc-watch-3")
    assert records(env, "pc-watch-3")[0].outcome == WakeOutcome.WOKE.value
    watch(env, start + dt.timedelta(minutes=36), "pc-watch-3")  # the window and its grace are over
    (record,) = records(env, "pc-watch-3")
    assert record.call_checked and record.no_call
    (alert,) = alerts_of(env, "pc-watch-3", service.NO_CALL)
    assert alert.status == AlertStatus.OPEN.value and alert.beneficiary_id == bid

    # The device reports a call in that window (the calls feature calls record_call too).
    event(env, "pc-watch-3", "call", (start + dt.timedelta(minutes=5)).timestamp(), state="ended")
    (record,) = records(env, "pc-watch-3")
    assert record.called_at is not None and not record.no_call
    (alert,) = alerts_of(env, "pc-watch-3", service.NO_CALL)
    assert alert.status == AlertStatus.RESOLVED.value


def test_cancelled_window_is_not_a_missed_wake(env: Env) -> None:
    env.configure(lead_s=120, grace_s=300, early_s=600)
    bid = env.beneficiary("Antonio Russo", device_id="pc-watch-4")
    appt = env.appointment(bid, start="2024-05-06T10:00:00", duration_min=30)
    sync(env, dt.datetime(2024, 5, 6, 6, 0, tzinfo=UTC), bid)
    watch(
        env, dt.datetime(2024, 5, 6, 7, 55, tzinfo=UTC), "pc-watch-4"
    )  # record made, not yet judged
    assert [r.outcome for r in records(env, "pc-watch-4")] == ["pending"]
    with transaction(env.factory) as session:
        # Cancelled at the last minute (the API republishes with the real clock; here 07:56).
        row = session.get(Appointment, appt["id"])
        session.delete(row)
        service.refresh_beneficiary(
            session, bid, dt.datetime(2024, 5, 6, 7, 56, tzinfo=UTC), env.scheduler.config
        )
    watch(env, dt.datetime(2024, 5, 6, 8, 10, tzinfo=UTC), "pc-watch-4")
    assert records(env, "pc-watch-4") == []
    assert alerts_of(env, "pc-watch-4", service.MISSED_WAKE) == []


def test_help_button_raises_an_urgent_alert(env: Env) -> None:
    bid = env.beneficiary("Rosa Esposito", device_id="pc-watch-5")
    event(env, "pc-watch-5", "help", p.now())
    (alert,) = alerts_of(env, "pc-watch-5", service.HELP)
    assert alert.severity == "urgent" and alert.beneficiary_id == bid
    assert "Rosa Esposito" in alert.message
    event(env, "pc-watch-5", "help", p.now(), again=True)  # pressed again: same alert
    (alert,) = alerts_of(env, "pc-watch-5", service.HELP)
    assert alert.data["presses"] == 2


def test_commissioning_marks_the_board(env: Env) -> None:
    env.device("pc-watch-6")
    alarm = math.floor(p.now()) - 300
    event(
        env,
        "pc-watch-6",
        "diagnostics",
        p.now(),
        check="wake_from_off",
        ok=False,
        mode="poweroff",
        alarm_at=alarm,
        boot_time=alarm + 4000,
        detail="switched on by hand",
    )
    with env.session() as session:
        profile = session.get(DeviceWakeProfile, "pc-watch-6")
        assert profile is not None
        assert profile.wakes_from_off is False and profile.commission_result == "failed"
    (alert,) = alerts_of(env, "pc-watch-6", service.WAKE_COMMISSION)
    assert alert.status == AlertStatus.OPEN.value and "suspend" in alert.message

    event(
        env,
        "pc-watch-6",
        "diagnostics",
        p.now(),
        check="wake_from_off",
        ok=True,
        mode="poweroff",
        alarm_at=alarm,
        boot_time=alarm + 40,
    )
    with env.session() as session:
        profile = session.get(DeviceWakeProfile, "pc-watch-6")
        assert profile is not None and profile.wakes_from_off is True
    (alert,) = alerts_of(env, "pc-watch-6", service.WAKE_COMMISSION)
    assert alert.status == AlertStatus.RESOLVED.value
    r = env.client.get("/api/v1/devices/pc-watch-6/schedule", headers=env.h("tech"))
    assert r.json()["profile"]["wakes_from_off"] is True


def test_reported_alarm_is_reconciled(env: Env) -> None:
    env.configure(lead_s=120, stale_after_s=600)
    bid = env.beneficiary("Franco Galli", device_id="pc-watch-7")
    day = dt.datetime.now(ROME).date() + dt.timedelta(days=1)
    env.appointment(bid, start=f"{day}T10:00:00", duration_min=30, rrule="FREQ=DAILY")
    schedule = env.desired_schedule("pc-watch-7")
    assert schedule is not None
    version, first = schedule["version"], schedule["wakes"][0]["start"]
    status(env, "pc-watch-7", True, session=1)

    def report(**fields: Any) -> None:
        ingest(env, "pc-watch-7", p.TopicKind.TWIN_REPORTED, p.TwinReported(ts=p.now(), **fields))

    def open_kinds() -> set[str]:
        with env.session() as session:
            return set(
                session.execute(
                    select(Alert.kind).where(
                        Alert.device_id == "pc-watch-7", Alert.status == AlertStatus.OPEN.value
                    )
                ).scalars()
            )

    report(schedule_version=version, armed_alarm=first - 120)
    assert open_kinds() == set()
    report(schedule_version=version, armed_alarm=first + 86400 - 120)  # skips tomorrow
    assert open_kinds() == {service.ALARM_MISMATCH}
    report(schedule_version=version - 1, alarm_error="schedule rejected: $.wakes[0].end: ...")
    assert open_kinds() == {service.ALARM_REFUSED}  # the mismatch is no longer the point
    report(schedule_version=version, armed_alarm=first - 120)
    assert open_kinds() == set()
    # Online, yet still on an older schedule well after publication: stale.
    report(schedule_version=version - 1, armed_alarm=first - 120)
    watch(env, dt.datetime.now(UTC) + dt.timedelta(minutes=30), "pc-watch-7")
    assert open_kinds() == {service.SCHEDULE_STALE}
    r = env.client.get("/api/v1/devices/pc-watch-7/schedule", headers=env.h("fleet"))
    assert [f["kind"] for f in r.json()["findings"]] == []  # now: not yet stale
