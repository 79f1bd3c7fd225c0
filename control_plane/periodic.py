"""Periodic work of the control plane (alert rules, schedule horizons, job timeouts).

Each task is a plain function ``fn(factory, now)`` run in a worker thread every ``interval``
seconds; an exception is logged and the loop goes on. Several replicas may run the same
tasks: each task must be idempotent (alerts open once per key, rows are claimed in SQL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from .db import utcnow

log = logging.getLogger(__name__)

Task = Callable[[sessionmaker[Session], dt.datetime], None]


@dataclass
class _Entry:
    name: str
    interval: float
    fn: Task


async def run_in_thread_to_completion(fn: Callable[..., object], *args: object) -> None:
    """Run ``fn`` in a worker thread; if cancelled meanwhile, wait for it before re-raising.

    A thread can't be interrupted: returning early would let shutdown dispose the database
    engine under a transaction still running in it.
    """
    inner = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        await asyncio.shield(inner)
    except asyncio.CancelledError:
        await asyncio.wait([inner])
        raise


class PeriodicRunner:
    """Runs registered tasks on their intervals between ``start`` and ``stop``."""

    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], dt.datetime] = utcnow):
        self._factory = factory
        self._clock = clock
        self._entries: list[_Entry] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, name: str, interval: float, fn: Task) -> None:
        """Register ``fn`` to run every ``interval`` seconds."""
        self._entries.append(_Entry(name, interval, fn))

    def run_once(self, name: str | None = None) -> None:
        """Run every task (or the one named) now, in this thread: for tests and CLIs."""
        for entry in self._entries:
            if name is None or entry.name == name:
                entry.fn(self._factory, self._clock())

    async def start(self) -> None:
        """Start one loop per task."""
        for entry in self._entries:
            self._tasks.append(
                asyncio.create_task(self._loop(entry), name=f"periodic-{entry.name}")
            )

    async def stop(self) -> None:
        """Cancel the loops and wait for them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, entry: _Entry) -> None:
        failing = False
        while True:
            try:
                await run_in_thread_to_completion(entry.fn, self._factory, self._clock())
                failing = False
            except Exception:
                if not failing:  # log a repeating failure once
                    log.exception("periodic task %s failed", entry.name)
                failing = True
            await asyncio.sleep(entry.interval)
