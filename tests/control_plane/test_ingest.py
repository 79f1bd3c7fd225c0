"""Ingest on SQLite and PostgreSQL: validation, dedup, stale wills, nothing stored is lost."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from sqlalchemy import func, select

from control_plane import alerts
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.devices import create_device
from control_plane.ingest import Ingest
from control_plane.models import (
    Device,
    DeviceEvent,
    IngestError,
    TelemetryBatchRecord,
)
from control_plane.twin import TwinError, build_desired, set_section
from edge import protocol as p
from tests.conftest import make_settings


@pytest.fixture
def ingest(db_url: str) -> Iterator[Ingest]:
    migrate(db_url)
    engine = make_engine(db_url)
    factory = make_sessionmaker(engine)
    settings = make_settings(db_url, None)
    with transaction(factory) as session:
        create_device(session, settings, device_id="pc-001")
    yield Ingest(factory)
    engine.dispose()


def _status(session: int, online: bool) -> bytes:
    return p.encode(p.Status(ts=p.now(), online=online, session=session, agent_version="1.0"))


def _batch(seq: int, value: float = 1.0) -> bytes:
    now = p.now()
    return p.encode(
        p.TelemetryBatch(
            ts=now,
            seq=seq,
            samples=[
                p.Sample(ts=now - 1, metrics={"cpu.percent": value, "mem.used_pct": 40.0}),
                p.Sample(ts=now, metrics={"cpu.percent": value + 1}),
            ],
        )
    )


def _device(ingest: Ingest) -> Device:
    with ingest._factory() as session:
        device = session.get(Device, "pc-001")
        assert device is not None
        return device


STATUS = p.topic(p.TopicKind.STATUS, "pc-001")
TELEMETRY = p.topic(p.TopicKind.TELEMETRY, "pc-001")


def test_birth_then_stale_will_keeps_device_online(ingest: Ingest) -> None:
    ingest.handle(STATUS, _status(5, True))
    ingest.handle(STATUS, _status(4, False))  # the will of an older session arrives late
    device = _device(ingest)
    assert device.online is True and device.session == 5
    assert ingest.stats.stale_status == 1
    ingest.handle(STATUS, _status(5, False))  # this session's own will
    assert _device(ingest).online is False


def test_telemetry_stored_once_and_latest_kept(ingest: Ingest) -> None:
    ingest.handle_many([(TELEMETRY, _batch(1)), (TELEMETRY, _batch(1)), (TELEMETRY, _batch(2, 7))])
    ingest.handle(TELEMETRY, _batch(2, 7))  # a QoS 1 redelivery in a later transaction
    with ingest._factory() as session:
        assert session.scalar(select(func.count()).select_from(TelemetryBatchRecord)) == 2
        # The series are the stored batches' samples: every metric value, once.
        stored = session.scalars(select(TelemetryBatchRecord.samples)).all()
        assert sum(len(sample["metrics"]) for batch in stored for sample in batch) == 6
    device = _device(ingest)
    assert device.telemetry_seq == 2
    assert device.last_telemetry is not None
    assert device.last_telemetry["metrics"]["cpu.percent"] == 8
    assert ingest.stats.duplicates == 2


def test_a_late_older_batch_is_stored_but_moves_nothing_back(ingest: Ingest) -> None:
    ingest.handle(TELEMETRY, _batch(5, 50))
    late = p.TelemetryBatch(
        ts=p.now() - 3600,
        seq=4,
        samples=[p.Sample(ts=p.now() - 3600, metrics={"cpu.percent": 4.0})],
    )
    ingest.handle_many([(TELEMETRY, p.encode(late))])  # replayed late from an outbox
    device = _device(ingest)
    assert device.telemetry_seq == 5
    assert (
        device.last_telemetry is not None and device.last_telemetry["metrics"]["cpu.percent"] == 51
    )
    with ingest._factory() as session:
        assert session.scalar(select(func.count()).select_from(TelemetryBatchRecord)) == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"{", "payload"),
        (b'{"v": 1, "ts": 1, "seq": -1, "samples": [{"ts": 1, "metrics": {}}]}', "$.seq"),
        (
            b'{"v": 1, "ts": 1, "seq": 3, "samples": [{"ts": 1, "metrics": {"Bad Key": 1}}]}',
            "$.samples[0].metrics",
        ),
        (b'{"ts": 1, "seq": 3, "samples": []}', "$.v"),
    ],
)
def test_bad_payload_refused_with_field_and_nothing_lost(
    ingest: Ingest, payload: bytes, field: str
) -> None:
    ingest.handle(TELEMETRY, _batch(1))
    ingest.handle(TELEMETRY, payload)
    ingest.handle(TELEMETRY, _batch(2))
    device = _device(ingest)
    assert device.rejected_count == 1
    assert device.telemetry_seq == 2
    with ingest._factory() as session:
        err = session.execute(select(IngestError)).scalar_one()
        assert err.field == field, err.reason
        assert err.device_id == "pc-001"
        assert session.scalar(select(func.count()).select_from(TelemetryBatchRecord)) == 2


def test_unknown_device_and_bad_topic_are_refused(ingest: Ingest) -> None:
    ingest.handle(p.topic(p.TopicKind.TELEMETRY, "pc-404"), _batch(1))
    ingest.handle("difronte/v1/dev/PC+/telemetry", _batch(1))
    assert ingest.stats.rejected == 2
    with ingest._factory() as session:
        reasons = [e.reason for e in session.execute(select(IngestError)).scalars()]
    assert any("unknown device" in r for r in reasons)


def test_events_deduplicated_by_id(ingest: Ingest) -> None:
    ev = p.encode(p.Event(ts=p.now(), id="ev-1", kind="help", severity="urgent", message="aiuto"))
    topic = p.topic(p.TopicKind.EVENTS, "pc-001")
    ingest.handle_many([(topic, ev), (topic, ev)])
    with ingest._factory() as session:
        assert session.scalar(select(func.count()).select_from(DeviceEvent)) == 1


def test_twin_reported_and_desired_sections(ingest: Ingest) -> None:
    rep = p.TwinReported(ts=p.now(), desired_version=3, armed_alarm=1_800_000_000.0)
    ingest.handle(p.topic(p.TopicKind.TWIN_REPORTED, "pc-001"), p.encode(rep))
    assert _device(ingest).reported == msgspec.to_builtins(rep)
    with transaction(ingest._factory) as session:
        device = session.get(Device, "pc-001")
        assert device is not None
        assert set_section(session, device, "telemetry", {"interval_s": 30}) == 1
        with pytest.raises(TwinError, match="interval_s"):
            set_section(session, device, "telemetry", {"interval_s": 1})
        with pytest.raises(TwinError, match="unknown section"):
            set_section(session, device, "colour", {})
        desired = build_desired(device)
        assert desired.version == 1 and desired.telemetry is not None
        assert desired.telemetry.interval_s == 30


def test_alert_opens_once_and_resolves(ingest: Ingest) -> None:
    seen: list[str] = []
    alerts.add_notifier(lambda a: seen.append(a.key))
    try:
        with transaction(ingest._factory) as session:
            a1, new1 = alerts.raise_alert(
                session,
                key="offline:pc-001",
                kind="offline",
                severity="high",
                message="offline",
                device_id="pc-001",
            )
            a2, new2 = alerts.raise_alert(
                session,
                key="offline:pc-001",
                kind="offline",
                severity="high",
                message="offline",
                device_id="pc-001",
            )
            assert new1 and not new2 and a1.id == a2.id
            assert alerts.resolve(session, "offline:pc-001") is not None
            _, new3 = alerts.raise_alert(
                session,
                key="offline:pc-001",
                kind="offline",
                severity="high",
                message="again",
                device_id="pc-001",
            )
            assert new3
    finally:
        alerts._notifiers.clear()
    assert seen == ["offline:pc-001", "offline:pc-001"]
