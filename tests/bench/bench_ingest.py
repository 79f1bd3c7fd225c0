"""Benchmark: telemetry from 2,000 simulated devices through Mosquitto into the control plane.

Targets on the 2-core reference machine: 2,000 connected devices, >= 5,000 batches/s
sustained, p99 ingest lag < 1 s, and >= 50 % of the rate at which a bare paho subscriber
drains the same stream (the ceiling of Python + Mosquitto on this machine).

One run, three phases, the same 2,000 device connections throughout (a separate process
speaking MQTT 3.1.1 at QoS 1, so its work does not share the control plane's interpreter):

1. ceiling — a bare paho subscriber (its own process) drains a burst of batches;
2. burst — the control plane (the real app: MqttService, Ingest, the fleet's embedded sink, on
   SQLite) drains the same burst: its drain rate, compared with the ceiling;
3. sustained — the devices publish at a fixed rate (the target) for a while: the rate stored
   and the ingest lag (device send time -> commit of the transaction that stored it).

    .venv/bin/python -m pytest tests/bench/bench_ingest.py -m bench -s
    DIFRONTE_BENCH=1 .venv/bin/pytest tests/bench/bench_ingest.py -s

Sizes: DIFRONTE_BENCH_DEVICES (2000), DIFRONTE_BENCH_BURST (40000), DIFRONTE_BENCH_RATE
(5000), DIFRONTE_BENCH_SECONDS (30), DIFRONTE_BENCH_DB (sqlite, or postgres). A tiny run of
the same code is in the normal suite (tests/fleet/test_fleet_bench_smoke.py); figures are
printed and written to the ingest section of BENCHMARKS.md, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from control_plane.app import create_app
from control_plane.db import make_engine, make_sessionmaker, migrate
from control_plane.models import Device, TelemetryBatchRecord
from control_plane.security import mosquitto_hash
from edge import protocol as p
from tests.conftest import make_settings
from tests.support.broker import CP_PASSWORD, CP_USER, Mosquitto
from tests.support.postgres import fresh_database
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- fleet-ingest:begin -->", "<!-- fleet-ingest:end -->"
TARGET_DEVICES = 2000
TARGET_RATE = 5000.0
TARGET_P99_S = 1.0
TARGET_SHARE = 0.5
DEVICE_PASSWORD = "bench-device-password"

# One sample as a real PC sends it (the default collectors: 27 metrics), values made up.
METRICS = {
    "cpu.percent": 12.5, "cpu.count": 2.0, "cpu.freq_mhz": 1600.0, "load.1": 0.4,
    "load.5": 0.3, "load.15": 0.2, "mem.total_bytes": 4.0e9, "mem.available_bytes": 2.5e9,
    "mem.used_pct": 37.5, "swap.total_bytes": 1.0e9, "swap.used_pct": 0.0,
    "disk.root.used_pct": 41.0, "disk.root.free_bytes": 7.0e10, "disk.root.total_bytes": 1.2e11,
    "uptime_s": 3600.0, "net.rx_bytes": 1.0e8, "net.tx_bytes": 2.0e7, "net.rx_errors": 0.0,
    "net.tx_errors": 0.0, "net.rx_dropped": 0.0, "net.links_up": 1.0, "net.link_up": 1.0,
    "smart.disks": 1.0, "smart.unreadable_disks": 0.0, "smart.failing_disks": 0.0,
    "ntp.synced": 1.0, "rtc.drift_s": 0.4,
}  # fmt: skip


def device_ids(n: int) -> list[str]:
    """The simulated devices' ids."""
    return [f"bench-{i:05d}" for i in range(n)]


# -- the broker --------------------------------------------------------------------------------


class BenchMosquitto(Mosquitto):
    """The test broker, with room for thousands of clients and deep per-client queues."""

    def _write_conf(self) -> None:
        super()._write_conf()
        with self.conf.open("a") as fh:
            # Mosquitto drops QoS 1 messages for a subscriber beyond 1000 queued by default.
            fh.write("max_queued_messages 10000000\nmax_queued_bytes 0\nmax_connections -1\n")
        # Connection messages for 2,000 devices would be most of what the broker does.
        text = self.conf.read_text().replace(
            "connection_messages true", "connection_messages false"
        )
        self.conf.write_text(text.replace("log_type information\n", ""))


# -- MQTT 3.1.1 on the wire, for the load generator --------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


def connect_packet(client_id: str, username: str, password: str, keepalive: int = 60) -> bytes:
    """CONNECT with clean session, username and password."""
    body = _string(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keepalive)
    body += _string(client_id.encode()) + _string(username.encode()) + _string(password.encode())
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH at QoS 1."""
    body = _string(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _varint(len(body)) + body


def _payload_template() -> bytes:
    sample = json.dumps(METRICS, separators=(",", ":"))
    return b'{"v":1,"ts":%.6f,"seq":%d,"samples":[{"ts":%.6f,"metrics":' + sample.encode() + b"}]}"


@dataclass
class _Conn:
    topic: bytes
    writer: asyncio.StreamWriter
    reader_task: asyncio.Task[None]
    seq: int = 0
    packet_id: int = 0
    acked_bytes: int = 0


async def _connect(host: str, port: int, device_id: str, password: str) -> _Conn:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(connect_packet(device_id, device_id, password))
    connack = await reader.readexactly(4)
    if connack[0] != 0x20 or connack[3] != 0:
        raise RuntimeError(f"{device_id}: broker refused the connection ({connack!r})")
    conn = _Conn(p.topic(p.TopicKind.TELEMETRY, device_id).encode(), writer, None)  # type: ignore[arg-type]

    async def read_acks() -> None:
        # PUBACKs are 4 bytes each; counting bytes is enough to know what was confirmed.
        while data := await reader.read(65536):
            conn.acked_bytes += len(data)

    conn.reader_task = asyncio.create_task(read_acks())
    return conn


async def _load_main(host: str, port: int, devices: list[str], out: IO[str]) -> None:
    """The load generator: connect every device, then run the commands read from stdin."""
    sem = asyncio.Semaphore(100)

    async def one(device_id: str) -> _Conn:
        async with sem:
            return await _connect(host, port, device_id, DEVICE_PASSWORD)

    conns = await asyncio.gather(*(one(d) for d in devices))
    template = _payload_template()
    print(json.dumps({"ready": len(conns)}), file=out, flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        total_s, rate_s = line.split()
        total, rate = int(total_s), float(rate_s)
        started = time.time()
        sent = 0
        t0 = time.monotonic()
        while sent < total:
            # Rate mode: what should have gone by now; burst mode: the next thousand.
            due = min(total, int((time.monotonic() - t0) * rate) + 1) if rate else sent + 1000
            due = min(due, total)
            now = time.time()
            while sent < due:
                conn = conns[sent % len(conns)]
                conn.seq += 1
                conn.packet_id = conn.packet_id % 65535 + 1
                payload = template % (now, conn.seq, now)
                conn.writer.write(publish_packet(conn.topic, conn.packet_id, payload))
                sent += 1
            if rate:
                await asyncio.sleep(0.002)
            else:
                # Let the transports flush; don't queue far more than the broker takes.
                backlog = [c for c in conns if c.writer.transport.get_write_buffer_size() > 65536]
                await asyncio.gather(*(c.writer.drain() for c in backlog))
                await asyncio.sleep(0)
        send_s = time.time() - started
        acked = wait_acks = 0.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            acked = sum(c.acked_bytes for c in conns) // 4
            if acked >= sum(c.seq for c in conns):
                break
            wait_acks += 0.01
            await asyncio.sleep(0.01)
        result = {"sent": sent, "started": started, "send_s": send_s, "acked": acked}
        print(json.dumps(result), file=out, flush=True)
    for c in conns:
        c.writer.close()
        c.reader_task.cancel()


class LoadGenerator:
    """The devices, in a process of their own; commands and results go over its stdin/stdout."""

    def __init__(self, broker: Mosquitto, devices: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.bench_ingest", "load", broker.host,
             str(broker.port), str(len(devices))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        ready = self._read(timeout=180)
        if ready.get("ready") != len(devices):
            raise RuntimeError(f"load generator not ready: {ready}")

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            raise RuntimeError("the load generator did not answer")
        answer: dict[str, Any] = json.loads(result[0])
        return answer

    def run(self, total: int, rate: float) -> dict[str, Any]:
        """Publish ``total`` batches at ``rate`` per second (0: as fast as possible)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{total} {rate}\n")
        self.proc.stdin.flush()
        return self._read(timeout=600)

    def close(self) -> None:
        """Disconnect every device."""
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- the bare subscriber (the ceiling) ---------------------------------------------------------


def _bare_main(host: str, port: int, expected: int, out: IO[str]) -> None:
    """A paho subscriber that only counts: how fast this machine can drain the stream."""
    import paho.mqtt.client as mqtt

    times: list[float] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare-subscriber")
    client.username_pw_set(CP_USER, CP_PASSWORD)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_message = lambda *_args: times.append(time.time())
    client.connect(host, port, keepalive=60)
    client.subscribe(p.device_filter(p.TopicKind.TELEMETRY), qos=1)
    client.loop_start()
    subscribed.wait(30)
    print(json.dumps({"ready": True}), file=out, flush=True)
    deadline = time.monotonic() + 600
    last_count, idle_since = 0, time.monotonic()
    while len(times) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        if len(times) != last_count:
            last_count, idle_since = len(times), time.monotonic()
        elif times and time.monotonic() - idle_since > 10:
            break  # nothing for 10 s: report what arrived
    client.loop_stop()
    client.disconnect()
    result = {
        "count": len(times),
        "first": times[0] if times else 0,
        "last": times[-1] if times else 0,
    }
    print(json.dumps(result), file=out, flush=True)


class BareSubscriber:
    """The bare paho subscriber in a process of its own."""

    def __init__(self, broker: Mosquitto, expected: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.bench_ingest", "bare", broker.host,
             str(broker.port), str(expected)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline() or "{}")
        if not ready.get("ready"):
            raise RuntimeError("the bare subscriber did not subscribe")

    def result(self) -> dict[str, Any]:
        """Wait for its count."""
        assert self.proc.stdout is not None
        out, _ = self.proc.communicate(timeout=660)
        answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return answer


# -- the control plane under test --------------------------------------------------------------


class Recorder:
    """Wraps the app's ``Ingest.handle_many``: when each batch of messages was committed."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.commits: list[tuple[float, Sequence[tuple[str, bytes]]]] = []
        self.stored = 0
        self._lock = threading.Lock()

    def __call__(self, messages: Sequence[tuple[str, bytes]]) -> None:
        self._handle(messages)
        done = time.time()
        with self._lock:
            self.commits.append((done, messages))
            self.stored += len(messages)

    def take(self) -> list[tuple[float, Sequence[tuple[str, bytes]]]]:
        """The commits so far, forgetting them."""
        with self._lock:
            commits, self.commits = self.commits, []
            return commits


def lags(commits: list[tuple[float, Sequence[tuple[str, bytes]]]]) -> list[float]:
    """Send-to-commit lag of every message (decoded after the run, off the measured path)."""
    out = []
    decoder = msgspec_decoder()
    for done, messages in commits:
        for _, payload in messages:
            out.append(done - decoder.decode(payload).ts)
    return out


def msgspec_decoder() -> Any:
    """A decoder reading just the send time of a batch."""
    import msgspec

    class _Ts(msgspec.Struct):
        ts: float

    return msgspec.json.Decoder(_Ts)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def prepare_database(url: str, devices: list[str]) -> None:
    """Migrate and register the devices in bulk (the API would rewrite the broker files
    once per device)."""
    migrate(url)
    engine = make_engine(url)
    hashed = mosquitto_hash(DEVICE_PASSWORD)
    with make_sessionmaker(engine)() as session, session.begin():
        session.execute(
            insert(Device),
            [{"id": d, "name": d, "group": f"g{i % 20}", "mqtt_password_hash": hashed}
             for i, d in enumerate(devices)],
        )  # fmt: skip
    engine.dispose()


def stored_batches(url: str) -> int:
    """Telemetry batches in the store."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        batches = session.scalar(select(func.count()).select_from(TelemetryBatchRecord)) or 0
    engine.dispose()
    return int(batches)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Figures:
    database: str
    devices: int
    burst: int
    ceiling_rate: float
    burst_rate: float
    burst_send_rate: float
    offered_rate: float
    seconds: float
    sustained_rate: float
    lag_p50: float
    lag_p99: float
    lag_max: float
    stored_batches: int
    expected_batches: int
    within_rate: float
    within_p50: float
    within_p99: float
    load: tuple[float, float, float] = field(default_factory=lambda: os.getloadavg())

    @property
    def share(self) -> float:
        """The control plane's drain rate as a share of the bare subscriber's."""
        return self.burst_rate / self.ceiling_rate if self.ceiling_rate else float("nan")


@contextlib.contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database of ``kind``."""
    if kind == "postgres":
        with fresh_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'bench.db'}"


def run_benchmark(
    tmp_path: Path,
    *,
    devices: int,
    burst: int,
    rate: float,
    seconds: float,
    db: str = "sqlite",
) -> Figures:
    """Run the three phases and return the figures."""
    ids = device_ids(devices)
    broker = BenchMosquitto(tmp_path / "mosquitto")
    broker.set_users(dict.fromkeys(ids, DEVICE_PASSWORD))
    broker.start()
    load: LoadGenerator | None = None
    try:
        with database(db, tmp_path) as url:
            prepare_database(url, ids)
            settings = make_settings(url, broker, mqtt_backoff_cap_s=1.0)
            # The app manages the broker files; here they were written above, with the same
            # password, so the app must not rewrite them without the devices.
            settings = settings.model_copy(update={"broker_pid_file": None})
            load = LoadGenerator(broker, ids)

            bare = BareSubscriber(broker, burst)
            sent = load.run(burst, 0)
            ceiling = bare.result()
            ceiling_rate = ceiling["count"] / max(1e-9, ceiling["last"] - sent["started"])

            app = create_app(settings)
            recorder = Recorder(app.state.ingest.handle_many)
            app.state.ingest.handle_many = recorder  # the lifespan hands it to MqttService
            with TestClient(app):
                wait_until(lambda: app.state.mqtt.connected.is_set(), timeout=30)
                sent_burst = load.run(burst, 0)
                wait_until(lambda: recorder.stored >= burst, timeout=600, interval=0.2,
                           message="the burst stored")  # fmt: skip
                commits = recorder.take()
                burst_rate = burst / (commits[-1][0] - sent_burst["started"])

                total = int(rate * seconds)
                sent_rate = load.run(total, rate)
                wait_until(lambda: recorder.stored >= burst + total, timeout=900, interval=0.2,
                           message="the sustained run stored")  # fmt: skip
                commits = recorder.take()
                sustained_rate = total / (commits[-1][0] - sent_rate["started"])
                lag = lags(commits)

                # The same at a rate this control plane keeps up with: the lag without a queue.
                within = max(10.0, round(0.6 * min(burst_rate, rate), -1))
                total_within = int(within * seconds)
                load.run(total_within, within)
                stored_before = burst + total
                wait_until(
                    lambda: recorder.stored >= stored_before + total_within,
                    timeout=900,
                    interval=0.2,
                    message="the run within capacity stored",
                )
                lag_within = lags(recorder.take())
            batches = stored_batches(url)
            return Figures(
                database=db,
                devices=devices,
                burst=burst,
                ceiling_rate=ceiling_rate,
                burst_rate=burst_rate,
                burst_send_rate=burst / max(1e-9, sent_burst["send_s"]),
                offered_rate=total / max(1e-9, sent_rate["send_s"]),
                seconds=seconds,
                sustained_rate=sustained_rate,
                lag_p50=statistics.median(lag),
                lag_p99=percentile(lag, 99),
                lag_max=max(lag),
                stored_batches=batches,
                expected_batches=burst + total + total_within,
                within_rate=within,
                within_p50=statistics.median(lag_within),
                within_p99=percentile(lag_within, 99),
            )
    finally:
        if load is not None:
            load.close()
        broker.stop()


# -- reporting ---------------------------------------------------------------------------------


def section(figures: list[Figures], *, when: str | None = None) -> str:
    """The ingest section of BENCHMARKS.md."""
    when = when or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        BEGIN,
        "## Fleet: telemetry ingest (tests/bench/bench_ingest.py)",
        "",
        f"Run {when} on {platform.node() or 'this machine'} ({os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, Mosquitto on loopback). Simulated devices (one process, "
        "MQTT 3.1.1, QoS 1, one batch = one sample of 27 metrics as a real PC sends it) stay "
        "connected through four phases: a bare paho subscriber drains a burst (the ceiling), "
        "the control plane (the real app: shared subscription, 2 ingest workers, the fleet's "
        "embedded sink) drains the same burst, then the devices publish at the target rate, "
        "then at 60% of the control plane's drain rate.",
        "",
        "| database | devices | ceiling (bare paho) | control plane, burst | share of ceiling "
        "| offered | sustained stored | lag p50 | lag p99 | lag max | within capacity: rate, "
        "lag p50 / p99 | stored once | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for f in figures:
        once = f.stored_batches == f.expected_batches
        lines.append(
            f"| {f.database} | {f.devices:,} | {f.ceiling_rate:,.0f}/s | {f.burst_rate:,.0f}/s "
            f"| {f.share:.0%} ({met(f.share >= TARGET_SHARE)}) | {f.offered_rate:,.0f}/s "
            f"for {f.seconds:.0f} s | {f.sustained_rate:,.0f}/s "
            f"({met(f.sustained_rate >= TARGET_RATE * 0.98)}) | {f.lag_p50 * 1000:.0f} ms "
            f"| {f.lag_p99 * 1000:.0f} ms ({met(f.lag_p99 < TARGET_P99_S)}) "
            f"| {f.lag_max * 1000:.0f} ms | {f.within_rate:,.0f}/s: "
            f"{f.within_p50 * 1000:.0f} / {f.within_p99 * 1000:.0f} ms "
            f"| {'yes' if once else '**no**'} "
            f"({f.stored_batches:,} batches) "
            f"| {' '.join(f'{x:.1f}' for x in f.load)} |"
        )
    lines += [
        "",
        f"Targets: {TARGET_DEVICES:,} devices, >= {TARGET_RATE:,.0f} batches/s sustained, p99 "
        f"lag < {TARGET_P99_S:.0f} s, >= {TARGET_SHARE:.0%} of the bare subscriber's rate. "
        "Lag is from the device's send time to the commit of the transaction that stored the "
        "batch; when the offered rate is above what the control plane drains, it is mostly "
        'time in the queue, so the run is repeated at 60% of the drain rate ("within '
        'capacity"). The load generator, Mosquitto, the bare subscriber and the control plane '
        "share the same CPUs; the load average is the machine's at the end of the run.",
        "",
        "What made the difference (py-spy during the burst each time). The device streams "
        "arrive on a connection of their own (`control_plane/mqtt_wire.py`): it parses every "
        "packet a socket read brings and writes all their PUBACKs at once, where paho under "
        "aiomqtt read each packet in several `recv` calls, built objects and callbacks for it "
        "and wrote one PUBACK each (that receive path and its event-loop wake-ups were half "
        "of the control plane's time; its share of the ceiling went from 22% to 43%). A "
        "metric-key check as a msgspec `Meta(pattern=...)` ran the regular expression once "
        "per key, 27 times per batch: one expression over all the keys in "
        "`Sample.__post_init__` made decoding a batch 2.7 times faster (11.6 to 4.2 us); "
        'payloads starting `{"v":1,` are decoded once instead of header then body; each '
        "ingest worker waits 10 ms for a batch to fill (fewer, larger transactions). On "
        "PostgreSQL the batches go in as one array per column (`unnest`, binary parameters: "
        "the driver had re-parsed a 900-placeholder statement and escaped every JSON text into "
        "array syntax) and the devices' latest state is one UPDATE from arrays after locking "
        "their rows in id order, instead of one UPDATE per device: 7,058/s to 14,307/s. Earlier: "
        "telemetry stored in bulk (the devices checked in one query, one multi-row `INSERT "
        "... ON CONFLICT (device_id, seq) DO NOTHING RETURNING`, each device's latest state one "
        "row of an executemany, hand-written statements), the series kept in the batch rows, "
        "decoding outside the SQLite write lock, the two workers taking turns on a Python lock "
        "instead of SQLite's sleeping busy handler. What remains is the typed decode, the SQL "
        "and the commit. The first measurement, before all this and at a load average of 9.5, "
        "was 607 batches/s (13% of a 4,794/s ceiling). The ceiling itself moves with the "
        "machine's load (14,210/s to 26,042/s between runs this day); the share is taken "
        "within one run. Beyond one process the design scales out: more control-plane "
        "replicas (or ingest workers) share the stream through the shared subscription "
        "(tests/fleet/test_fleet_shared_ingest.py), best on PostgreSQL.",
        END,
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, text_: str, begin: str = BEGIN, end: str = END) -> None:
    """Put the section in ``path``, replacing an older one and keeping every other section."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        updated = head + text_ + ("\n" + tail if tail else "")
    else:
        updated = current.rstrip("\n") + "\n\n" + text_
    path.write_text(updated, encoding="utf-8")


def _wanted(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("markexpr", "") or "")
    return os.environ.get("DIFRONTE_BENCH") == "1" or "bench" in markexpr.split()


@pytest.mark.bench
@pytest.mark.slow
def test_ingest_benchmark(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Measure, print, write BENCHMARKS.md (figures are reported, not asserted)."""
    if not _wanted(request.config):
        pytest.skip("a benchmark: run it with -m bench or DIFRONTE_BENCH=1")
    env = os.environ.get
    figures = [
        run_benchmark(
            tmp_path / db,
            devices=int(env("DIFRONTE_BENCH_DEVICES", str(TARGET_DEVICES))),
            burst=int(env("DIFRONTE_BENCH_BURST", "40000")),
            rate=float(env("DIFRONTE_BENCH_RATE", str(TARGET_RATE))),
            seconds=float(env("DIFRONTE_BENCH_SECONDS", "30")),
            db=db,
        )
        for db in env("DIFRONTE_BENCH_DB", "sqlite").split(",")
    ]
    for f in figures:
        print(json.dumps({**asdict(f), "share": f.share}))
    text_ = section(figures)
    print("\n" + text_)
    write_section(BENCHMARKS, text_)


if __name__ == "__main__":
    role, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if role == "load":
        asyncio.run(_load_main(host, port, device_ids(n), sys.stdout))
    elif role == "bare":
        _bare_main(host, port, n, sys.stdout)
    else:
        raise SystemExit(f"unknown role {role!r}")
