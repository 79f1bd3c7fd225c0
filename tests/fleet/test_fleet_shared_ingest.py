"""Two ingest workers on one shared subscription split the stream: every batch stored once."""

from __future__ import annotations

import subprocess
import time

import pytest
from sqlalchemy import func, select

from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.devices import create_device
from control_plane.models import TelemetryBatchRecord
from edge import protocol as p
from tests.conftest import make_settings
from tests.fleet.fleet_support import IngestRunner
from tests.support.broker import Mosquitto
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

DEVICES = 4
BATCHES = 250  # per device


def _publish_lines(broker: Mosquitto, device_id: str, password: str, lines: list[bytes]) -> None:
    """Publish one message per line at QoS 1 as the device, with mosquitto_pub."""
    done = subprocess.run(
        [
            "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", device_id,
            "-P", password, "-i", device_id, "-q", "1", "-l",
            "-t", p.topic(p.TopicKind.TELEMETRY, device_id),
        ],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_two_workers_share_the_stream_and_store_every_batch_once(
    db_url: str, broker: Mosquitto
) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    factory = make_sessionmaker(engine)
    passwords: dict[str, str] = {}
    with transaction(factory) as session:
        settings = make_settings(db_url, broker)
        for i in range(DEVICES):
            _, passwords[f"pc-share-{i}"] = create_device(
                session, settings, device_id=f"pc-share-{i}"
            )
    workers = [
        IngestRunner(
            make_settings(db_url, broker, mqtt_instance=f"cp-{name}"),
            share_group="difronte-ingest",
        ).start()
        for name in ("a", "b")
    ]
    try:
        now = time.time()
        for device_id, password in passwords.items():
            lines = [
                p.encode(
                    p.TelemetryBatch(
                        ts=now, seq=seq, samples=[p.Sample(ts=now, metrics={"cpu.percent": seq})]
                    )
                )
                for seq in range(1, BATCHES + 1)
            ]
            # A QoS 1 redelivery of the first ten: harmless.
            _publish_lines(broker, device_id, password, lines + lines[:10])
        total = DEVICES * BATCHES
        wait_until(
            lambda: sum(len(w.arrivals) for w in workers) >= total + DEVICES * 10,
            timeout=60,
            message="every batch handled by one of the workers",
        )
    finally:
        for worker in workers:
            worker.stop()
    with factory() as session:
        stored = session.execute(
            select(TelemetryBatchRecord.device_id, func.count(), func.count(func.distinct(
                TelemetryBatchRecord.seq)))
            .group_by(TelemetryBatchRecord.device_id)
        ).all()  # fmt: skip
    engine.dispose()
    assert sorted(stored) == [(d, BATCHES, BATCHES) for d in sorted(passwords)]
    a, b = (w.ingest.stats for w in workers)
    # The broker split the stream: each worker stored a share, none saw a message twice.
    assert a.accepted > 0 and b.accepted > 0
    assert a.accepted + b.accepted == DEVICES * BATCHES
    assert a.duplicates + b.duplicates == DEVICES * 10
    # Every batch went to exactly one worker (retained status messages, which both workers
    # get on purpose, are not in the shared stream and not counted here).
    arrivals = workers[0].arrivals + workers[1].arrivals
    assert len(arrivals) == DEVICES * (BATCHES + 10)
    assert sorted(set(arrivals)) == sorted((d, s) for d in passwords for s in range(1, BATCHES + 1))
