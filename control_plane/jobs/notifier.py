"""Publishing ``jobs/notify``: each device's pending executions, never retained.

Callers are sync code in worker threads (API routes, the periodic task, ingest handlers);
the MQTT client lives on the app's event loop, so publishing crosses over with
``run_coroutine_threadsafe``. When MQTT is off (tests, CLI) publishing is a no-op: a device
asks with ``jobs/get`` on every connect, so a lost notify only delays it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge import protocol as p

from .models import Job, JobExecution
from .states import PENDING

log = logging.getLogger(__name__)

MAX_PER_NOTIFY = 100  # the contract's limit on executions in one jobs/notify


def pending_executions(session: Session, device_id: str) -> list[p.JobExecution]:
    """The released, unfinished executions of a device, oldest first, as the contract has them."""
    rows = session.execute(
        select(JobExecution, Job)
        .join(Job, Job.id == JobExecution.job_id)
        .where(
            JobExecution.device_id == device_id,
            JobExecution.status.in_([s.value for s in PENDING]),
            JobExecution.released_at.is_not(None),
        )
        .order_by(JobExecution.released_at, JobExecution.id)
        .limit(MAX_PER_NOTIFY)
    ).all()
    return [
        p.JobExecution(
            execution_id=ex.execution_id,
            job_id=job.id,
            operation=job.operation,
            parameters=dict(job.parameters or {}),
            timeout_s=job.timeout_s,
            version=ex.version,
        )
        for ex, job in rows
    ]


def notify_message(session: Session, device_id: str) -> tuple[str, bytes]:
    """Topic and payload of the device's ``jobs/notify``."""
    msg = p.JobsNotify(ts=p.now(), executions=pending_executions(session, device_id))
    return p.topic(p.TopicKind.JOBS_NOTIFY, device_id), p.encode(msg)


class Notifier:
    """Sends ``jobs/notify`` through the app's MQTT service (``app.state.mqtt``)."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._mqtt: Callable[[], Any] = lambda: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0

    def attach(self, mqtt: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        """Use ``mqtt()`` (read at each publish: it is set in the app's lifespan) on ``loop``."""
        self._mqtt = mqtt
        self._loop = loop

    def detach(self) -> None:
        """Stop publishing (app shutdown)."""
        self._mqtt = lambda: None
        self._loop = None

    def _ready(self) -> tuple[Any, asyncio.AbstractEventLoop] | None:
        mqtt, loop = self._mqtt(), self._loop
        if mqtt is None or loop is None or loop.is_closed():
            return None
        return mqtt, loop

    async def _publish_all(self, mqtt: Any, messages: list[tuple[str, bytes]]) -> None:
        results = await asyncio.gather(
            *(mqtt.publish(topic, payload, retain=False) for topic, payload in messages),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        self.sent += len(results) - len(failed)
        if failed:
            # The device asks again with jobs/get when it reconnects; say it once, not 50x.
            log.warning(
                "%d of %d jobs/notify not published: %s", len(failed), len(results), failed[0]
            )

    def publish_sync(self, device_ids: Iterable[str], timeout: float = 15.0) -> int:
        """From a worker thread: build and publish each device's notify; wait for the acks."""
        ids = sorted(set(device_ids))
        ready = self._ready()
        if not ids or ready is None:
            return 0
        mqtt, loop = ready
        with self._factory() as session:
            messages = [notify_message(session, device_id) for device_id in ids]
        future = asyncio.run_coroutine_threadsafe(self._publish_all(mqtt, messages), loop)
        if _on_loop_thread(loop):
            return len(messages)  # never block the loop on itself
        try:
            future.result(timeout)
        except Exception as exc:
            log.warning("jobs/notify not published now (%s); devices ask on reconnect", exc)
            return 0
        return len(messages)

    def publish_later(self, messages: list[tuple[str, bytes]]) -> Future[None] | None:
        """Publish prepared messages without waiting (from inside a transaction)."""
        ready = self._ready()
        if not messages or ready is None:
            return None
        mqtt, loop = ready
        return asyncio.run_coroutine_threadsafe(self._publish_all(mqtt, messages), loop)


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
