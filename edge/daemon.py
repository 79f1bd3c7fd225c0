"""The edge daemon: one TaskGroup of named long-lived loops, with a uvicorn-like lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import msgspec

from edge import __version__
from edge import protocol as p
from edge.protocol.messages import EventKind, Severity

from .collectors import Collector, CollectorContext, collect_sample, default_collectors
from .config import EdgeConfig
from .outbox import Outbox, OutboxKind, drain
from .session import OUTBOX_WINDOW, AuthRefused, MqttSession, NotConnected
from .state import StateFile, atomic_write

log = logging.getLogger(__name__)


class EdgeDaemon:
    """Everything one refurbished PC runs, wired together from one typed config."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        collectors: Sequence[Collector] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._clock = clock
        state_dir = config.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state = StateFile(state_dir / "state.json")
        self.status_path = state_dir / "status.json"
        self.outbox = Outbox(
            state_dir / "outbox.db",
            max_telemetry=config.telemetry.outbox_max_telemetry,
            clock=clock,
        )
        self._outbox_wake = asyncio.Event()
        self.interval_s = config.telemetry.interval_s
        self.batch_max = config.telemetry.batch_max
        self._interval_changed = asyncio.Event()
        self.desired: p.TwinDesired | None = None
        self.boot_reason = "unknown"
        self._collectors = (
            list(collectors)
            if collectors is not None
            else default_collectors(
                CollectorContext(rtc_dir=Path(config.paths.rtc_dir), outbox_depth=self.outbox.depth)
            )
        )
        self.session = MqttSession(
            config,
            next_session=lambda: self.state.bump("session"),
            boot_reason=lambda: self.boot_reason,
            agent_version=__version__,
            on_message=self._on_message,
            on_connected=self._on_connected,
            on_state=self._write_status,
        )
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        if self.outbox.recovered:
            self.emit_event(
                "error",
                f"outbox file was damaged and set aside: {self.outbox.recovered}",
                severity="error",
            )

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the daemon to stop gracefully (first SIGTERM)."""
        self._stop.set()

    async def run(self) -> int:
        """Run until asked to stop; returns the process exit code."""
        log.info("ΔiFronte edge %s starting as %s", __version__, self.config.device_id)
        code = 0
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = {
                    "session": tg.create_task(self._session_loop(), name="session"),
                    "telemetry": tg.create_task(self._telemetry_loop(), name="telemetry"),
                    "outbox": tg.create_task(self._outbox_loop(), name="outbox"),
                    "stop": tg.create_task(self._stop_watch(), name="stop"),
                }
        except* AuthRefused:
            code = 3
        finally:
            self._write_status()
            self.outbox.close()
        return code

    async def _stop_watch(self) -> None:
        await self._stop.wait()
        await self.session.close()
        for name, task in self._tasks.items():
            if name != "stop":
                task.cancel()

    async def _session_loop(self) -> None:
        try:
            await self.session.run()
        except AuthRefused:
            self._stop.set()
            raise

    # -- messages from the control plane ----------------------------------------------------

    async def _on_connected(self) -> None:
        self._outbox_wake.set()
        await self._report()

    async def _on_message(self, parsed: p.ParsedTopic, payload: bytes) -> None:
        if parsed.kind is p.TopicKind.TWIN_DESIRED:
            await self._apply_desired(payload)

    async def _apply_desired(self, payload: bytes) -> None:
        try:
            desired = p.decode(payload, p.TwinDesired)
        except p.ProtocolError as exc:
            # Keep what we had: a bad desired state must never undo a good one.
            self.emit_event(
                "error",
                f"twin/desired refused: {exc}",
                severity="error",
                data={"field": exc.field, "reason": exc.reason},
            )
            return
        if self.desired is not None and desired.version < self.desired.version:
            log.info("ignoring older desired state v%d", desired.version)
            return
        self.desired = desired
        if desired.telemetry is not None:
            self.interval_s = float(desired.telemetry.interval_s)
            self.batch_max = desired.telemetry.batch_max
            self._interval_changed.set()
        await self._report()

    async def _report(self) -> None:
        reported = p.TwinReported(
            ts=self._clock(),
            agent_version=__version__,
            desired_version=self.desired.version if self.desired else None,
            config={"telemetry_interval_s": self.interval_s},
        )
        with contextlib.suppress(NotConnected):
            await self.session.publish(
                p.topic(p.TopicKind.TWIN_REPORTED, self.config.device_id),
                p.encode(reported),
                retain=True,
            )

    # -- events and telemetry through the outbox ---------------------------------------------

    def emit_event(
        self,
        kind: str,
        message: str = "",
        *,
        severity: str = "info",
        data: dict[str, Any] | None = None,
    ) -> str:
        """Queue an event (delivered at least once, deduplicated by its id)."""
        event_id = uuid.uuid4().hex
        event = p.Event(
            ts=self._clock(),
            id=event_id,
            kind=cast(EventKind, kind),
            severity=cast(Severity, severity),
            message=message[:1000],
            data=data or {},
        )
        self.outbox.put(
            OutboxKind.EVENT, p.topic(p.TopicKind.EVENTS, self.config.device_id), p.encode(event)
        )
        self._outbox_wake.set()
        return event_id

    def _enqueue_batch(self, samples: list[p.Sample]) -> None:
        batch = p.TelemetryBatch(
            ts=self._clock(),
            seq=self.outbox.next_seq("telemetry"),
            samples=samples,
            dropped=self.outbox.take_dropped(),
        )
        self.outbox.put(
            OutboxKind.TELEMETRY,
            p.topic(p.TopicKind.TELEMETRY, self.config.device_id),
            p.encode(batch),
        )
        self._outbox_wake.set()

    async def _telemetry_loop(self) -> None:
        pending: list[p.Sample] = []
        while True:
            ts, metrics, errors = await asyncio.to_thread(
                collect_sample, self._collectors, self._clock
            )
            pending.append(p.Sample(ts=ts, metrics=metrics, errors=errors))
            # Online: send every sample now. Offline: group samples into fuller batches so a
            # week in the outbox stays small.
            if self.session.connected.is_set() or len(pending) >= self.batch_max:
                self._enqueue_batch(pending)
                pending = []
            self._interval_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._interval_changed.wait(), self.interval_s)

    async def _outbox_loop(self) -> None:
        while True:
            await self.session.connected.wait()
            try:
                await drain(self.outbox, self.session.publish, wake=self._outbox_wake,
                            window=OUTBOX_WINDOW)
            except ConnectionError:
                # Disconnected mid-drain: unacked rows stay and are replayed in order.
                await self.session.disconnected.wait()
            finally:
                self._write_status()

    # -- operators -------------------------------------------------------------------------

    def _outbox_figure(self, fn: Callable[[], int]) -> int | None:
        try:
            return fn()
        except Exception:  # closed at shutdown
            return None

    def _write_status(self) -> None:
        status = {
            "device_id": self.config.device_id,
            "agent_version": __version__,
            "connected": self.session.connected.is_set(),
            "auth_failed": self.session.auth_failed,
            "last_error": self.session.last_error,
            "session": self.session.session,
            "outbox_depth": self._outbox_figure(self.outbox.depth),
            "outbox_dropped": self._outbox_figure(self.outbox.dropped_total),
            "desired_version": self.desired.version if self.desired else None,
            "updated": self._clock(),
        }
        with contextlib.suppress(OSError):
            atomic_write(self.status_path, msgspec.json.encode(status))
