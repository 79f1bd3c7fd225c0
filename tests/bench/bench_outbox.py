"""Benchmark: replaying the edge outbox after a long outage, to a local Mosquitto.

Target: >= 5,000 queued batches/s replayed (published at QoS 1 and PUBACKed, rows deleted).

The outbox is filled as a long outage leaves it (batches of 10 one-minute samples of the 27
metrics a real PC sends), then the daemon's own pieces replay it: ``MqttSession`` (aiomqtt,
plain TCP on loopback) and ``drain`` with the daemon's window of 32 publishes in flight. A
bare paho subscriber counts what the broker delivers, so nothing is assumed sent that was not.
The same replay with one publish in flight (no pipelining) is measured for comparison.

    .venv/bin/python -m pytest tests/bench/bench_outbox.py -m bench -s
    DIFRONTE_BENCH=1 .venv/bin/pytest tests/bench/bench_outbox.py -s

Size: DIFRONTE_BENCH_OUTBOX (20000 batches). A tiny run is in the normal suite
(tests/fleet/test_fleet_bench_smoke.py); figures are printed and written to the outbox
section of BENCHMARKS.md, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from edge import protocol as p
from edge.config import EdgeConfig, MqttConfig, PathsConfig
from edge.outbox import Outbox, OutboxKind, drain
from edge.session import OUTBOX_WINDOW, MqttSession
from tests.bench.bench_ingest import METRICS, BareSubscriber, BenchMosquitto, write_section

BEGIN, END = "<!-- fleet-outbox:begin -->", "<!-- fleet-outbox:end -->"
ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "BENCHMARKS.md"
TARGET_RATE = 5000.0
DEVICE = "bench-outbox-01"
PASSWORD = "bench-outbox-password"
SAMPLES_PER_BATCH = 10


def fill(path: Path, batches: int) -> tuple[float, int]:
    """Queue ``batches`` telemetry batches as an outage leaves them; (seconds, file bytes)."""
    topic = p.topic(p.TopicKind.TELEMETRY, DEVICE)
    t0 = time.time() - batches * SAMPLES_PER_BATCH * 60
    started = time.perf_counter()
    with Outbox(path, max_telemetry=max(batches, 10)) as box:
        for first in range(0, batches, 1000):
            items = []
            for seq in range(first + 1, min(first + 1000, batches) + 1):
                base = t0 + seq * SAMPLES_PER_BATCH * 60
                samples = [
                    p.Sample(ts=base + 60 * i, metrics=METRICS) for i in range(SAMPLES_PER_BATCH)
                ]
                batch = p.TelemetryBatch(ts=base + 600, seq=seq, samples=samples)
                items.append((OutboxKind.TELEMETRY, topic, p.encode(batch)))
            box.put_many(items)
        assert box.depth() == batches
    size = sum(f.stat().st_size for f in path.parent.glob(f"{path.name}*"))
    return time.perf_counter() - started, size


async def replay(path: Path, broker: BenchMosquitto, window: int) -> float:
    """Connect as the device and drain the outbox; seconds from connected to empty."""
    config = EdgeConfig(
        device_id=DEVICE,
        mqtt=MqttConfig(host=broker.host, port=broker.port, password=PASSWORD, keepalive=30),
        paths=PathsConfig(state_dir=str(path.parent)),
    )

    async def ignore(_parsed: p.ParsedTopic, _payload: bytes) -> None:
        return None

    session = MqttSession(
        config,
        next_session=itertools.count(1).__next__,
        boot_reason=lambda: "power",
        agent_version="bench",
        on_message=ignore,
    )
    with Outbox(path, max_telemetry=10_000_000) as box:
        runner = asyncio.create_task(session.run())
        await asyncio.wait_for(session.connected.wait(), 30)
        started = time.perf_counter()
        draining = asyncio.create_task(
            drain(box, session.publish, window=window, abort=session.disconnected)
        )
        while box.depth() > 0:
            if draining.done():
                draining.result()  # a publish failed: say why
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        draining.cancel()
        await session.close()
        runner.cancel()
        for task in (draining, runner):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return elapsed


@dataclass
class Figures:
    batches: int
    samples_per_batch: int
    payload_bytes: int
    file_mb: float
    fill_rate: float
    rate: float
    delivered: int
    rate_window_1: float
    load: tuple[float, float, float] = field(default_factory=lambda: os.getloadavg())


def run_benchmark(tmp_path: Path, *, batches: int) -> Figures:
    """Fill, replay with the daemon's window (counted by a subscriber), replay with window 1."""
    broker = BenchMosquitto(tmp_path / "mosquitto")
    broker.set_users({DEVICE: PASSWORD})
    broker.start()
    try:
        path = tmp_path / "state" / "outbox.db"
        fill_s, size = fill(path, batches)
        payload = len(p.encode(p.TelemetryBatch(ts=1.0, seq=1, samples=[
            p.Sample(ts=1.0, metrics=METRICS)] * SAMPLES_PER_BATCH)))  # fmt: skip
        counter = BareSubscriber(broker, batches)
        elapsed = asyncio.run(replay(path, broker, OUTBOX_WINDOW))
        delivered = counter.result()["count"]
        small = max(10, batches // 10)
        path1 = tmp_path / "state1" / "outbox.db"
        fill(path1, small)
        elapsed1 = asyncio.run(replay(path1, broker, 1))
        return Figures(
            batches=batches,
            samples_per_batch=SAMPLES_PER_BATCH,
            payload_bytes=payload,
            file_mb=size / 1e6,
            fill_rate=batches / fill_s,
            rate=batches / elapsed,
            delivered=delivered,
            rate_window_1=small / elapsed1,
        )
    finally:
        broker.stop()


def section(f: Figures, *, when: str | None = None) -> str:
    """The outbox section of BENCHMARKS.md."""
    when = when or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = "met" if f.rate >= TARGET_RATE else "**missed**"
    return "\n".join(
        [
            BEGIN,
            "## Edge: outbox replay after an outage (tests/bench/bench_outbox.py)",
            "",
            f"Run {when} on {platform.node() or 'this machine'} ({os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, Mosquitto on loopback, load average "
            f"{' '.join(f'{x:.1f}' for x in f.load)}). The outbox held {f.batches:,} batches "
            f"of {f.samples_per_batch} samples ({f.payload_bytes:,} bytes each, "
            f"{f.file_mb:.0f} MB on disk); the daemon's `MqttSession` and `drain` replayed it.",
            "",
            "| measure | result | target |",
            "|---|---|---|",
            f"| replay, {OUTBOX_WINDOW} publishes in flight (the daemon's setting) "
            f"| {f.rate:,.0f} batches/s | >= {TARGET_RATE:,.0f}/s ({met}) |",
            f"| delivered to a subscriber | {f.delivered:,} of {f.batches:,} | all |",
            f"| replay, 1 publish in flight (no pipelining) | {f.rate_window_1:,.0f} batches/s "
            "| — |",
            f"| queueing while offline (`put_many`, 1,000 per transaction) "
            f"| {f.fill_rate:,.0f} batches/s | — |",
            "",
            "Each batch is deleted from the outbox only after the broker's PUBACK; rows go in "
            "id order, so the replay is in the original order with the original timestamps. "
            "Confirmed rows are deleted 128 at a time (`ACK_BATCH` in `edge/outbox/replay.py`; "
            "a crash replays at most those, which the control plane drops as duplicates). "
            "What remains is per-message Python work in aiomqtt/paho (publish, PUBACK "
            "handling) on two cores shared with Mosquitto and the counting subscriber; the "
            "window size (32 or 128) makes no difference, and one publish in flight is the "
            "baseline above.",
            END,
            "",
        ]
    )


def _wanted(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("markexpr", "") or "")
    return os.environ.get("DIFRONTE_BENCH") == "1" or "bench" in markexpr.split()


@pytest.mark.bench
@pytest.mark.slow
def test_outbox_replay_benchmark(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Measure, print, write BENCHMARKS.md (figures are reported, not asserted)."""
    if not _wanted(request.config):
        pytest.skip("a benchmark: run it with -m bench or DIFRONTE_BENCH=1")
    figures = run_benchmark(tmp_path, batches=int(os.environ.get("DIFRONTE_BENCH_OUTBOX", "20000")))
    print(json.dumps(asdict(figures)))
    text_ = section(figures)
    print("\n" + text_)
    write_section(BENCHMARKS, text_, BEGIN, END)
