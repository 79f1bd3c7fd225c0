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

from .button import LedState
from .calls import CallManager
from .collectors import Collector, CollectorContext, collect_sample, default_collectors
from .commission import check_commission
from .config import EdgeConfig
from .jobs import build_runner
from .outbox import Outbox, OutboxKind, drain
from .session import OUTBOX_WINDOW, AuthRefused, MqttSession, NotConnected
from .state import StateFile, atomic_write
from .vpn import TunnelManager
from .waking import boot_id, boot_time, build_button, build_wake_service, scaled_clock

log = logging.getLogger(__name__)


class EdgeDaemon:
    """Everything one refurbished PC runs, wired together from one typed config."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        collectors: Sequence[Collector] | None = None,
        clock: Callable[[], float] = time.time,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        clock = scaled_clock(config.wake.clock_speed, clock)  # 1 (production): unchanged
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
        self._pending_samples: list[p.Sample] = []  # taken offline, not yet a full batch
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
        # Calls: signalling replies go straight to the broker (live-only, never the outbox).
        self.calls = CallManager(
            config.call,
            config.device_id,
            publish=self.session.publish,
            desired=lambda: self.desired,
            on_busy=self._call_busy,
            on_event=lambda kind, message, data: self.emit_event(kind, message, data=data),
            on_change=self._write_status,
            clock=clock,
        )
        # The WireGuard tunnel; its handshake age and counters go out with the telemetry.
        self.vpn = TunnelManager(config.vpn, state_dir / "vpn", on_state=self._report, clock=clock)
        if collectors is None:
            self._collectors.append(self.vpn.collector())
        # Waking for appointments: RTC alarm, power policy; the help button and its LED.
        self._loop: asyncio.AbstractEventLoop | None = None
        booted = boot_time(config, clock)
        self.wake = (
            build_wake_service(
                config,
                clock=clock,
                report=self._wake_report,
                emit_event=self._queue_event,
                booted=booted,
            )
            if config.wake.enabled
            else None
        )
        if self.wake is not None:
            self.boot_reason = self.wake.boot_reason  # before anything re-arms the RTC
        commissioned = check_commission(config, booted)  # commission-wake's test, if pending
        if commissioned is not None:
            self.emit_event(
                "diagnostics",
                commissioned["detail"],
                severity="info" if commissioned["ok"] else "warning",
                data=commissioned,
            )
        self._help_pending = False
        self.button = build_button(config, self._help_pressed)
        # Remote jobs: updates go through the outbox as JOB items (never dropped, in order).
        self.jobs = build_runner(
            config,
            publish=self._queue_job_update,
            next_seq=lambda: self.outbox.next_seq("jobs"),
            clock=clock,
            config_path=config_path,
            boot_time=booted,
            boot_check=commissioned,
            pause_wake=self._pause_wake,
            on_config=self._config_changed,
            on_busy=lambda busy: self.wake.set_busy(job=busy) if self.wake is not None else None,
        )
        self.jobs.env.extra["vpn"] = self.vpn  # the rotate-vpn-key operation drives the tunnel
        self.jobs.env.extra["boot_id"] = boot_id(config)  # did a reboot really happen?
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
        self._loop = asyncio.get_running_loop()
        code = 0
        await self.jobs.prepare()  # a half-done password rotation, before connecting
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = {
                    # First, so the key is loaded before the first twin/reported goes out.
                    "vpn": tg.create_task(self.vpn.run(), name="vpn"),
                    "session": tg.create_task(self._session_loop(), name="session"),
                    "telemetry": tg.create_task(self._telemetry_loop(), name="telemetry"),
                    "outbox": tg.create_task(self._outbox_loop(), name="outbox"),
                    "stop": tg.create_task(self._stop_watch(), name="stop"),
                    "calls": tg.create_task(self.calls.run(), name="calls"),
                    "jobs": tg.create_task(self.jobs.run(), name="jobs"),
                }
                if self.wake is not None:
                    self._tasks["wake"] = tg.create_task(self.wake.run(), name="wake")
        except* AuthRefused:
            code = 3
        finally:
            if self.button is not None:
                self.button.close()
            self._write_status()
            self.outbox.close()
        return code

    async def _stop_watch(self) -> None:
        await self._stop.wait()
        await self.calls.close()
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
        self._flush_samples()
        self._outbox_wake.set()
        await self._report()

    async def _on_message(self, parsed: p.ParsedTopic, payload: bytes) -> None:
        if parsed.kind is p.TopicKind.TWIN_DESIRED:
            await self._apply_desired(payload)
        elif parsed.kind is p.TopicKind.CALL_IN:
            await self.calls.handle(payload)
        elif parsed.kind is p.TopicKind.JOBS_NOTIFY:
            await self.jobs.on_notify(payload)

    def _call_busy(self, busy: bool) -> None:
        # A PC in a call must not power off at the end of its window.
        wake = getattr(self, "wake", None)
        if wake is not None:
            wake.set_busy(call=busy)
        self._write_status()

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
        self.vpn.set_desired(desired.vpn)
        if desired.schedule is not None and self.wake is not None:
            # A schedule the service refuses leaves the previous alarm armed (error event).
            await self.wake.apply_schedule(desired.schedule)
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
            vpn=self.vpn.reported(),
            config={"telemetry_interval_s": self.interval_s},
            **(self.wake.reported() if self.wake is not None else {}),
        )
        with contextlib.suppress(NotConnected):
            await self.session.publish(
                p.topic(p.TopicKind.TWIN_REPORTED, self.config.device_id),
                p.encode(reported),
                retain=True,
            )

    async def _wake_report(self, _fields: dict[str, Any]) -> None:
        await self._report()  # the wake fields are read from the service there

    # -- events and telemetry through the outbox ---------------------------------------------

    def _queue_job_update(self, update: p.JobUpdate) -> None:
        topic = p.topic(p.TopicKind.JOB_UPDATE, self.config.device_id, update.execution_id)
        self.outbox.put(OutboxKind.JOB, topic, p.encode(update))
        self._outbox_wake.set()

    async def _pause_wake(self) -> None:
        # test-wake arms its own alarm: the wake service must not re-arm the schedule's.
        task = self._tasks.pop("wake", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _config_changed(self, config: EdgeConfig) -> None:
        # set-config wrote the file; what can change without a restart changes now.
        self.interval_s = config.telemetry.interval_s
        self.batch_max = config.telemetry.batch_max
        self._interval_changed.set()

    async def _queue_event(self, event: p.Event) -> None:
        """Queue an event built elsewhere (the wake service) through the outbox."""
        self.outbox.put(
            OutboxKind.EVENT, p.topic(p.TopicKind.EVENTS, self.config.device_id), p.encode(event)
        )
        self._outbox_wake.set()

    def _help_pressed(self) -> None:
        # On gpiozero's thread. While a call rings, the big button answers it; otherwise it
        # asks for help. The outbox is thread-safe and durable: once put, the request survives
        # a power cut, so returning lets the LED confirm it.
        calls = getattr(self, "calls", None)
        if (
            calls is not None
            and self._loop is not None
            and calls.status().get("state") == "ringing"
        ):
            self._loop.call_soon_threadsafe(calls.accept)
            return
        event = p.Event(
            ts=self._clock(),
            id=uuid.uuid4().hex,
            kind="help",
            severity="urgent",
            message="help button pressed",
            data={"boot_reason": self.boot_reason},
        )
        self.outbox.put(
            OutboxKind.EVENT, p.topic(p.TopicKind.EVENTS, self.config.device_id), p.encode(event)
        )
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._outbox_wake.set)
        self._help_pending = True
        if self.wake is not None:
            self.wake.note_activity()  # someone is there: do not power off under them

    def _show_led(self) -> None:
        # Without a screen the LED says what the PC is doing: in a call, help asked for (until
        # a call comes), online, or nothing.
        button = getattr(self, "button", None)
        if button is None:
            return
        calls = getattr(self, "calls", None)
        if calls is not None and calls.status().get("state", "idle") != "idle":
            self._help_pending = False
            button.set_state(LedState.CALL)
        elif self._help_pending:
            button.set_state(LedState.HELP_SENT)
        elif self.session.connected.is_set():
            button.set_state(LedState.ONLINE)
        else:
            button.set_state(LedState.IDLE)

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

    def _flush_samples(self) -> None:
        """Queue the samples grouped while offline (on reconnect: don't wait for a full batch)."""
        if self._pending_samples:
            samples, self._pending_samples = self._pending_samples, []
            self._enqueue_batch(samples)

    async def _telemetry_loop(self) -> None:
        while True:
            ts, metrics, errors = await asyncio.to_thread(
                collect_sample, self._collectors, self._clock
            )
            self._pending_samples.append(p.Sample(ts=ts, metrics=metrics, errors=errors))
            # Every sample goes to the on-disk outbox at once, online or not: a sample held in
            # memory to fill a bigger batch would be lost to a power cut during an outage.
            # (A week offline at one sample a minute is ~10,000 small rows: well within bounds.)
            self._flush_samples()
            self._interval_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._interval_changed.wait(), self.interval_s)

    async def _outbox_loop(self) -> None:
        while True:
            await self.session.connected.wait()
            try:
                await drain(
                    self.outbox,
                    self.session.publish,
                    wake=self._outbox_wake,
                    window=OUTBOX_WINDOW,
                    abort=self.session.disconnected,
                )
            except ConnectionError as exc:
                # Unacked rows stay and are replayed in order. Disconnected: wait for the next
                # connection. A PUBACK that timed out on a live connection: try again shortly
                # (never wait for a disconnect that may not come: the queue would stall).
                if self.session.connected.is_set():
                    log.warning("outbox: %s; replaying again", exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.session.disconnected.wait(), 1.0)
            finally:
                self._write_status()

    # -- operators -------------------------------------------------------------------------

    def _outbox_figure(self, fn: Callable[[], int]) -> int | None:
        try:
            return fn()
        except Exception:  # closed at shutdown
            return None

    def _write_status(self) -> None:
        self._show_led()  # called on every change of connection and call state
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
            "call": self.calls.status() if hasattr(self, "calls") else None,
            "updated": self._clock(),
        }
        with contextlib.suppress(OSError):
            atomic_write(self.status_path, msgspec.json.encode(status))
