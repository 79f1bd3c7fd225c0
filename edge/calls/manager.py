"""The daemon's side of calls: signalling on call/in and call/out, ringing, the media process.

No aiortc here. One call at a time: an offer for another session while busy is refused with
``busy``. The media runs in ``edge.calls.worker`` (a child process started per call), spoken
to in JSON lines. Signalling replies go straight out with ``publish`` — never through the
outbox: a late answer to a call that has ended is worse than none.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec

from edge import protocol as p
from edge.protocol.messages import CallSignalType

from .config import CallConfig
from .policy import decide, in_window

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]
Desired = Callable[[], "p.TwinDesired | None"]


class CallState(enum.StrEnum):
    """Where the current call is."""

    IDLE = "idle"
    RINGING = "ringing"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ENDING = "ending"


class Worker:
    """The media child process of one call: JSON lines in and out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls, config: CallConfig) -> Worker:
        """Start ``python -m edge.calls.worker`` with ``config``."""
        # The codecs run in a few threads; glibc would give each its own malloc arena, and
        # on a PC with little memory two arenas are plenty.
        env = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge.calls.worker",
            msgspec.json.encode(config).decode(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
            env=env,
        )
        return cls(proc)

    @property
    def pid(self) -> int:
        """The child's process id (benchmarks measure it)."""
        return self.proc.pid

    async def send(self, command: dict[str, Any]) -> None:
        """Send one command; a dead worker is noticed by the event reader, not here."""
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        stdin.write(json.dumps(command, separators=(",", ":")).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await stdin.drain()

    async def events(self) -> Any:
        """Yield events until the worker's stdout closes."""
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                yield json.loads(line)
            except ValueError:
                log.warning("call worker wrote a non-JSON line: %r", line[:200])

    async def stop(self, timeout: float = 5.0) -> None:
        """Close stdin (the worker hangs up and exits); kill it if it does not."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            log.warning("call worker %d did not exit; killing it", self.proc.pid)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


WorkerFactory = Callable[[CallConfig], Awaitable[Worker]]


class _Call:
    def __init__(self, session: str, offer: p.CallSignal) -> None:
        self.session = session
        self.offer = offer
        self.state = CallState.CONNECTING
        self.started = time.monotonic()
        self.worker: Worker | None = None
        self.reader: asyncio.Task[None] | None = None
        self.timer: asyncio.Task[None] | None = None
        self.accepted = asyncio.Event()
        self.answer_sent = False
        self.stats: dict[str, float] = {}
        self.ended = asyncio.Event()


class CallManager:
    """Takes calls for one device: policy, ringing, media process, signalling replies."""

    def __init__(
        self,
        config: CallConfig,
        device_id: str,
        *,
        publish: Publish,
        desired: Desired,
        on_busy: Callable[[bool], None] | None = None,
        on_event: Callable[[str, str, dict[str, Any]], object] | None = None,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        spawn: WorkerFactory = Worker.spawn,
    ) -> None:
        self.config = config
        self.device_id = device_id
        self._publish = publish
        self._desired = desired
        self._on_busy = on_busy or (lambda busy: None)
        self._on_event = on_event or (lambda kind, message, data: None)
        self._on_change = on_change or (lambda: None)
        self._clock = clock
        self._spawn = spawn
        self._call: _Call | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.calls_taken = 0
        self.last_stats: dict[str, float] = {}
        self.last_end_reason = ""
        self._warm: Worker | None = None
        self._warm_ready = False
        self._warm_reader: asyncio.Task[None] | None = None
        self._warming: asyncio.Lock = asyncio.Lock()

    # -- what others read ---------------------------------------------------------------------

    @property
    def state(self) -> CallState:
        """The current call's state (IDLE without one)."""
        return CallState.IDLE if self._call is None else self._call.state

    @property
    def session(self) -> str | None:
        """The current call's session id."""
        return None if self._call is None else self._call.session

    @property
    def worker_pid(self) -> int | None:
        """The media process of the current call, if running."""
        call = self._call
        return call.worker.pid if call is not None and call.worker is not None else None

    def status(self) -> dict[str, Any]:
        """For the daemon's status file."""
        return {
            "state": self.state.value,
            "session": self.session,
            "worker_pid": self.worker_pid,
            "calls": self.calls_taken,
            "last_end_reason": self.last_end_reason,
            "last_stats": self.last_stats,
            "warm": None
            if self._warm is None
            else {"pid": self._warm.pid, "ready": self._warm_ready},
        }

    # -- inputs ----------------------------------------------------------------------------

    async def handle(self, payload: bytes) -> None:
        """One ``call/in`` message from the control plane (never blocks on media)."""
        try:
            msg = p.decode(payload, p.CallSignal)
        except p.ProtocolError as exc:
            log.warning("call/in refused: %s", exc)
            return
        call = self._call
        if msg.type == "offer":
            if call is not None and call.session == msg.session:
                return  # a QoS 1 duplicate
            if call is not None or not self.config.enabled:
                reason = "busy" if call is not None else "disabled"
                await self._send(msg.session, "error", reason=reason)
                self._on_event("call", f"call refused: {reason}", {"session": msg.session})
                return
            self._start(msg)
            return
        if call is None or call.session != msg.session:
            log.info("call/in %s for unknown session %s ignored", msg.type, msg.session)
            return
        if msg.type == "candidate":
            if call.worker is not None:
                await call.worker.send({"op": "candidate", "candidate": msg.candidate})
        elif msg.type == "hangup":
            self._spawn_task(self._end(call, msg.reason or "hung up by the caller", notify=False))
        # Nothing from the network may answer a ringing call: only the person at the PC does.

    def accept(self) -> bool:
        """The person answered a ringing call (help button, a click); False if none rings."""
        call = self._call
        if call is None or call.state is not CallState.RINGING:
            return False
        call.accepted.set()
        return True

    async def run(self) -> None:
        """Keep a warm call process inside appointment windows (and none outside them)."""
        while True:
            try:
                await self.keep_warm()
            except OSError as exc:
                log.warning("cannot start a warm call process: %s", exc)
            await asyncio.sleep(self.config.prewarm_check_s)

    def _window_now(self) -> bool:
        desired = self._desired()
        schedule = desired.schedule if desired is not None else None
        return schedule is not None and in_window(self._clock(), schedule.wakes)

    async def keep_warm(self) -> None:
        """Start or stop the warm call process to match the appointment windows."""
        async with self._warming:
            wanted = self.config.enabled and self.config.prewarm and self._window_now()
            warm = self._warm
            if warm is not None and (warm.proc.returncode is not None or not wanted):
                self._drop_warm()
                await warm.stop()
                warm = None
            if wanted and warm is None and self._call is None:
                worker = await self._spawn(self.config)
                await worker.send({"op": "load"})
                self._warm = worker
                self._warm_reader = asyncio.create_task(self._await_loaded(worker))
                log.info("call process %d warming up for this appointment window", worker.pid)

    async def _await_loaded(self, worker: Worker) -> None:
        async for event in worker.events():
            if event.get("ev") == "loaded":
                self._warm_ready = True
                self._on_change()
                return

    def _drop_warm(self) -> Worker | None:
        warm, self._warm = self._warm, None
        self._warm_ready = False
        if self._warm_reader is not None:
            # Stop watching for "loaded": the call's own reader takes over its output.
            self._warm_reader.cancel()
            self._warm_reader = None
        return warm

    async def _take_worker(self) -> Worker:
        warm = self._drop_warm()
        if warm is not None and warm.proc.returncode is None:
            return warm
        return await self._spawn(self.config)

    async def close(self) -> None:
        """Hang up any call and wait for the media process (daemon shutdown)."""
        warm = self._drop_warm()
        if warm is not None:
            await warm.stop()
        if self._call is not None:
            await self._end(self._call, "the PC is shutting down", notify=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the call ---------------------------------------------------------------------------

    def _spawn_task(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, offer: p.CallSignal) -> None:
        call = _Call(offer.session, offer)
        self._call = call
        self._on_busy(True)
        self._spawn_task(self._run(call))

    async def _run(self, call: _Call) -> None:
        desired = self._desired()
        decision = decide(
            now=self._clock(),
            call=desired.call if desired is not None else None,
            schedule=desired.schedule if desired is not None else None,
            assigned=bool(call.offer.assigned),
        )
        log.info(
            "call %s from %s: %s (%s)",
            call.session,
            call.offer.caller or "?",
            decision.answer,
            decision.reason,
        )
        try:
            # Start the media process at once: loading aiortc overlaps with the ringing.
            call.worker = await self._take_worker()
            call.reader = asyncio.create_task(self._read(call), name="call-worker-events")
            limits = desired.call if desired is not None else None
            await call.worker.send(
                {
                    "op": "prepare",
                    "ice_servers": [msgspec.to_builtins(s) for s in call.offer.ice_servers or []],
                    "width": limits.width if limits else None,
                    "height": limits.height if limits else None,
                    "max_kbps": limits.max_kbps if limits else None,
                }
            )
            if decision.answer == "ring":
                self._set_state(call, CallState.RINGING)
                await self._send(call.session, "ring", reason=decision.reason)
                self._on_event(
                    "call",
                    f"ringing: {call.offer.caller or 'a caregiver'} is calling",
                    {"session": call.session},
                )
                try:
                    async with asyncio.timeout(self.config.ring_timeout_s):
                        await call.accepted.wait()
                except TimeoutError:
                    await self._end(
                        call, "nobody answered", notify=True, kind="error", reason_code="timeout"
                    )
                    return
            self._set_state(call, CallState.CONNECTING)
            await self._send(call.session, "accept", reason=decision.answer)
            assert call.offer.sdp is not None
            await call.worker.send({"op": "offer", "sdp": call.offer.sdp})
        except OSError as exc:
            log.error("cannot start the call's media process: %s", exc)
            await self._end(
                call, f"media process: {exc}", notify=True, kind="error", reason_code="media"
            )

    async def _read(self, call: _Call) -> None:
        assert call.worker is not None
        silence = self.config.worker_silence_s
        events = call.worker.events().__aiter__()
        while True:
            try:
                async with asyncio.timeout(silence if call.answer_sent else None):
                    event = await events.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                self._spawn_task(
                    self._end(call, "the media stopped", notify=True, reason_code="media")
                )
                return
            ev = event.get("ev")
            if ev == "answer":
                call.answer_sent = True
                await self._send(call.session, "answer", sdp=event["sdp"])
                log.info(
                    "call %s answered %.2fs after the offer",
                    call.session,
                    time.monotonic() - call.started,
                )
            elif ev == "stats":
                call.stats = {k: float(v) for k, v in (event.get("stats") or {}).items()}
                self.last_stats = call.stats
                if call.answer_sent:
                    await self._send(call.session, "stats", stats=call.stats)
            elif ev == "state":
                state = event.get("state")
                if state == "connected" and call.state is CallState.CONNECTING:
                    self._set_state(call, CallState.CONNECTED)
                    self.calls_taken += 1
                    self._on_event("call", "call connected", {"session": call.session})
                elif state in ("failed", "closed") and call.state is not CallState.ENDING:
                    self._spawn_task(
                        self._end(call, f"connection {state}", notify=True, reason_code="dropped")
                    )
            elif ev == "error":
                message = str(event.get("message") or "")
                self._spawn_task(
                    self._end(
                        call,
                        message or "media error",
                        notify=True,
                        kind="error",
                        reason_code=str(event.get("reason")),
                    )
                )
            elif ev == "ended":
                break
            # "ready" and "loaded" need nothing: the next command follows anyway.
        if call.state is not CallState.ENDING:
            # The worker went away by itself (crash, killed): end the call cleanly.
            self._spawn_task(
                self._end(
                    call,
                    "the media process stopped",
                    notify=True,
                    kind="error",
                    reason_code="media",
                )
            )

    async def _end(
        self,
        call: _Call,
        message: str,
        *,
        notify: bool,
        kind: str = "hangup",
        reason_code: str | None = None,
    ) -> None:
        if call.state is CallState.ENDING:
            await call.ended.wait()
            return
        self._set_state(call, CallState.ENDING)
        try:
            if call.worker is not None:
                await call.worker.send({"op": "stop", "reason": message})
                reader = call.reader
                if reader is not None and reader is not asyncio.current_task():
                    # Let the final stats through before the process goes.
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(asyncio.shield(reader), 3.0)
                await call.worker.stop()
            if call.stats:
                await self._send(call.session, "stats", stats=call.stats)
            if notify:
                text = f"{reason_code}: {message}" if reason_code else message
                await self._send(call.session, kind, reason=text[:500])
        finally:
            if call.reader is not None and call.reader is not asyncio.current_task():
                call.reader.cancel()
            if self._call is call:
                self._call = None
            self.last_end_reason = message
            self._on_busy(False)
            self._on_change()
            self._on_event("call", f"call ended: {message}", {"session": call.session})
            call.ended.set()
            if self._window_now():
                # Another caregiver may call within the same appointment.
                self._spawn_task(self.keep_warm())
            log.info("call %s ended: %s", call.session, message)

    def _set_state(self, call: _Call, state: CallState) -> None:
        call.state = state
        self._on_change()

    async def _send(self, session: str, kind: str, **fields: Any) -> None:
        msg = p.CallSignal(
            ts=self._clock(), session=session, type=cast(CallSignalType, kind), **fields
        )
        try:
            await self._publish(p.topic(p.TopicKind.CALL_OUT, self.device_id), p.encode(msg))
        except ConnectionError as exc:
            # Signalling is live-only: nothing is queued for later.
            log.warning("call/out %s not sent (%s)", kind, exc)
