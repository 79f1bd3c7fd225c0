"""The jobs API: create (or dry-run) a job, follow it, open an execution, cancel.

Fleet managers run jobs; technicians may start the workshop's operations (diagnostics, logs,
the wake test) and cancel the jobs they started; both can read everything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from ..api.deps import FleetUser, SessionDep, require_roles
from ..db import utcnow
from ..models import Device, Role, User
from .documents import TECHNICIAN_OPERATIONS, JobCreate, JobSpecError, validate_parameters
from .models import Job, JobExecution, JobExecutionEvent
from .notifier import Notifier
from .service import (
    JobExists,
    JobStateError,
    cancel_execution,
    cancel_job,
    counts,
    create_job,
    dry_run,
    released_count,
)
from .states import DISPLAY_ORDER, PENDING, ExecStatus, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])
device_router = APIRouter(prefix="/devices", tags=["jobs"])

JobUser = Annotated[User, Depends(require_roles(Role.FLEET_MANAGER, Role.TECHNICIAN))]


class JobPublic(BaseModel):
    id: str
    description: str
    operation: str
    parameters: dict[str, Any]
    targets: dict[str, Any]
    rollout: dict[str, Any] | None
    abort: list[dict[str, Any]]
    timeout_s: int
    retries: int
    maintenance_window: bool
    status: str
    reason: str
    created_by: int | None
    created_at: dt.datetime
    completed_at: dt.datetime | None
    total: int
    released: int
    counts: dict[str, int] = Field(description="executions per status")


class JobPage(BaseModel):
    items: list[JobPublic]
    total: int
    limit: int
    offset: int


class DryRunPublic(BaseModel):
    operation: str
    parameters: dict[str, Any]
    count: int
    devices: list[str]
    offline: list[str] = Field(description="targets offline now: they pick it up on connect")


class ExecutionPublic(BaseModel):
    execution_id: str
    job_id: str
    device_id: str
    status: str
    attempt: int
    version: int
    progress: int | None
    details: dict[str, Any]
    queued_at: dt.datetime
    released_at: dt.datetime | None
    started_at: dt.datetime | None
    updated_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, ex: JobExecution) -> ExecutionPublic:
        return cls(
            execution_id=ex.execution_id,
            job_id=ex.job_id,
            device_id=ex.device_id,
            status=ex.status,
            attempt=ex.attempt,
            version=ex.version,
            progress=ex.progress,
            details=ex.details or {},
            queued_at=ex.queued_at,
            released_at=ex.released_at,
            started_at=ex.started_at,
            updated_at=ex.updated_at,
            finished_at=ex.finished_at,
        )


class ExecutionPage(BaseModel):
    items: list[ExecutionPublic]
    total: int
    limit: int
    offset: int


class ExecutionEventPublic(BaseModel):
    at: dt.datetime
    execution_id: str
    source: str
    status: str
    accepted: bool
    seq: int | None
    progress: int | None
    details: dict[str, Any]
    note: str


class ExecutionDetail(ExecutionPublic):
    operation: str
    parameters: dict[str, Any]
    timeout_s: int
    events: list[ExecutionEventPublic]


class CancelBody(BaseModel):
    force: bool = Field(default=False, description="also cancel executions in progress")
    reason: str = Field(default="", max_length=500)


def job_public(session: Session, job: Job) -> JobPublic:
    """A job with its counts per status."""
    per_status = counts(session, job.id)
    return JobPublic(
        id=job.id,
        description=job.description,
        operation=job.operation,
        parameters=job.parameters or {},
        targets=job.targets or {},
        rollout=job.rollout,
        abort=job.abort or [],
        timeout_s=job.timeout_s,
        retries=job.retries,
        maintenance_window=job.maintenance_window,
        status=job.status,
        reason=job.reason,
        created_by=job.created_by,
        created_at=job.created_at,
        completed_at=job.completed_at,
        total=sum(per_status.values()),
        released=released_count(session, job.id),
        counts=per_status,
    )


def _get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {job_id!r}")
    return job


def _get_execution(session: Session, job_id: str, execution_id: str) -> JobExecution:
    ex = session.execute(
        select(JobExecution).where(
            JobExecution.job_id == job_id, JobExecution.execution_id == execution_id
        )
    ).scalar_one_or_none()
    if ex is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no execution {execution_id!r} in job {job_id!r}"
        )
    return ex


def _check_may_run(user: User, operation: str) -> None:
    if user.role == Role.TECHNICIAN.value and operation not in TECHNICIAN_OPERATIONS:
        allowed = ", ".join(sorted(TECHNICIAN_OPERATIONS))
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"operation: a technician may start only {allowed}, not {operation}",
        )


def _check_may_cancel(user: User, job: Job) -> None:
    if user.role == Role.TECHNICIAN.value and job.created_by != user.id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "a technician may cancel only the jobs they started"
        )


def _notifier(request: Request) -> Notifier:
    notifier: Notifier = request.app.state.jobs_notifier
    return notifier


@router.post("/dry-run", response_model=DryRunPublic)
def dry_run_job(body: JobCreate, session: SessionDep, user: JobUser) -> DryRunPublic:
    """Check a job document and list the devices it would target; nothing is stored."""
    _check_may_run(user, body.operation)
    try:
        devices = dry_run(session, body)
    except JobSpecError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    offline = set(
        session.execute(
            select(Device.id).where(Device.id.in_(devices), Device.online.is_(False))
        ).scalars()
    )
    return DryRunPublic(
        operation=body.operation,
        parameters=validate_parameters(body.operation, body.parameters),
        count=len(devices),
        devices=devices,
        offline=sorted(offline),
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobPublic)
def create(body: JobCreate, request: Request, session: SessionDep, user: JobUser) -> JobPublic:
    """Create a job; the rollout releases its executions from the next tick on."""
    _check_may_run(user, body.operation)
    try:
        job = create_job(session, body, actor=user, now=utcnow())
    except JobExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except JobSpecError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    session.commit()
    return job_public(session, job)


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    _user: FleetUser,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    operation: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    """Jobs, newest first."""
    query = select(Job)
    if job_status is not None:
        query = query.where(Job.status == job_status.value)
    if operation is not None:
        query = query.where(Job.operation == operation)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    ).scalars()
    return JobPage(
        items=[job_public(session, j) for j in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, session: SessionDep, _user: FleetUser) -> JobPublic:
    """One job and its counts per execution status."""
    return job_public(session, _get_job(session, job_id))


def failing_first() -> Any:
    """ORDER BY expression putting failures first, then what moves, then the quiet ones."""
    return case(
        {s.value: rank for s, rank in DISPLAY_ORDER.items()}, value=JobExecution.status, else_=9
    )


@router.get("/{job_id}/executions", response_model=ExecutionPage)
def list_executions(
    job_id: str,
    session: SessionDep,
    _user: FleetUser,
    exec_status: Annotated[ExecStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ExecutionPage:
    """A job's executions, failing devices first."""
    _get_job(session, job_id)
    query = select(JobExecution).where(JobExecution.job_id == job_id)
    if exec_status is not None:
        query = query.where(JobExecution.status == exec_status.value)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(failing_first(), JobExecution.updated_at.desc(), JobExecution.device_id)
        .limit(limit)
        .offset(offset)
    ).scalars()
    return ExecutionPage(
        items=[ExecutionPublic.of(e) for e in rows], total=total, limit=limit, offset=offset
    )


def execution_detail(session: Session, ex: JobExecution) -> ExecutionDetail:
    """An execution with its job's document and its full history."""
    job = session.get(Job, ex.job_id)
    assert job is not None
    events = session.execute(
        select(JobExecutionEvent)
        .where(JobExecutionEvent.execution_pk == ex.id)
        .order_by(JobExecutionEvent.id)
    ).scalars()
    return ExecutionDetail(
        **ExecutionPublic.of(ex).model_dump(),
        operation=job.operation,
        parameters=job.parameters or {},
        timeout_s=job.timeout_s,
        events=[
            ExecutionEventPublic(
                at=e.at,
                execution_id=e.execution_id,
                source=e.source,
                status=e.status,
                accepted=e.accepted,
                seq=e.seq,
                progress=e.progress,
                details=e.details or {},
                note=e.note,
            )
            for e in events
        ],
    )


@router.get("/{job_id}/executions/{execution_id}", response_model=ExecutionDetail)
def get_execution(
    job_id: str, execution_id: str, session: SessionDep, _user: FleetUser
) -> ExecutionDetail:
    """One execution: status, progress, details, and every transition."""
    return execution_detail(session, _get_execution(session, job_id, execution_id))


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel(
    job_id: str, body: CancelBody, request: Request, session: SessionDep, user: JobUser
) -> JobPublic:
    """Cancel a job: queued executions at once, those in progress only with ``force``."""
    job = _get_job(session, job_id)
    _check_may_cancel(user, job)
    try:
        devices = cancel_job(
            session, job, force=body.force, actor=user, reason=body.reason, now=utcnow()
        )
    except JobStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    session.commit()
    _notifier(request).publish_sync(devices)
    return job_public(session, job)


@router.post("/{job_id}/executions/{execution_id}/cancel", response_model=ExecutionDetail)
def cancel_one(
    job_id: str,
    execution_id: str,
    body: CancelBody,
    request: Request,
    session: SessionDep,
    user: JobUser,
) -> ExecutionDetail:
    """Cancel one execution (in progress only with ``force``)."""
    job = _get_job(session, job_id)
    _check_may_cancel(user, job)
    ex = _get_execution(session, job_id, execution_id)
    released = ex.released_at is not None
    try:
        cancel_execution(session, ex, force=body.force, actor=user, now=utcnow())
    except JobStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    session.commit()
    if released:
        _notifier(request).publish_sync([ex.device_id])
    session.refresh(ex)
    return execution_detail(session, ex)


def _progress_snapshot(factory: sessionmaker[Session], job_id: str) -> dict[str, Any] | None:
    with factory() as session:
        job = session.get(Job, job_id)
        if job is None:
            return None
        summary = job_public(session, job).model_dump(mode="json")
        failing = session.execute(
            select(JobExecution.device_id, JobExecution.status, JobExecution.details)
            .where(
                JobExecution.job_id == job_id,
                JobExecution.status.in_(["FAILED", "TIMED_OUT", "REJECTED"]),
            )
            .order_by(failing_first(), JobExecution.updated_at.desc())
            .limit(20)
        ).all()
        summary["failing"] = [
            {"device_id": d, "status": s, "details": det or {}} for d, s, det in failing
        ]
        summary["pending"] = sum(summary["counts"].get(s.value, 0) for s in PENDING)
        return summary


@router.get(
    "/{job_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    job_id: str,
    request: Request,
    _user: FleetUser,
    interval_s: Annotated[float, Query(ge=0.1, le=10)] = 1.0,
    max_s: Annotated[float, Query(ge=1, le=3600)] = 600,
) -> StreamingResponse:
    """Server-sent events: the job's counts whenever they change, until nothing is pending."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    first = await asyncio.to_thread(_progress_snapshot, factory, job_id)
    if first is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {job_id!r}")

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_s
        last: str | None = None
        snapshot: dict[str, Any] | None = first
        while snapshot is not None:
            text = json.dumps(snapshot, sort_keys=True)
            if text != last:
                yield f"event: progress\ndata: {text}\n\n"
                last = text
            finished = snapshot["status"] != JobStatus.IN_PROGRESS.value
            if (finished and snapshot["pending"] == 0) or loop.time() >= deadline:
                break
            if await request.is_disconnected():
                return
            await asyncio.sleep(interval_s)
            snapshot = await asyncio.to_thread(_progress_snapshot, factory, job_id)
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@device_router.get("/{device_id}/executions", response_model=ExecutionPage)
def device_executions(
    device_id: str,
    session: SessionDep,
    _user: FleetUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ExecutionPage:
    """A device's job executions, newest first."""
    if session.get(Device, device_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device with id {device_id!r}")
    query = select(JobExecution).where(JobExecution.device_id == device_id)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(JobExecution.queued_at.desc(), JobExecution.id.desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return ExecutionPage(
        items=[ExecutionPublic.of(e) for e in rows], total=total, limit=limit, offset=offset
    )
