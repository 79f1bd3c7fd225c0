"""The InfluxDB line-protocol sink against a real VictoriaMetrics (``/api/v2/write``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.devices import create_device
from control_plane.fleet.sinks import InfluxSink, to_lines
from control_plane.models import Role
from edge import protocol as p
from tests.conftest import add_user, make_settings
from tests.support.broker import free_port
from tests.support.wait import wait_until

VICTORIA = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"

pytestmark = pytest.mark.slow


class Victoria:
    """A VictoriaMetrics server on a free loopback port, its data under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Victoria:
        """Start it and wait until it answers /health."""
        log = (self.workdir / "victoria.log").open("ab")
        self.proc = subprocess.Popen(
            [
                VICTORIA,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir / 'data'}",
                "-retentionPeriod=100y",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=30, message="victoria-metrics to start")
        return self

    def stop(self) -> None:
        """Stop it (it flushes on SIGTERM)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None

    def export(self, device_id: str) -> dict[str, list[tuple[int, float]]]:
        """Every stored series of a device: metric name -> [(ms, value), ...]."""
        # Freshly written points reach search after a flush (normally within seconds).
        httpx.get(f"{self.url}/internal/force_flush", timeout=10)
        r = httpx.get(
            f"{self.url}/api/v1/export",
            params={"match[]": f'{{device="{device_id}"}}'},
            timeout=10,
        )
        r.raise_for_status()
        out: dict[str, list[tuple[int, float]]] = {}
        for line in r.text.splitlines():
            row = json.loads(line)
            name = row["metric"]["__name__"]
            out.setdefault(name, []).extend(zip(row["timestamps"], row["values"], strict=True))
        return out


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    vm = Victoria(tmp_path).start()
    yield vm
    vm.stop()


def _batch(seq: int, ts: float, cpu: float) -> bytes:
    return p.encode(
        p.TelemetryBatch(
            ts=ts + 1,
            seq=seq,
            samples=[
                p.Sample(ts=ts, metrics={"cpu.percent": cpu, "mem.used_pct": 40.0}),
                p.Sample(ts=ts + 1, metrics={"cpu.percent": cpu + 1}),
            ],
        )
    )


def test_line_protocol_escapes_tags_and_keeps_nanoseconds() -> None:
    lines = to_lines("pc 1,x=y", [(1.5, {"cpu.percent": 3.0, "load.1": 0.25}), (2.0, {})])
    assert lines == [r"device_health,device=pc\ 1\,x\=y cpu.percent=3.0,load.1=0.25 1500000000"]


def test_the_influx_path_stores_and_reads_back_from_victoria_metrics(
    victoria: Victoria, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    settings = make_settings(
        url,
        None,
        telemetry_sink="influx",
        influx_url=victoria.url,
        influx_token="unused-by-victoria",
        influx_org="difronte",
        influx_bucket="telemetry",
    )
    factory = make_sessionmaker(make_engine(url))
    with transaction(factory) as session:
        create_device(session, settings, device_id="pc-influx-01")
    factory.kw["bind"].dispose()
    token = add_user(url, "fleet@example.org", Role.FLEET_MANAGER)
    now = p.now()
    topic = p.topic(p.TopicKind.TELEMETRY, "pc-influx-01")
    app = create_app(settings)
    with TestClient(app) as client:
        sink = app.state.ingest.sink
        assert isinstance(sink, InfluxSink)
        # Three batches in one transaction, one redelivered: its points are written once.
        app.state.ingest.handle_many(
            [
                (topic, _batch(1, now - 20, 10.0)),
                (topic, _batch(2, now - 10, 20.0)),
                (topic, _batch(1, now - 20, 10.0)),
            ]
        )
        app.state.ingest.handle(topic, _batch(3, now, 30.0))
        assert sink.written == 6 and sink.failures == 0
        series = wait_until(
            lambda: (
                (s := victoria.export("pc-influx-01"))
                and len(s.get("device_health_cpu.percent", [])) == 6
                and s
            ),
            timeout=20,
            message="the points in victoria-metrics",
        )
        # The API reads its charts from the batches it keeps, whatever the sink.
        r = client.get(
            "/api/v1/devices/pc-influx-01/telemetry",
            params={"metric": "cpu.percent", "range": "1h"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        assert [v for _, v in r.json()["series"]["cpu.percent"]] == [10, 11, 20, 21, 30, 31]
    cpu = sorted(series["device_health_cpu.percent"])
    assert [v for _, v in cpu] == [10.0, 11.0, 20.0, 21.0, 30.0, 31.0]
    # Original sample times, to the millisecond victoria keeps (it truncates the nanoseconds).
    assert abs(cpu[0][0] - (now - 20) * 1000) < 1
    assert [v for _, v in series["device_health_mem.used_pct"]] == [40.0, 40.0, 40.0]


def test_points_wait_while_the_store_is_down_and_are_sent_later(
    victoria: Victoria, tmp_path: Path
) -> None:
    sink = InfluxSink(victoria.url, "t", "difronte", "telemetry", retries=1, backoff_s=0.01)
    try:
        now = p.now()
        victoria.stop()
        sink.write(None, "pc-influx-02", [(now - 5, {"cpu.percent": 1.0})])  # type: ignore[arg-type]
        sink.flush()
        assert sink.failures == 2 and sink.written == 0  # tried twice, kept for later
        victoria.start()
        sink.write(None, "pc-influx-02", [(now, {"cpu.percent": 2.0})])  # type: ignore[arg-type]
        sink.flush()
        assert sink.written == 2
        series = wait_until(
            lambda: (
                (s := victoria.export("pc-influx-02"))
                and len(s.get("device_health_cpu.percent", [])) == 2
                and s
            ),
            timeout=20,
            message="both points stored",
        )
        assert sorted(v for _, v in series["device_health_cpu.percent"]) == [1.0, 2.0]
    finally:
        sink.close()
