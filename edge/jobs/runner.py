"""The device's job runner: each execution id handled exactly once, one at a time.

``jobs/notify`` (pushed, and the answer to the ``jobs/get`` sent on every connect) lists the
device's pending executions. The runner queues those it has never seen, writes each one
down as started before running it (so a restart can never run it twice), enforces its
timeout, and reports IN_PROGRESS, progress and the outcome as ``JobUpdate`` messages through
the outbox (never dropped, replayed in order). An unknown operation or invalid parameters is
REJECTED with the reason; a cancel from the control plane stops operations that allow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from edge import protocol as p
from edge.protocol.messages import JobStatus

from .journal import ExecutionJournal
from .operations import (
    AwaitRestart,
    ExecutionContext,
    JobEnv,
    JobFailed,
    JobRejected,
    Operation,
    decode_params,
)

log = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 1000
MAX_DETAILS = 20

Publish = Callable[[p.JobUpdate], None]


def _details(details: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in list(details.items())[:MAX_DETAILS]:
        out[str(key)[:64]] = str(value)[:MAX_DETAIL_CHARS]
    return out


class JobRunner:
    """Runs the executions the control plane sends, reporting through ``publish``."""

    def __init__(
        self,
        *,
        journal_path: Path,
        operations: Mapping[str, Operation],
        env: JobEnv,
        publish: Publish,
        next_seq: Callable[[], int],
        on_busy: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = ExecutionJournal(journal_path, clock=clock)
        self.operations = dict(operations)
        self.env = env
        self._publish = publish
        self._next_seq = next_seq
        self._on_busy = on_busy
        self._clock = clock
        self._queue: asyncio.Queue[p.JobExecution] = asyncio.Queue()
        self._queued: set[str] = set()
        self._current: p.JobExecution | None = None
        self._current_task: asyncio.Task[None] | None = None
        self._canceled: set[str] = set()
        self._prepared = False
        self.idle = asyncio.Event()
        self.idle.set()

    # -- input ---------------------------------------------------------------------------

    async def on_notify(self, payload: bytes) -> None:
        """A ``jobs/notify`` arrived: queue what is new, stop what was canceled."""
        try:
            notify = p.decode(payload, p.JobsNotify)
        except p.ProtocolError as exc:
            log.warning("jobs/notify refused: %s", exc)
            return
        self.accept(notify.executions)

    def accept(self, executions: list[p.JobExecution]) -> int:
        """Queue the executions never seen before; returns how many were queued."""
        listed = {e.execution_id for e in executions}
        current = self._current
        if (
            current is not None
            and current.execution_id not in listed
            and self._current_task is not None
            and (op := self.operations.get(current.operation)) is not None
            and op.cancellable
        ):
            # The full pending list no longer has it: the control plane canceled it.
            log.info("execution %s canceled by the control plane", current.execution_id)
            self._canceled.add(current.execution_id)
            self._current_task.cancel()
        queued = 0
        for execution in executions:
            eid = execution.execution_id
            if eid in self._queued or self.journal.known(eid):
                continue  # a duplicate notify, a QoS 1 redelivery, or one we already did
            self._queued.add(eid)
            self._queue.put_nowait(execution)
            self.idle.clear()
            queued += 1
        return queued

    # -- output --------------------------------------------------------------------------

    def _send(
        self,
        execution_id: str,
        status: JobStatus,
        *,
        progress: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        update = p.JobUpdate(
            ts=self._clock(),
            execution_id=execution_id,
            status=status,
            seq=self._next_seq(),
            progress=progress,
            details=_details(details or {}),
        )
        self._publish(update)

    def _finish(
        self, execution_id: str, status: JobStatus, details: Mapping[str, Any] | None = None
    ) -> None:
        # Report first, then write down: the report is in the outbox (durable) once _send
        # returns; a crash in between makes the next start report it again, which the
        # control plane ignores (the execution is already terminal there).
        self._send(
            execution_id, status, progress=100 if status == "SUCCEEDED" else None, details=details
        )
        self.journal.finish(execution_id, status)
        log.info("execution %s: %s %s", execution_id, status, dict(details or {}))

    # -- the loop ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Finish what must be finished before connecting (a half-done password rotation)."""
        if self._prepared:
            return
        self._prepared = True
        for eid, entry in self.journal.unfinished():
            op = self.operations.get(str(entry.get("execution", {}).get("operation", "")))
            if op is not None and op.resume_before_connect:
                await self._resume(eid, entry, op)

    async def run(self) -> None:
        """Resume what a restart interrupted, then run queued executions until cancelled."""
        await self.prepare()
        for eid, entry in self.journal.unfinished():
            op = self.operations.get(str(entry.get("execution", {}).get("operation", "")))
            await self._resume(eid, entry, op)
        while True:
            if self._queue.empty():
                self.idle.set()
            execution = await self._queue.get()
            self._queued.discard(execution.execution_id)
            if self.journal.known(execution.execution_id):
                continue
            try:
                await self._handle(execution)
            except Exception:
                # The journal could not be written (disk full...): log it and go on; the
                # control plane times the execution out rather than the agent dying.
                log.exception("handling execution %s failed", execution.execution_id)

    async def _resume(self, eid: str, entry: dict[str, Any], op: Operation | None) -> None:
        raw = entry.get("execution") or {}
        note = entry.get("note") or {}
        try:
            execution = msgspec.convert(raw, p.JobExecution)
        except msgspec.ValidationError:
            self._finish(eid, "FAILED", {"reason": "interrupted; its record was unreadable"})
            return
        if op is None or not note:
            self._finish(eid, "FAILED", {"reason": "interrupted: the agent stopped while this ran"})
            return
        ctx = self._context(execution)
        try:
            async with asyncio.timeout(execution.timeout_s):
                details = await op.resume(ctx, note)
        except JobFailed as exc:
            self._finish(eid, "FAILED", {"reason": exc.reason, **exc.details})
        except TimeoutError:
            self._finish(
                eid,
                "TIMED_OUT",
                {"reason": f"no outcome within {execution.timeout_s} s of restarting"},
            )
        except Exception as exc:
            log.exception("resuming %s failed", eid)
            self._finish(eid, "FAILED", {"reason": f"internal error while resuming: {exc!r}"})
        else:
            self._finish(eid, "SUCCEEDED", details)

    def _context(self, execution: p.JobExecution) -> ExecutionContext:
        eid = execution.execution_id

        async def progress(percent: int, **details: Any) -> None:
            self._send(eid, "IN_PROGRESS", progress=max(0, min(100, int(percent))), details=details)

        def note(value: dict[str, Any]) -> None:
            self.journal.note(eid, value)

        return ExecutionContext(execution=execution, env=self.env, progress=progress, note=note)

    async def _handle(self, execution: p.JobExecution) -> None:
        eid = execution.execution_id
        op = self.operations.get(execution.operation)
        if op is None:
            self.journal.start(eid, msgspec.to_builtins(execution))
            known = ", ".join(sorted(self.operations))
            self._finish(
                eid,
                "REJECTED",
                {
                    "reason": f"operation: unknown operation {execution.operation!r} "
                    f"(known: {known})"
                },
            )
            return
        try:
            params = decode_params(op.params, execution.parameters)
        except JobRejected as exc:
            self.journal.start(eid, msgspec.to_builtins(execution))
            self._finish(eid, "REJECTED", {"reason": exc.reason})
            return
        # Written down (fsync) before anything runs: from here on it is never run again.
        self.journal.start(eid, msgspec.to_builtins(execution))
        self._current = execution
        if self._on_busy is not None:
            self._on_busy(True)
        ctx = self._context(execution)
        self._send(eid, "IN_PROGRESS", progress=0, details={"step": "started"})
        task = asyncio.create_task(self._run_op(op, ctx, params), name=f"job-{eid}")
        self._current_task = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # We are being stopped (agent shutdown): stop the operation too, and leave the
            # entry unfinished so the next start resumes it or reports it interrupted.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise
        finally:
            self._current = None
            self._current_task = None
            if self._on_busy is not None:
                self._on_busy(False)

    async def _run_op(self, op: Operation, ctx: ExecutionContext, params: Any) -> None:
        eid = ctx.execution_id
        timeout_s = ctx.execution.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                details = await op.run(ctx, params)
        except JobFailed as exc:
            self._finish(eid, "FAILED", {"reason": exc.reason, **exc.details})
        except JobRejected as exc:
            self._finish(eid, "REJECTED", {"reason": exc.reason})
        except AwaitRestart as exc:
            entry = self.journal.get(eid) or {}
            self.journal.note(eid, entry.get("note") or {"restart": True}, awaiting_restart=True)
            self._send(
                eid, "IN_PROGRESS", progress=90, details={"step": exc.message, **exc.details}
            )
            log.info("execution %s: %s; the outcome follows the restart", eid, exc.message)
        except TimeoutError:
            self._finish(eid, "TIMED_OUT", {"reason": f"no outcome within {timeout_s} s"})
        except asyncio.CancelledError:
            if eid in self._canceled:
                self._canceled.discard(eid)
                self._finish(eid, "CANCELED", {"reason": "canceled by the control plane"})
                return
            raise
        except Exception as exc:  # an operation bug must fail the job, not the agent
            log.exception("execution %s failed unexpectedly", eid)
            self._finish(eid, "FAILED", {"reason": f"internal error: {exc!r}"})
        else:
            self._finish(eid, "SUCCEEDED", details)
