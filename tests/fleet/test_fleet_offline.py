"""Nothing is lost offline: a simulated week without the broker, kill -9 mid-replay, and a
damaged outbox file — against the real Mosquitto and the real control-plane ingest."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.db import migrate, transaction
from control_plane.devices import create_device
from edge import protocol as p
from edge.config import TelemetryConfig, VpnConfig, WakeConfig
from edge.outbox import Outbox, OutboxKind
from tests.conftest import ControlPlane, make_settings
from tests.fleet.conftest import control_plane_on
from tests.fleet.fleet_support import (
    Db,
    DeepQueueMosquitto,
    FakeClock,
    GatedCollector,
    IngestRunner,
    in_process_edge,
    wait_for_seqs,
)
from tests.support.broker import CP_PASSWORD, CP_USER, Mosquitto, free_port
from tests.support.edge import EdgeProcess, write_edge_config
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

WEEK_S = 7 * 24 * 3600
STEP_S = 300  # one sample every 5 minutes of the device's clock
BATCH = 12  # batch_max: still one sample per batch offline (each is on disk at once)


@pytest.fixture
def cp_db(tmp_path: Path) -> Iterator[Db]:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    db = Db(url)
    yield db
    db.close()


def _register(db: Db, broker: Mosquitto, device_id: str) -> str:
    settings = make_settings(str(db.engine.url), broker)
    with transaction(db.factory) as session:
        _, password = create_device(session, settings, device_id=device_id)
    return password


def test_a_week_offline_replays_everything_in_order_once(
    own_broker: Mosquitto, cp_db: Db, tmp_path: Path
) -> None:
    device_id = "pc-week-01"
    password = _register(cp_db, own_broker, device_id)
    settings = make_settings(str(cp_db.engine.url), own_broker, mqtt_backoff_cap_s=0.5)
    config = write_edge_config(
        tmp_path,
        device_id,
        password,
        own_broker,
        telemetry=TelemetryConfig(interval_s=0.001, batch_max=BATCH),
        wake=WakeConfig(enabled=False),
        vpn=VpnConfig(enabled=False),
    )
    start = time.time() - 8 * 24 * 3600  # the week ends a day before the real now
    clock = FakeClock(start)
    collector = GatedCollector(clock, STEP_S)
    ingest = IngestRunner(settings).start()
    try:
        with in_process_edge(config, clock, collector) as edge:
            daemon = edge.daemon
            collector.allow(1)
            wait_for_seqs(cp_db, device_id, {1})
            assert cp_db.device(device_id).online  # type: ignore[union-attr]

            own_broker.stop()
            wait_until(lambda: not daemon.session.connected.is_set(), message="the device offline")
            # While the broker is away, the device's retries go to a port where nothing
            # listens; it comes back after the control plane has re-subscribed (a broker
            # without persistence forgets subscriptions, and what nobody is subscribed to
            # is not kept).
            port = daemon.config.mqtt.port
            daemon.config.mqtt.port = free_port()

            samples = WEEK_S // STEP_S  # 2016
            collector.allow(samples)
            # Every sample waits on disk as its own batch: none is held in memory.
            batches = samples
            wait_until(
                lambda: collector.taken == samples + 1 and daemon.outbox.depth() >= batches,
                timeout=60,
                message="a week of samples queued in the outbox",
            )
            assert not daemon._pending_samples

            own_broker.start()
            wait_until(lambda: ingest.connected, timeout=20, message="the control plane back")
            daemon.config.mqtt.port = port
            seqs = wait_for_seqs(cp_db, device_id, set(range(1, batches + 2)), timeout=60)
            wait_until(lambda: daemon.outbox.depth() == 0, message="the outbox drained")
            # Before the edge stops: stopping lets the gated collector take one more sample.
            arrived = [seq for dev, seq in ingest.arrivals if dev == device_id]
            times = cp_db.sample_times(device_id)
    finally:
        ingest.stop()

    assert seqs == list(range(1, batches + 2))  # nothing lost, nothing stored twice
    # In order: the control plane received the batches in sequence order, each once.
    assert arrived == sorted(arrived) and len(arrived) == len(set(arrived)) == batches + 1
    assert ingest.ingest.stats.duplicates == 0
    # With the device's original timestamps: one sample every 5 minutes across the week.
    assert len(times) == samples + 1
    assert [round(b - a) for a, b in itertools.pairwise(times)] == [STEP_S] * samples
    assert times[0] == pytest.approx(start) and times[-1] - times[0] == WEEK_S


def test_publishes_in_flight_when_the_broker_dies_do_not_hold_the_replay_back(
    own_broker: Mosquitto, cp_db: Db, tmp_path: Path
) -> None:
    # The broker hangs (SIGSTOP) with batches sent but not acknowledged, then dies. The
    # client never fails those publishes itself (they would wait out their 15 s timeout);
    # the outbox must replay them on the next connection, not wait for a disconnect.
    device_id = "pc-hung-01"
    password = _register(cp_db, own_broker, device_id)
    settings = make_settings(str(cp_db.engine.url), own_broker, mqtt_backoff_cap_s=0.5)
    config = write_edge_config(
        tmp_path,
        device_id,
        password,
        own_broker,
        telemetry=TelemetryConfig(interval_s=0.001, batch_max=1),
        wake=WakeConfig(enabled=False),
        vpn=VpnConfig(enabled=False),
    )
    clock = FakeClock(time.time() - 3600)
    collector = GatedCollector(clock, STEP_S)
    ingest = IngestRunner(settings).start()
    try:
        with in_process_edge(config, clock, collector) as edge:
            daemon = edge.daemon
            collector.allow(1)
            wait_for_seqs(cp_db, device_id, {1})
            assert own_broker.proc is not None
            os.kill(own_broker.proc.pid, signal.SIGSTOP)
            collector.allow(3)
            wait_until(
                lambda: collector.taken == 4 and daemon.outbox.depth() >= 3,
                message="three batches sent to the hung broker",
            )
            port = daemon.config.mqtt.port
            daemon.config.mqtt.port = free_port()  # back only once the ingest is
            own_broker.proc.kill()
            own_broker.proc.wait(5)
            own_broker.proc = None
            wait_until(lambda: not daemon.session.connected.is_set(), message="the device offline")
            own_broker.start()
            wait_until(lambda: ingest.connected, timeout=20, message="the control plane back")
            daemon.config.mqtt.port = port
            # Well inside the hung publishes' 15 s timeout, and long after it: before the
            # fix, the replay waited for a disconnect that never came.
            seqs = wait_for_seqs(cp_db, device_id, {1, 2, 3, 4}, timeout=40)
            wait_until(lambda: daemon.outbox.depth() == 0, message="the outbox drained")
    finally:
        ingest.stop()
    assert seqs == [1, 2, 3, 4]


def _fill_outbox(state_dir: Path, device_id: str, count: int) -> None:
    """Queue ``count`` telemetry batches (seq 1..count) as a long outage leaves them."""
    topic = p.topic(p.TopicKind.TELEMETRY, device_id)
    t0 = time.time() - count * 60
    items = [
        (
            OutboxKind.TELEMETRY,
            topic,
            p.encode(
                p.TelemetryBatch(
                    ts=t0 + i * 60,
                    seq=i,
                    samples=[p.Sample(ts=t0 + i * 60, metrics={"cpu.percent": i % 100})],
                )
            ),
        )
        for i in range(1, count + 1)
    ]
    with Outbox(state_dir / "outbox.db") as box:
        box.put_many(items)
        assert box.next_seq("telemetry") == 1
    # The daemon's own next batch must follow the queued ones: move the file's persisted
    # counter on, as count calls of next_seq would have (each one fsyncs: too slow here).
    with sqlite3.connect(state_dir / "outbox.db") as conn:
        conn.execute("UPDATE seq SET value = ? WHERE name = 'telemetry'", (count,))
    conn.close()


class _Counter:
    """A bare ``mosquitto_sub`` counting what reaches the broker for one device."""

    def __init__(self, broker: Mosquitto, device_id: str) -> None:
        self.count = 0
        self._proc = subprocess.Popen(
            [
                "mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
                "-u", CP_USER, "-P", CP_PASSWORD, "-q", "1",
                "-t", p.topic(p.TopicKind.TELEMETRY, device_id),
            ],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for _ in self._proc.stdout:
            self.count += 1

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)
        self._thread.join(10)
        assert self._proc.stdout is not None
        self._proc.stdout.close()


@pytest.fixture
def deep_cp(tmp_path: Path, deep_broker: DeepQueueMosquitto) -> Iterator[ControlPlane]:
    with control_plane_on(tmp_path, deep_broker) as cp:
        yield cp


def test_kill9_during_replay_loses_nothing(
    deep_cp: ControlPlane, deep_broker: DeepQueueMosquitto, tmp_path: Path
) -> None:
    control_plane, broker = deep_cp, deep_broker
    device_id = "pc-kill-01"
    queued = 20_000
    password = control_plane.register(device_id)
    config = write_edge_config(
        tmp_path,
        device_id,
        password,
        broker,
        interval_s=3600,
        wake=WakeConfig(enabled=False),
        vpn=VpnConfig(enabled=False),
    )
    state_dir = tmp_path / device_id / "state"
    _fill_outbox(state_dir, device_id, queued)
    counter = _Counter(broker, device_id)
    db = Db(control_plane.settings.database_url)
    try:
        first = EdgeProcess(config, tmp_path / "edge1.log").start()
        # Kill it while the replay is under way: some batches out, most still queued.
        wait_until(lambda: counter.count >= queued // 10, timeout=60, message="replay started")
        first.kill9()
        with Outbox(state_dir / "outbox.db") as box:
            left = box.depth()
        assert 0 < left < queued, left  # it really died in the middle

        second = EdgeProcess(config, tmp_path / "edge2.log").start()
        try:
            seqs = wait_for_seqs(db, device_id, set(range(1, queued + 1)), timeout=120)
        finally:
            second.stop()
    finally:
        counter.stop()
        db.close()
    stored = [s for s in seqs if s <= queued]
    assert stored == list(range(1, queued + 1))  # every batch once (duplicates were dropped)
    # Batches in flight at the kill may have been sent twice; the control plane kept one.
    assert counter.count >= queued


def test_a_damaged_outbox_is_set_aside_and_reported(
    control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    device_id = "pc-garbage-01"
    password = control_plane.register(device_id)
    config = write_edge_config(
        tmp_path,
        device_id,
        password,
        broker,
        interval_s=1.0,
        wake=WakeConfig(enabled=False),
        vpn=VpnConfig(enabled=False),
    )
    state_dir = tmp_path / device_id / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "outbox.db").write_bytes(b"this is not an outbox \x00\xff" * 200)
    db = Db(control_plane.settings.database_url)
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        events = wait_until(
            lambda: [e for e in db.events(device_id) if e[0] == "error"],
            timeout=20,
            message="the error event at the control plane",
        )
        # Telemetry goes on through the fresh outbox.
        wait_for_seqs(db, device_id, {1, 2}, timeout=20)
    finally:
        edge.stop()
        db.close()
    _kind, severity, message = events[0]
    assert severity == "error"
    assert "outbox" in message and "moved it to outbox.db.corrupt-" in message
    aside = list(state_dir.glob("outbox.db.corrupt-*"))
    assert aside and aside[0].read_bytes().startswith(b"this is not an outbox")
    assert control_plane.device(device_id)["online"] is False  # a graceful stop


@pytest.mark.parametrize("persistent", [True, False])
def test_messages_sent_while_the_control_plane_restarts_wait_for_it(
    own_broker: Mosquitto, cp_db: Db, persistent: bool
) -> None:
    # The production setting keeps the ingest session at the broker: what devices send while
    # the control plane is down (an upgrade, a crash) is held for it. Without it, lost.
    device_id = "pc-cp-restart"
    password = _register(cp_db, own_broker, device_id)
    settings = make_settings(str(cp_db.engine.url), own_broker, mqtt_backoff_cap_s=0.5)
    settings = settings.model_copy(update={"ingest_persistent_session": persistent})
    first = IngestRunner(settings).start()
    _publish(own_broker, device_id, password, [1])
    wait_for_seqs(cp_db, device_id, {1})
    first.stop()

    _publish(own_broker, device_id, password, [2, 3, 4])  # nobody connected now
    second = IngestRunner(settings).start()
    try:
        _publish(own_broker, device_id, password, [5])
        wait_for_seqs(cp_db, device_id, {5})
        if persistent:
            assert wait_for_seqs(cp_db, device_id, {1, 2, 3, 4, 5}) == [1, 2, 3, 4, 5]
        else:
            # 5 came after 2-4 would have (a kept session's backlog goes first): dropped.
            assert cp_db.seqs(device_id) == [1, 5]
    finally:
        second.stop()


def _publish(broker: Mosquitto, device_id: str, password: str, seqs: list[int]) -> None:
    """Telemetry batches ``seqs`` from the device, QoS 1, with mosquitto_pub."""
    now = time.time()
    lines = [
        p.encode(
            p.TelemetryBatch(
                ts=now, seq=s, samples=[p.Sample(ts=now, metrics={"cpu.percent": 1.0})]
            )
        )
        for s in seqs
    ]
    done = subprocess.run(
        ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", device_id,
         "-P", password, "-i", device_id, "-q", "1", "-l",
         "-t", p.topic(p.TopicKind.TELEMETRY, device_id)],
        input=b"\n".join(lines) + b"\n", capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
