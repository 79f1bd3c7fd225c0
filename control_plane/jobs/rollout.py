"""Rollout decisions of a job: what to release, time out, retry, abort, given now and counts.

Pure (STYLE 2): :func:`plan_tick` takes a snapshot of a job's executions and the time, and
returns what the periodic task should do. The task applies the plan with conditional
UPDATEs, so when two replicas plan from the same snapshot only one of them wins each row.

Rollout rates are "per minute" in the sense of AWS IoT Jobs' ``maximumPerMinute``: at most
that many executions are *released* (notified to their device) in any sliding window of
``window_s`` seconds (60 in production; tests shrink it rather than wait).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .states import EXECUTED, TERMINAL, ExecStatus, should_retry

WINDOW_S = 60.0
FailureType = Literal["FAILED", "REJECTED", "TIMED_OUT", "ANY"]


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """At most ``max_per_minute`` releases in any window."""

    max_per_minute: int


@dataclass(frozen=True, slots=True)
class ExponentialPolicy:
    """Start at ``base_per_minute``; multiply the rate by ``factor`` for every
    ``increase_after`` executions that succeed, up to ``max_per_minute``."""

    base_per_minute: int
    factor: float
    increase_after: int
    max_per_minute: int = 1000


Rollout = RatePolicy | ExponentialPolicy | None  # None: release everything at once


@dataclass(frozen=True, slots=True)
class AbortCriterion:
    """Abort when more than ``threshold_pct`` of the executed executions failed this way,
    once at least ``min_executed`` executions have an outcome."""

    failure_type: FailureType
    threshold_pct: float
    min_executed: int


@dataclass(frozen=True, slots=True)
class JobView:
    """The parts of a job the planner needs."""

    rollout: Rollout
    abort: tuple[AbortCriterion, ...] = ()
    timeout_s: int = 600
    retries: int = 0


@dataclass(frozen=True, slots=True)
class ExecView:
    """One execution as the planner sees it; ``eligible`` False holds back its release
    (the job has a maintenance window and the device is asleep or in a call)."""

    key: int
    status: ExecStatus
    attempt: int = 0
    released_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    eligible: bool = True


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What one tick does to a job, by execution key."""

    time_out: tuple[int, ...] = ()
    retry: tuple[int, ...] = ()
    abort_reason: str | None = None
    cancel: tuple[int, ...] = ()
    release: tuple[int, ...] = ()
    complete: bool = False

    @property
    def changes(self) -> bool:
        """True when the plan moves anything."""
        return bool(
            self.time_out
            or self.retry
            or self.abort_reason
            or self.cancel
            or self.release
            or self.complete
        )


def current_rate(rollout: Rollout, succeeded: int) -> int | None:
    """Releases allowed per window now; None means unlimited."""
    if rollout is None:
        return None
    if isinstance(rollout, RatePolicy):
        return rollout.max_per_minute
    steps = succeeded // rollout.increase_after
    # Cap the exponent first: factor ** steps overflows long before it matters.
    limit = rollout.max_per_minute
    rate = float(rollout.base_per_minute)
    for _ in range(steps):
        rate *= rollout.factor
        if rate >= limit:
            return limit
    return max(1, min(limit, math.floor(rate)))


def releasable(
    rollout: Rollout,
    *,
    now: dt.datetime,
    released: Iterable[dt.datetime],
    succeeded: int,
    waiting: int,
    window_s: float = WINDOW_S,
) -> int:
    """How many of ``waiting`` executions may be released at ``now``."""
    if waiting <= 0:
        return 0
    rate = current_rate(rollout, succeeded)
    if rate is None:
        return waiting
    since = now - dt.timedelta(seconds=window_s)
    recent = sum(1 for at in released if at > since)
    return max(0, min(waiting, rate - recent))


def abort_reason(
    criteria: Sequence[AbortCriterion], counts: Mapping[ExecStatus, int]
) -> str | None:
    """Why the job must abort now, or None: the first criterion whose threshold is passed."""
    executed = sum(counts.get(s, 0) for s in EXECUTED)
    for c in criteria:
        if executed == 0 or executed < c.min_executed:
            continue
        if c.failure_type == "ANY":
            failed = sum(counts.get(s, 0) for s in EXECUTED if s is not ExecStatus.SUCCEEDED)
        else:
            failed = counts.get(ExecStatus(c.failure_type), 0)
        pct = 100.0 * failed / executed
        if pct > c.threshold_pct:
            what = "failures" if c.failure_type == "ANY" else c.failure_type
            return (
                f"{what}: {failed} of {executed} executed ({pct:.1f}%) "
                f"exceed {c.threshold_pct:g}% (after at least {c.min_executed})"
            )
    return None


def timed_out(started_at: dt.datetime | None, timeout_s: int, now: dt.datetime) -> bool:
    """True when an execution in progress since ``started_at`` has run out of time."""
    return started_at is not None and now >= started_at + dt.timedelta(seconds=timeout_s)


def plan_tick(
    job: JobView,
    executions: Sequence[ExecView],
    now: dt.datetime,
    *,
    window_s: float = WINDOW_S,
) -> TickPlan:
    """Decide one tick of an active job: timeouts, then retries, then abort, then releases."""
    status = {e.key: e.status for e in executions}
    time_out = tuple(
        e.key
        for e in executions
        if e.status is ExecStatus.IN_PROGRESS and timed_out(e.started_at, job.timeout_s, now)
    )
    for key in time_out:
        status[key] = ExecStatus.TIMED_OUT
    retry = tuple(e.key for e in executions if should_retry(status[e.key], e.attempt, job.retries))
    for key in retry:
        status[key] = ExecStatus.QUEUED
    counts = Counter(status.values())
    reason = abort_reason(job.abort, counts)
    if reason is not None:
        cancel = tuple(e.key for e in executions if status[e.key] is ExecStatus.QUEUED)
        return TickPlan(time_out=time_out, retry=retry, abort_reason=reason, cancel=cancel)
    retried = set(retry)
    waiting = [
        e
        for e in executions
        if status[e.key] is ExecStatus.QUEUED
        and (e.released_at is None or e.key in retried)
        and e.eligible
    ]
    waiting.sort(key=lambda e: e.key)
    count = releasable(
        job.rollout,
        now=now,
        released=(e.released_at for e in executions if e.released_at and e.key not in retried),
        succeeded=counts.get(ExecStatus.SUCCEEDED, 0),
        waiting=len(waiting),
        window_s=window_s,
    )
    release = tuple(e.key for e in waiting[:count])
    complete = bool(executions) and all(s in TERMINAL for s in status.values())
    return TickPlan(time_out=time_out, retry=retry, release=release, complete=complete)
