"""Alert rules: the pure evaluation, and applying it to the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from control_plane import alerts
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.devices import create_device, revoke_device
from control_plane.fleet.rules import DeviceFacts, Policy, check_all, evaluate
from control_plane.models import Alert, AlertStatus, Device, TelemetryBatchRecord
from tests.conftest import make_settings

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
POLICY = Policy(offline_after_s=900, disk_full_pct=90, rtc_drift_max_s=120)


def facts(**changes: object) -> DeviceFacts:
    values: dict[str, object] = {
        "device_id": "pc-001",
        "online": True,
        "last_seen": NOW,
        "created_at": NOW - dt.timedelta(days=30),
        "scheduled": False,
        "metrics": {},
        "dropped_recently": 0,
    }
    values.update(changes)
    return DeviceFacts(**values)  # type: ignore[arg-type]


def kinds(f: DeviceFacts, now: dt.datetime = NOW) -> list[str]:
    return [w.kind for w in evaluate(f, POLICY, now)]


def test_a_healthy_device_wants_no_alert() -> None:
    healthy = {
        "smart.ok": 1.0,
        "smart.failing_disks": 0.0,
        "disk.root.used_pct": 50.0,
        "rtc.drift_s": 3.0,
    }
    assert evaluate(facts(metrics=healthy), POLICY, NOW) == []


def test_offline_only_after_the_policy_allows_and_never_for_sleeping_schedules() -> None:
    gone = facts(online=False, last_seen=NOW - dt.timedelta(seconds=899))
    assert kinds(gone) == []
    later = facts(online=False, last_seen=NOW - dt.timedelta(seconds=901))
    [wanted] = evaluate(later, POLICY, NOW)
    assert (wanted.key, wanted.kind, wanted.severity) == ("offline:pc-001", "offline", "warning")
    assert "15 minuti" in wanted.message
    assert wanted.data == {"since": (NOW - dt.timedelta(seconds=901)).isoformat()}
    # A PC that sleeps between appointments is offline on purpose (missed wakes are the
    # schedules' alert); one never seen counts from when it was registered.
    assert kinds(facts(online=False, last_seen=None, scheduled=True)) == []
    never = facts(online=False, last_seen=None, created_at=NOW - dt.timedelta(hours=1))
    assert kinds(never) == ["offline"]


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"smart.ok": 0.0}, ["smart"]),
        ({"smart.failing_disks": 2.0}, ["smart"]),
        ({"smart.ok": 1.0, "smart.failing_disks": 0.0}, []),
        ({"disk.root.used_pct": 90.0}, ["disk_full"]),
        ({"disk.root.used_pct": 89.9}, []),
        ({"disk.root.used_pct": 95.0, "disk.home.used_pct": 99.0}, ["disk_full", "disk_full"]),
        ({"rtc.drift_s": 121.0}, ["rtc_drift"]),
        ({"rtc.drift_s": -500.0}, ["rtc_drift"]),  # a clock behind is as dead as one ahead
        ({"rtc.drift_s": 119.0}, []),
    ],
)
def test_health_rules(metrics: dict[str, float], expected: list[str]) -> None:
    assert kinds(facts(metrics=metrics)) == expected


def test_each_disk_and_each_condition_has_its_own_key() -> None:
    wanted = evaluate(
        facts(
            metrics={"disk.root.used_pct": 95.0, "disk.home.used_pct": 99.0, "rtc.drift_s": 600},
            dropped_recently=40,
        ),
        POLICY,
        NOW,
    )
    assert sorted(w.key for w in wanted) == [
        "disk_full:pc-001:home",
        "disk_full:pc-001:root",
        "outbox_dropping:pc-001",
        "rtc_drift:pc-001",
    ]
    by_key = {w.key: w for w in wanted}
    assert "batteria CMOS" in by_key["rtc_drift:pc-001"].message
    assert by_key["outbox_dropping:pc-001"].data == {"dropped": 40}


# -- applied to the database -------------------------------------------------------------------


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(db_url)
    engine = make_engine(db_url)
    f = make_sessionmaker(engine)
    with transaction(f) as session:
        for name in ("pc-001", "pc-002"):
            device, _ = create_device(session, make_settings(db_url, None), device_id=name)
            device.online = True
            device.last_seen = NOW
    yield f
    engine.dispose()


def _set(f: sessionmaker[Session], device_id: str, **values: object) -> None:
    with transaction(f) as session:
        device = session.get(Device, device_id)
        assert device is not None
        for key, value in values.items():
            setattr(device, key, value)


def _alerts(f: sessionmaker[Session]) -> list[tuple[str, str]]:
    with f() as session:
        return [
            (a.key, a.status) for a in session.execute(select(Alert).order_by(Alert.id)).scalars()
        ]


def _check(f: sessionmaker[Session], now: dt.datetime = NOW) -> None:
    with transaction(f) as session:
        check_all(session, POLICY, now)


def test_alerts_open_once_and_resolve_when_the_condition_clears(
    factory: sessionmaker[Session],
) -> None:
    opened: list[str] = []
    alerts.add_notifier(lambda a: opened.append(a.key))
    try:
        _set(factory, "pc-001", last_telemetry={"metrics": {"rtc.drift_s": 400.0}})
        _set(factory, "pc-002", online=False, last_seen=NOW - dt.timedelta(hours=2))
        _check(factory)
        _check(factory)  # still true: nothing new
        assert _alerts(factory) == [("rtc_drift:pc-001", "open"), ("offline:pc-002", "open")]
        assert opened == ["rtc_drift:pc-001", "offline:pc-002"]

        _set(factory, "pc-001", last_telemetry={"metrics": {"rtc.drift_s": 1.0}})  # new battery
        _set(factory, "pc-002", online=True, last_seen=NOW)
        _check(factory)
        assert _alerts(factory) == [
            ("rtc_drift:pc-001", "resolved"),
            ("offline:pc-002", "resolved"),
        ]
        # It can happen again: a new alert, notified again.
        _set(factory, "pc-002", online=False, last_seen=NOW)
        _check(factory, NOW + dt.timedelta(hours=1))
        assert _alerts(factory)[-1] == ("offline:pc-002", "open")
        assert opened[-1] == "offline:pc-002" and len(opened) == 3
    finally:
        alerts._notifiers.clear()


def test_dropped_samples_alert_for_a_day_and_revoked_devices_are_let_go(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        session.add(
            TelemetryBatchRecord(
                device_id="pc-001",
                seq=1,
                ts=NOW,
                received_at=NOW - dt.timedelta(hours=2),
                dropped=120,
                samples=[],
            )
        )
    _check(factory)
    assert _alerts(factory) == [("outbox_dropping:pc-001", "open")]
    _check(factory, NOW + dt.timedelta(hours=21))  # the batch came 23 h before
    assert _alerts(factory) == [("outbox_dropping:pc-001", "open")]
    _set(factory, "pc-002", last_telemetry={"metrics": {"smart.ok": 0.0}})
    _check(factory, NOW + dt.timedelta(hours=21))
    assert ("smart:pc-002", "open") in _alerts(factory)
    with transaction(factory) as session:
        device = session.get(Device, "pc-002")
        assert device is not None
        revoke_device(session, make_settings("sqlite://", None), device)
    _check(factory, NOW + dt.timedelta(hours=25))
    with factory() as session:
        states = {a.key: a.status for a in session.execute(select(Alert)).scalars()}
    assert states == {
        "outbox_dropping:pc-001": AlertStatus.RESOLVED.value,  # a day without drops
        "smart:pc-002": AlertStatus.RESOLVED.value,  # revoked: nobody will fix it now
    }
