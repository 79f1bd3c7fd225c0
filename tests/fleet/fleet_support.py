"""Helpers of the fleet tests: certificates, a TLS broker, the real CLI, an in-process edge."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from control_plane.config import Settings
from control_plane.db import make_engine, make_sessionmaker
from control_plane.ingest import Ingest, device_subscriptions
from control_plane.models import Device, DeviceEvent, TelemetryBatchRecord
from control_plane.mqtt import MqttService
from edge import protocol as p
from edge.config import EdgeConfig, load_config
from edge.daemon import EdgeDaemon
from tests.support.broker import Mosquitto, free_port
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


# -- certificates ----------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr}")


@dataclass(frozen=True)
class CertAuthority:
    """A throw-away CA and a server certificate it signed for 127.0.0.1 / localhost."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def make_ca(directory: Path, name: str) -> CertAuthority:
    """Generate a CA (EC P-256) and a server certificate signed by it, with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key, csr, cert = (directory / f"{name}-server.{ext}" for ext in ("key", "csr", "pem"))
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "2",
        "-subj", f"/CN=DiFronte test CA {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    ext = directory / f"{name}-server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
        cwd=directory,
    )  # fmt: skip
    # Mosquitto runs as root here, but keep the key private as in production.
    os.chmod(key, 0o600)
    return CertAuthority(ca_cert, ca_key, cert, key)


# Mosquitto queues at most 1000 QoS 1 messages per subscriber by default and silently drops the
# rest: a replay storm faster than the control plane reads would lose data at the broker.
# Production needs the same setting (see the fleet notes); the tests' brokers get it here.
DEEP_QUEUES = "max_queued_messages 1000000\nmax_queued_bytes 0\n"


class DeepQueueMosquitto(Mosquitto):
    """A broker that keeps what the control plane has not read yet instead of dropping it."""

    def _write_conf(self) -> None:
        super()._write_conf()
        with self.conf.open("a") as fh:
            fh.write(DEEP_QUEUES)


class TlsMosquitto(Mosquitto):
    """A broker with the plain listener (for the control plane) and a TLS one (for devices)."""

    def __init__(self, workdir: Path, authority: CertAuthority) -> None:
        self.authority = authority
        self.tls_port = free_port()
        super().__init__(workdir)

    def _write_conf(self) -> None:
        super()._write_conf()
        a = self.authority
        with self.conf.open("a") as fh:
            fh.write(
                f"listener {self.tls_port} 127.0.0.1\n"
                f"cafile {a.ca_cert}\ncertfile {a.server_cert}\nkeyfile {a.server_key}\n"
                "tls_version tlsv1.2\n"
            )


# -- the real command line -------------------------------------------------------------------


def edge_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``difronte-edge ARGS`` as a separate process, the way a technician would."""
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def edge_status(config: Path) -> dict[str, Any]:
    """What ``difronte-edge status --json`` says."""
    done = edge_cli("status", "--config", str(config), "--json")
    if not done.stdout.strip().startswith("{"):
        return {}
    status: dict[str, Any] = json.loads(done.stdout)
    return status


# -- reading the control plane's database ----------------------------------------------------


class Db:
    """Direct reads of a control plane's database, for assertions."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.factory = make_sessionmaker(self.engine)

    def close(self) -> None:
        """Dispose of the engine."""
        self.engine.dispose()

    def seqs(self, device_id: str) -> list[int]:
        """Every stored telemetry sequence number of a device, ascending."""
        with self.factory() as s:
            return list(
                s.execute(
                    select(TelemetryBatchRecord.seq)
                    .where(TelemetryBatchRecord.device_id == device_id)
                    .order_by(TelemetryBatchRecord.seq)
                ).scalars()
            )

    def sample_times(self, device_id: str) -> list[float]:
        """The timestamps of every stored sample of a device, in sequence order."""
        with self.factory() as s:
            rows = s.execute(
                select(TelemetryBatchRecord.samples)
                .where(TelemetryBatchRecord.device_id == device_id)
                .order_by(TelemetryBatchRecord.seq)
            ).scalars()
            return [float(sample["ts"]) for samples in rows for sample in samples]

    def events(self, device_id: str) -> list[tuple[str, str, str]]:
        """(kind, severity, message) of a device's stored events."""
        with self.factory() as s:
            return [
                (e.kind, e.severity, e.message)
                for e in s.execute(
                    select(DeviceEvent).where(DeviceEvent.device_id == device_id)
                ).scalars()
            ]

    def device(self, device_id: str) -> Device | None:
        """The device row."""
        with self.factory() as s:
            return s.get(Device, device_id)


# -- an edge daemon in this process (fake clock, scripted collectors) ------------------------


class FakeClock:
    """The edge's wall clock, moved by the test (thread-safe reads of a float)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class GatedCollector:
    """Produces one sample per ticket the test hands out; each sample moves the clock on.

    The daemon's telemetry loop calls ``collect`` in a worker thread; it blocks here until the
    test allows another sample, so the test decides exactly how many samples exist.
    """

    name = "gated"

    def __init__(self, clock: FakeClock, step_s: float) -> None:
        self.clock = clock
        self.step_s = step_s
        self.taken = 0
        self._tickets = threading.Semaphore(0)
        self._open = False

    def allow(self, n: int) -> None:
        """Let ``n`` more samples be taken."""
        for _ in range(n):
            self._tickets.release()

    def open(self) -> None:
        """Stop gating (at teardown, so no worker thread stays blocked)."""
        self._open = True
        self._tickets.release()

    def collect(self) -> dict[str, float]:
        """One sample: the clock value it was taken at, as a metric."""
        self._tickets.acquire()
        if self._open:
            self._tickets.release()
        self.taken += 1
        value = {"sim.n": float(self.taken), "cpu.percent": float(self.taken % 100)}
        self.clock.now += self.step_s
        return value


class InProcessEdge:
    """An :class:`EdgeDaemon` running in a thread of its own with its own event loop."""

    def __init__(self, daemon: EdgeDaemon) -> None:
        self.daemon = daemon
        self.loop: asyncio.AbstractEventLoop | None = None
        self.exit_code: int | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def _run(self) -> None:
        async def main() -> int:
            self.loop = asyncio.get_running_loop()
            self._started.set()
            return await self.daemon.run()

        self.exit_code = asyncio.run(main())

    def start(self) -> InProcessEdge:
        """Start the daemon."""
        self._thread = threading.Thread(target=self._run, name="edge-daemon", daemon=True)
        self._thread.start()
        self._started.wait(10)
        return self

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the daemon's loop."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def stop(self, timeout: float = 20) -> int | None:
        """Ask the daemon to stop and wait for it."""
        if self._thread is None:
            return self.exit_code
        if self.loop is not None and self._thread.is_alive():
            self.call(self.daemon.request_stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("the in-process edge daemon did not stop")
        self._thread = None
        return self.exit_code


@contextmanager
def in_process_edge(
    config_path: Path, clock: FakeClock, collector: GatedCollector, **changes: Any
) -> Iterator[InProcessEdge]:
    """Run an EdgeDaemon built from ``config_path`` with a fake clock and gated collector."""
    config: EdgeConfig = load_config(config_path)
    daemon = EdgeDaemon(config, collectors=[collector], clock=clock)
    for name, value in changes.items():
        setattr(daemon, name, value)
    edge = InProcessEdge(daemon).start()
    try:
        yield edge
    finally:
        collector.open()
        edge.stop()


def wait_for_seqs(db: Db, device_id: str, expected: set[int], timeout: float = 60) -> list[int]:
    """Wait until the device's stored sequence numbers include ``expected``."""

    def stored() -> list[int]:
        seqs = db.seqs(device_id)
        missing = expected - set(seqs)
        assert not missing, (
            f"{len(seqs)} stored, {len(missing)} missing (first {sorted(missing)[:5]})"
        )
        return seqs

    return wait_until(
        stored, timeout=timeout, interval=0.2, message=f"{len(expected)} batches of {device_id}"
    )


# -- control-plane ingest workers in this process --------------------------------------------


class IngestRunner:
    """A control-plane :class:`MqttService` + :class:`Ingest` in a thread, recording arrivals.

    ``arrivals`` lists (device_id, seq) of every telemetry batch in the order the ingest
    received them from the broker (one worker, so that order is also the storage order).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        share_group: str | None = None,
        workers: int = 1,
        ingest: Ingest | None = None,
    ) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.ingest = ingest or Ingest(make_sessionmaker(self.engine))
        self.subscriptions = list(device_subscriptions(share_group))
        self.workers = workers
        self.arrivals: list[tuple[str, int]] = []
        self.handled = 0
        self.service: MqttService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def _record(self, batch: Sequence[tuple[str, bytes]]) -> None:
        for topic, payload in batch:
            try:
                parsed, message = p.decode_message(topic, payload)
            except p.ProtocolError:
                continue
            if isinstance(message, p.TelemetryBatch):
                self.arrivals.append((parsed.device_id or "", message.seq))
        self.ingest.handle_many(batch)
        self.handled += len(batch)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.service = MqttService(
                self.settings, self._record, self.subscriptions, workers=self.workers
            )
            await self.service.start()
            self._ready.set()
            await self._stop.wait()
            await self.service.stop()

        asyncio.run(main())

    @property
    def connected(self) -> bool:
        """Connected and subscribed."""
        return self.service is not None and self.service.connected.is_set()

    def start(self) -> IngestRunner:
        """Start and wait until connected."""
        self._thread = threading.Thread(target=self._run, name="ingest-runner", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        wait_until(lambda: self.connected, timeout=20, message="the ingest to connect")
        return self

    def stop(self) -> None:
        """Store what is queued, disconnect, stop the thread."""
        if self._thread is None:
            return
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._thread = None
        self.engine.dispose()
