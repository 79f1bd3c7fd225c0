"""Jobs in the database: create, cancel, the periodic tick, and what devices report.

The decisions are the pure functions of ``states`` and ``rollout``; this module loads the
facts they need and writes their answers. Every write that two control-plane replicas might
race on is a conditional UPDATE (``... WHERE status = 'QUEUED' AND released_at IS NULL``):
the replica whose UPDATE touched the row owns the change and records it; the other sees
rowcount 0 and moves on. On PostgreSQL the job row is also locked for the tick, so two
replicas do not both spend the same rollout budget.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import Executable

from edge import protocol as p

from .. import audit
from ..db import transaction
from ..models import Device, User
from .documents import (
    JobCreate,
    JobSpecError,
    abort_criteria,
    rollout_policy,
    validate_parameters,
)
from .models import Job, JobExecution, JobExecutionEvent
from .notifier import Notifier, notify_message
from .rollout import WINDOW_S, ExecView, JobView, TickPlan, plan_tick
from .states import (
    PENDING,
    TERMINAL,
    ExecStatus,
    JobStatus,
    apply_device_update,
    can_cancel,
)
from .targets import resolve_targets

log = logging.getLogger(__name__)

CONTROL_PLANE = "control-plane"
MAX_DETAIL_KEYS = 50
MAX_DETAIL_CHARS = 2000


@dataclass
class JobTiming:
    """How often the periodic task runs and how long a rollout "minute" lasts.

    Production keeps the defaults; tests shrink them (as zeroconf's ``quick_timing`` does)
    instead of waiting minutes for a rollout.
    """

    tick_s: float = 1.0
    window_s: float = WINDOW_S


TIMING = JobTiming()

BusyCheck = Callable[[Session, Sequence[str]], set[str]]
_busy_checks: list[BusyCheck] = []


def register_busy_check(check: BusyCheck) -> None:
    """Let a feature (calls) say which of the given devices are busy right now (once)."""
    if check not in _busy_checks:
        _busy_checks.append(check)


def unregister_busy_check(check: BusyCheck) -> None:
    """Forget a busy check."""
    if check in _busy_checks:
        _busy_checks.remove(check)


class JobExists(ValueError):
    """A job with that id exists already."""


class JobStateError(ValueError):
    """The job or execution is not in a state that allows this."""


def rowcount(session: Session, stmt: Executable) -> int:
    """Run a conditional UPDATE/DELETE; how many rows it touched (0: someone else won)."""
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return int(cast(CursorResult[Any], result).rowcount)


def new_execution_id() -> str:
    """A fresh execution id: 32 hex digits, valid in ``jobs/{id}/update`` topics."""
    return uuid.uuid4().hex


def _job_id(now: dt.datetime) -> str:
    return f"job-{now:%Y%m%d}-{secrets.token_hex(4)}"


def _event(
    session: Session,
    ex_pk: int,
    execution_id: str,
    status: str,
    now: dt.datetime,
    *,
    source: str = CONTROL_PLANE,
    accepted: bool = True,
    seq: int | None = None,
    progress: int | None = None,
    details: Mapping[str, Any] | None = None,
    note: str = "",
) -> None:
    session.add(
        JobExecutionEvent(
            execution_pk=ex_pk,
            execution_id=execution_id,
            at=now,
            source=source,
            status=status,
            accepted=accepted,
            seq=seq,
            progress=progress,
            details=dict(details or {}),
            note=note[:2000],
        )
    )


# --- creating --------------------------------------------------------------------------


def dry_run(session: Session, spec: JobCreate) -> list[str]:
    """The device ids a job would target, after checking its document; stores nothing."""
    validate_parameters(spec.operation, spec.parameters)
    return resolve_targets(session, spec.targets)


def create_job(session: Session, spec: JobCreate, *, actor: User | None, now: dt.datetime) -> Job:
    """Store a job and one QUEUED execution per target device (released by the tick)."""
    parameters = validate_parameters(spec.operation, spec.parameters)
    devices = resolve_targets(session, spec.targets)
    job_id = spec.id or _job_id(now)
    if session.get(Job, job_id) is not None:
        raise JobExists(f"id: a job {job_id!r} exists already")
    job = Job(
        id=job_id,
        description=spec.description,
        operation=spec.operation,
        parameters=parameters,
        targets=spec.targets.model_dump(exclude_none=True),
        rollout=spec.rollout.model_dump() if spec.rollout is not None else None,
        abort=[a.model_dump() for a in spec.abort],
        timeout_s=spec.timeout_s,
        retries=spec.retries,
        maintenance_window=spec.maintenance_window,
        status=JobStatus.IN_PROGRESS.value,
        created_by=actor.id if actor is not None else None,
        created_at=now,
    )
    session.add(job)
    session.flush()
    # One multi-row INSERT: a job for the whole fleet is thousands of rows.
    session.execute(
        insert(JobExecution),
        [
            {
                "execution_id": new_execution_id(),
                "job_id": job_id,
                "device_id": device_id,
                "status": ExecStatus.QUEUED.value,
                "attempt": 0,
                "version": 1,
                "last_seq": -1,
                "details": {},
                "queued_at": now,
                "updated_at": now,
            }
            for device_id in devices
        ],
    )
    audit.record(
        session,
        action="job.create",
        object_type="job",
        object_id=job_id,
        actor=actor,
        data={"operation": spec.operation, "targets": len(devices)},
    )
    session.flush()
    return job


# --- canceling -------------------------------------------------------------------------


def _cancel_row(
    session: Session,
    ex: JobExecution,
    *,
    force: bool,
    source: str,
    note: str,
    now: dt.datetime,
) -> bool:
    current = ExecStatus(ex.status)
    if not can_cancel(current, force=force):
        return False
    done = rowcount(
        session,
        update(JobExecution)
        .where(JobExecution.id == ex.id, JobExecution.status == current.value)
        .values(
            status=ExecStatus.CANCELED.value,
            version=JobExecution.version + 1,
            updated_at=now,
            finished_at=now,
        ),
    )
    if done != 1:
        return False
    _event(
        session, ex.id, ex.execution_id, ExecStatus.CANCELED.value, now, source=source, note=note
    )
    return True


def cancel_job(
    session: Session,
    job: Job,
    *,
    force: bool,
    actor: User | None,
    reason: str,
    now: dt.datetime,
) -> set[str]:
    """Cancel a job: its queued executions (and, with ``force``, those in progress).

    Returns the devices whose pending list changed, to notify after the commit.
    """
    if job.status != JobStatus.IN_PROGRESS.value:
        raise JobStateError(f"status: the job is already {job.status}")
    source = f"user:{actor.id}" if actor is not None else CONTROL_PLANE
    job.status = JobStatus.CANCELED.value
    job.reason = reason or "canceled"
    job.completed_at = now
    rows = session.execute(
        select(JobExecution)
        .where(
            JobExecution.job_id == job.id,
            JobExecution.status.in_([s.value for s in PENDING]),
        )
        .execution_options(populate_existing=True)
    ).scalars()
    notify = set()
    for ex in rows:
        was_released = ex.released_at is not None
        if _cancel_row(session, ex, force=force, source=source, note=job.reason, now=now):
            if was_released:
                notify.add(ex.device_id)
    audit.record(
        session,
        action="job.cancel",
        object_type="job",
        object_id=job.id,
        actor=actor,
        data={"force": force, "reason": job.reason},
    )
    session.flush()
    return notify


def cancel_execution(
    session: Session,
    ex: JobExecution,
    *,
    force: bool,
    actor: User | None,
    now: dt.datetime,
) -> bool:
    """Cancel one execution; False when its state does not allow it."""
    source = f"user:{actor.id}" if actor is not None else CONTROL_PLANE
    current = ExecStatus(ex.status)
    if current in TERMINAL:
        raise JobStateError(f"status: the execution is already {current.value}")
    if not can_cancel(current, force=force):
        raise JobStateError("force: the execution is in progress; cancel it with force")
    done = _cancel_row(session, ex, force=force, source=source, note="canceled", now=now)
    if done:
        audit.record(
            session,
            action="job.execution.cancel",
            object_type="job_execution",
            object_id=ex.execution_id,
            actor=actor,
            data={"job_id": ex.job_id, "device_id": ex.device_id, "force": force},
        )
    session.flush()
    return done


# --- the periodic tick -----------------------------------------------------------------


def _eligible(session: Session, device_ids: Sequence[str]) -> set[str]:
    """Devices inside a maintenance window: awake (online) and not in a call."""
    if not device_ids:
        return set()
    online = set(
        session.execute(
            select(Device.id).where(Device.id.in_(device_ids), Device.online.is_(True))
        ).scalars()
    )
    for check in list(_busy_checks):
        try:
            online -= check(session, sorted(online))
        except Exception:  # a broken check must not stop every rollout: hold back instead
            log.exception("busy check %r failed; holding back maintenance-window releases", check)
            return set()
    return online


def _apply_plan(
    session: Session,
    job: Job,
    rows: Mapping[int, Any],
    plan: TickPlan,
    now: dt.datetime,
) -> set[str]:
    notify: set[str] = set()

    def changed(key: int, where: Any, values: dict[str, Any]) -> bool:
        values = {**values, "version": JobExecution.version + 1, "updated_at": now}
        stmt = update(JobExecution).where(JobExecution.id == key, *where).values(**values)
        return rowcount(session, stmt) == 1

    for key in plan.time_out:
        row = rows[key]
        if changed(
            key,
            [JobExecution.status == ExecStatus.IN_PROGRESS.value],
            {"status": ExecStatus.TIMED_OUT.value, "finished_at": now},
        ):
            _event(
                session,
                key,
                row.execution_id,
                ExecStatus.TIMED_OUT.value,
                now,
                note=f"no outcome within {job.timeout_s} s of starting",
            )
            notify.add(row.device_id)
    for key in plan.retry:
        row = rows[key]
        new_id = new_execution_id()
        if changed(
            key,
            [
                JobExecution.status.in_([ExecStatus.FAILED.value, ExecStatus.TIMED_OUT.value]),
                JobExecution.attempt == row.attempt,
            ],
            {
                "status": ExecStatus.QUEUED.value,
                "execution_id": new_id,
                "attempt": row.attempt + 1,
                "released_at": None,
                "started_at": None,
                "finished_at": None,
                "progress": None,
                "last_seq": -1,
            },
        ):
            _event(
                session,
                key,
                new_id,
                ExecStatus.QUEUED.value,
                now,
                note=f"retry {row.attempt + 1} of {job.retries} (was {row.execution_id})",
            )
            notify.add(row.device_id)
    if plan.abort_reason is not None:
        job.status = JobStatus.ABORTED.value
        job.reason = plan.abort_reason
        job.completed_at = now
        log.warning("job %s aborted: %s", job.id, plan.abort_reason)
    for key in plan.cancel:
        row = rows[key]
        if changed(
            key,
            [JobExecution.status == ExecStatus.QUEUED.value],
            {"status": ExecStatus.CANCELED.value, "finished_at": now},
        ):
            _event(
                session,
                key,
                row.execution_id,
                ExecStatus.CANCELED.value,
                now,
                note=f"job aborted: {plan.abort_reason}",
            )
            if row.released_at is not None:
                notify.add(row.device_id)
    for key in plan.release:
        row = rows[key]
        # The retry above changed the id and cleared released_at; read what is stored now.
        if changed(
            key,
            [
                JobExecution.status == ExecStatus.QUEUED.value,
                JobExecution.released_at.is_(None),
            ],
            {"released_at": now},
        ):
            execution_id = session.execute(
                select(JobExecution.execution_id).where(JobExecution.id == key)
            ).scalar_one()
            _event(session, key, execution_id, ExecStatus.QUEUED.value, now, note="released")
            notify.add(row.device_id)
    if plan.complete and job.status == JobStatus.IN_PROGRESS.value:
        job.status = JobStatus.COMPLETED.value
        job.completed_at = now
    return notify


def _tick_job(session: Session, job_id: str, now: dt.datetime, window_s: float) -> set[str]:
    job = session.execute(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if job is None:
        return set()
    rows = {
        r.id: r
        for r in session.execute(
            select(
                JobExecution.id,
                JobExecution.execution_id,
                JobExecution.device_id,
                JobExecution.status,
                JobExecution.attempt,
                JobExecution.released_at,
                JobExecution.started_at,
            ).where(JobExecution.job_id == job_id)
        )
    }
    active = job.status == JobStatus.IN_PROGRESS.value
    eligible: set[str] | None = None
    if active and job.maintenance_window:
        waiting = [
            r.device_id
            for r in rows.values()
            if r.status == ExecStatus.QUEUED.value and r.released_at is None
        ]
        eligible = _eligible(session, waiting)
    view = JobView(
        rollout=rollout_policy(job.rollout),
        abort=abort_criteria(job.abort or []),
        timeout_s=job.timeout_s,
        retries=job.retries,
    )
    execs = [
        ExecView(
            key=r.id,
            status=ExecStatus(r.status),
            attempt=r.attempt,
            released_at=r.released_at,
            started_at=r.started_at,
            eligible=eligible is None or r.device_id in eligible,
        )
        for r in rows.values()
    ]
    plan = plan_tick(view, execs, now, window_s=window_s)
    if not active:
        # A canceled or aborted job may still have executions in progress (canceled
        # without force): they can still time out, nothing else moves.
        plan = TickPlan(time_out=plan.time_out)
    if not plan.changes:
        return set()
    return _apply_plan(session, job, rows, plan, now)


def run_tick(
    factory: sessionmaker[Session], now: dt.datetime, *, window_s: float | None = None
) -> set[str]:
    """One tick over every job that may move; returns the devices to notify."""
    window = TIMING.window_s if window_s is None else window_s
    with factory() as session:
        job_ids = set(
            session.execute(
                select(Job.id).where(Job.status == JobStatus.IN_PROGRESS.value)
            ).scalars()
        )
        job_ids |= set(
            session.execute(
                select(JobExecution.job_id)
                .where(JobExecution.status == ExecStatus.IN_PROGRESS.value)
                .distinct()
            ).scalars()
        )
    notify: set[str] = set()
    for job_id in sorted(job_ids):
        # One transaction per job: a failure on one job leaves the others moving.
        try:
            with transaction(factory) as session:
                notify |= _tick_job(session, job_id, now, window)
        except Exception:
            log.exception("jobs tick failed for %s", job_id)
    return notify


def periodic_task(notifier: Notifier) -> Callable[[sessionmaker[Session], dt.datetime], None]:
    """The ``ctx.periodic`` function: tick, then notify the devices whose list changed."""

    def _task(factory: sessionmaker[Session], now: dt.datetime) -> None:
        devices = run_tick(factory, now)
        if devices:
            notifier.publish_sync(devices)

    return _task


# --- what devices send -----------------------------------------------------------------


def _merge_details(old: Mapping[str, Any], new: Mapping[str, str]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        if key in merged or len(merged) < MAX_DETAIL_KEYS:
            merged[str(key)[:100]] = str(value)[:MAX_DETAIL_CHARS]
    return merged


def handle_job_update(
    session: Session, device: Device, parsed: p.ParsedTopic, msg: Any, now: dt.datetime
) -> None:
    """Ingest handler for ``jobs/{execution}/update``: move the execution if the update may."""
    if not isinstance(msg, p.JobUpdate):
        return
    # Two ingest workers may carry two updates of one execution at once: the conditional
    # UPDATE lets one win; the other decides again from what the winner stored.
    for _ in range(_UPDATE_ATTEMPTS):
        if _apply_update(session, device, msg, now):
            return
    log.warning(
        "update %d of %s not applied: the execution kept changing", msg.seq, msg.execution_id
    )


_UPDATE_ATTEMPTS = 5


def _apply_update(session: Session, device: Device, msg: p.JobUpdate, now: dt.datetime) -> bool:
    """Apply or refuse one update; False when another writer changed the row meanwhile."""
    ex = session.execute(
        select(JobExecution)
        .where(JobExecution.execution_id == msg.execution_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if ex is None:
        # A late update of an attempt that was retried under a new id, or a stray: logged,
        # not stored (there is no execution to hang it on).
        log.info("update for unknown execution %s from %s ignored", msg.execution_id, device.id)
        return True
    if ex.device_id != device.id:
        log.warning(
            "device %s sent an update for %s, an execution of %s: ignored",
            device.id,
            msg.execution_id,
            ex.device_id,
        )
        return True
    current = ExecStatus(ex.status)
    decision = apply_device_update(current, ex.last_seq, msg.status, msg.seq)
    if not decision.accepted:
        if msg.seq > ex.last_seq:  # a real refusal, not a QoS 1 duplicate: keep it visible
            _event(
                session,
                ex.id,
                ex.execution_id,
                msg.status,
                now,
                source="device",
                accepted=False,
                seq=msg.seq,
                progress=msg.progress,
                details=msg.details,
                note=decision.reason,
            )
        return True
    values: dict[str, Any] = {
        "status": decision.status.value,
        "last_seq": msg.seq,
        "updated_at": now,
        "details": _merge_details(ex.details or {}, msg.details),
    }
    if msg.progress is not None:
        values["progress"] = msg.progress
    if decision.status is ExecStatus.SUCCEEDED:
        values["progress"] = 100
    if ex.started_at is None:
        values["started_at"] = now
    if decision.finished:
        values["finished_at"] = now
    done = rowcount(
        session,
        update(JobExecution)
        .where(
            JobExecution.id == ex.id,
            JobExecution.status == current.value,
            JobExecution.last_seq == ex.last_seq,
        )
        .values(**values),
    )
    if done != 1:
        return False
    _event(
        session,
        ex.id,
        ex.execution_id,
        decision.status.value,
        now,
        source="device",
        seq=msg.seq,
        progress=values.get("progress"),
        details=msg.details,
    )
    return True


def jobs_get_handler(notifier: Notifier) -> Callable[..., None]:
    """Ingest handler for ``jobs/get``: answer with the device's pending executions."""

    def _handle(
        session: Session, device: Device, parsed: p.ParsedTopic, msg: Any, now: dt.datetime
    ) -> None:
        notifier.publish_later([notify_message(session, device.id)])

    return _handle


# --- reading ---------------------------------------------------------------------------


def counts(session: Session, job_id: str) -> dict[str, int]:
    """Executions per status (every status present, zeros included)."""
    found = dict(
        session.execute(
            select(JobExecution.status, func.count())
            .where(JobExecution.job_id == job_id)
            .group_by(JobExecution.status)
        ).all()
    )
    return {s.value: int(found.get(s.value, 0)) for s in ExecStatus}


def released_count(session: Session, job_id: str) -> int:
    """How many executions have been released to their devices."""
    return int(
        session.execute(
            select(func.count()).where(
                JobExecution.job_id == job_id, JobExecution.released_at.is_not(None)
            )
        ).scalar_one()
    )


__all__ = [
    "TIMING",
    "JobExists",
    "JobSpecError",
    "JobStateError",
    "JobTiming",
    "cancel_execution",
    "cancel_job",
    "counts",
    "create_job",
    "dry_run",
    "handle_job_update",
    "jobs_get_handler",
    "periodic_task",
    "register_busy_check",
    "released_count",
    "run_tick",
]
