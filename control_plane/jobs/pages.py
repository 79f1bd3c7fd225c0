"""Console pages of jobs: start one (checking its targets first), watch it roll out live
(failing devices first), open one device's execution and its history. Italian first.

Every change goes through ``service`` exactly as the API does (same checks, same audit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..api.deps import SessionDep
from ..db import utcnow
from ..models import Device, Role, User
from ..web import N_, Page, PageError, console_router, page_for_roles, register_nav
from .documents import OPERATIONS, TECHNICIAN_OPERATIONS, JobCreate, JobSpecError
from .models import Job, JobExecution, JobExecutionEvent
from .routes import failing_first
from .service import JobExists, JobStateError, cancel_job, counts, create_job, dry_run
from .states import ExecStatus, JobStatus

router = console_router(prefix="/jobs")

register_nav(
    "/jobs",
    N_("Remote jobs"),
    [Role.FLEET_MANAGER, Role.TECHNICIAN],
    description_msgid=N_(
        "Work done on the PCs from here: updates, restarts, diagnostics, a few at a time."
    ),
    order=55,
)

JobsPage = Annotated[Page, Depends(page_for_roles(Role.FLEET_MANAGER, Role.TECHNICIAN))]

OPERATION_LABELS: dict[str, str] = {
    "reboot": N_("Restart the PC"),
    "update-agent": N_("Update the ΔiFronte program"),
    "run-diagnostics": N_("Check the hardware"),
    "collect-logs": N_("Collect the logs"),
    "set-config": N_("Change settings"),
    "test-wake": N_("Test switching on by itself"),
    "rotate-credentials": N_("Give the PC a new password"),
    "rotate-vpn-key": N_("Give the PC a new remote-access key"),
}
STATUS_LABELS: dict[str, str] = {
    ExecStatus.QUEUED: N_("Waiting"),
    ExecStatus.IN_PROGRESS: N_("Working"),
    ExecStatus.SUCCEEDED: N_("Done"),
    ExecStatus.FAILED: N_("Failed"),
    ExecStatus.TIMED_OUT: N_("No answer in time"),
    ExecStatus.REJECTED: N_("Refused by the PC"),
    ExecStatus.CANCELED: N_("Canceled"),
}
JOB_STATUS_LABELS: dict[str, str] = {
    JobStatus.IN_PROGRESS: N_("In progress"),
    JobStatus.COMPLETED: N_("Completed"),
    JobStatus.CANCELED: N_("Canceled"),
    JobStatus.ABORTED: N_("Stopped: too many failures"),
}
# The order of the progress bar: outcomes first, then what is still moving.
BAR_ORDER = ("SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "IN_PROGRESS", "QUEUED", "CANCELED")

_SETTING_LINE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*=\s*(.*?)\s*$")
_ROWS = 100


@dataclass(frozen=True)
class Segment:
    """One part of the progress bar."""

    status: str
    count: int
    x: float  # percent from the left
    width: float  # percent


def bar(per_status: dict[str, int]) -> list[Segment]:
    """The progress bar's segments (empty ones left out), widths in percent."""
    total = sum(per_status.values()) or 1
    segments, x = [], 0.0
    for status in BAR_ORDER:
        count = per_status.get(status, 0)
        if count:
            width = 100.0 * count / total
            segments.append(Segment(status, count, round(x, 3), round(width, 3)))
            x += width
    return segments


def _job(page: Page, db: Session, job_id: str) -> Job:
    job = db.get(Job, job_id)
    if job is None:
        raise PageError(
            page, 404, N_("Not found"), N_("There is no job called %(job)s."), job=job_id
        )
    return job


def _operations_for(user: User | None) -> list[str]:
    if user is not None and user.role == Role.TECHNICIAN.value:
        return [op for op in OPERATIONS if op in TECHNICIAN_OPERATIONS]
    return list(OPERATIONS)


def _groups(db: Session) -> list[str]:
    rows = db.execute(select(Device.group).distinct().order_by(Device.group)).scalars()
    return [g for g in rows if g]


# --- the list ---------------------------------------------------------------------------------


def _list_context(db: Session) -> dict[str, Any]:
    jobs = db.execute(select(Job).order_by(Job.created_at.desc(), Job.id).limit(_ROWS)).scalars()
    rows = []
    for job in jobs:
        per_status = counts(db, job.id)
        rows.append({"job": job, "counts": per_status, "bar": bar(per_status)})
    return {"rows": rows, "live_src": "/jobs/_rows"}


@router.get("")
def jobs_list(page: JobsPage, db: SessionDep) -> Response:
    """Every job, newest first, each with its progress; refreshes by itself."""
    return page.render("jobs/list.html", **_list_context(db), **_labels())


@router.get("/_rows")
def jobs_rows(page: JobsPage, db: SessionDep) -> Response:
    """The live part of the job list."""
    return page.render_fragment("jobs/_rows.html", **_list_context(db), **_labels())


def _labels() -> dict[str, Any]:
    return {
        "operation_labels": OPERATION_LABELS,
        "status_labels": STATUS_LABELS,
        "job_status_labels": JOB_STATUS_LABELS,
    }


# --- a new job ----------------------------------------------------------------------------------


# Every field of the form, so the template never meets a missing one.
_EMPTY_FORM = dict.fromkeys(
    (
        "operation description url sha256 version test_devices since_hours delay_min settings "
        "devices group rate abort_pct abort_min timeout_min retries maintenance_window"
    ).split(),
    "",
)


def _form_defaults(request: Request) -> dict[str, str]:
    q = request.query_params
    return {
        **_EMPTY_FORM,
        "operation": q.get("operation", "run-diagnostics"),
        "devices": q.get("device", ""),
        "group": "",
        "rate": "",
        "abort_pct": "",
        "abort_min": "5",
        "timeout_min": "10",
        "retries": "0",
        "since_hours": "24",
        "delay_min": "2",
    }


def job_from_form(form: dict[str, str]) -> JobCreate:
    """The job document a filled-in form asks for; JobSpecError naming the field otherwise."""

    def number(name: str, low: float, high: float, *, whole: bool = True) -> float | None:
        text = form.get(name, "").strip().replace(",", ".")
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise JobSpecError(f"{name}: not a number") from None
        if (whole and value != int(value)) or not low <= value <= high:
            raise JobSpecError(f"{name}: must be between {low:g} and {high:g}")
        return value

    operation = form.get("operation", "")
    devices = [d for d in re.split(r"[\s,;]+", form.get("devices", "").strip().lower()) if d]
    targets: dict[str, Any] = {"devices": devices}
    if form.get("group"):
        targets["groups"] = [form["group"]]
    parameters: dict[str, Any] = {}
    if operation == "update-agent":
        parameters = {
            "url": form.get("url", "").strip(),
            "sha256": form.get("sha256", "").strip().lower(),
            "version": form.get("version", "").strip(),
        }
    elif operation == "run-diagnostics":
        parameters = {"test_devices": form.get("test_devices") == "on"}
    elif operation == "collect-logs":
        hours = number("since_hours", 1, 720) or 24
        parameters = {"since_s": int(hours * 3600)}
    elif operation == "test-wake":
        minutes = number("delay_min", 1, 60) or 2
        parameters = {"delay_s": int(minutes * 60)}
    elif operation == "set-config":
        settings: dict[str, Any] = {}
        for lineno, line in enumerate(form.get("settings", "").splitlines(), start=1):
            if not line.strip():
                continue
            match = _SETTING_LINE.match(line)
            if match is None:
                raise JobSpecError(f"settings: line {lineno} is not 'name = value'")
            settings[match.group(1)] = _setting_value(match.group(2))
        parameters = {"settings": settings}
    body: dict[str, Any] = {
        "operation": operation,
        "description": form.get("description", "").strip(),
        "parameters": parameters,
        "targets": targets,
        "timeout_s": int((number("timeout_min", 1, 1440) or 10) * 60),
        "retries": int(number("retries", 0, 10) or 0),
        "maintenance_window": form.get("maintenance_window") == "on",
    }
    rate = number("rate", 1, 10_000)
    if rate is not None:
        body["rollout"] = {"type": "rate", "max_per_minute": int(rate)}
    pct = number("abort_pct", 0, 100, whole=False)
    if pct is not None:
        body["abort"] = [
            {
                "failure_type": "ANY",
                "threshold_pct": pct,
                "min_executed": int(number("abort_min", 1, 10_000) or 1),
            }
        ]
    try:
        return JobCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise JobSpecError(f"{where}: {first['msg']}") from None


def _setting_value(text: str) -> str | int | float | bool:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("\"'")


def _new_context(page: Page, db: Session, form: dict[str, str], **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "form": {**_EMPTY_FORM, **form},
        "operations": _operations_for(page.user),
        "groups": _groups(db),
        "checked": None,
        "offline": set(),
        "error_field": None,
        "error_reason": None,
        **_labels(),
    }
    context.update(extra)
    return context


@router.get("/new")
def new_job(page: JobsPage, db: SessionDep, request: Request) -> Response:
    """The form for a new job."""
    return page.render("jobs/new.html", **_new_context(page, db, _form_defaults(request)))


@router.post("/new")
async def submit_job(page: JobsPage, db: SessionDep, request: Request) -> Response:
    """Check the targets (``action=check``) or start the job (``action=start``)."""
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
    return await run_in_threadpool(_submit_sync, page, db, form)


def _submit_sync(page: Page, db: Session, form: dict[str, str]) -> Response:
    user = page.user
    assert user is not None
    try:
        spec = job_from_form(form)
        if spec.operation not in _operations_for(user):
            raise JobSpecError("operation: a technician may not start this operation")
        if form.get("action") != "start":
            devices = dry_run(db, spec)
            offline = set(
                db.execute(
                    select(Device.id).where(Device.id.in_(devices), Device.online.is_(False))
                ).scalars()
            )
            return page.render(
                "jobs/new.html",
                **_new_context(page, db, form, checked=devices, offline=offline),
            )
        job = create_job(db, spec, actor=user, now=utcnow())
        db.commit()
    except (JobSpecError, JobExists) as exc:
        db.rollback()
        field, _, reason = str(exc).partition(": ")
        return page.render(
            "jobs/new.html",
            status_code=422,
            **_new_context(page, db, form, error_field=field, error_reason=reason or field),
        )
    page.flash(page._("The job has started."))
    return page.redirect(f"/jobs/{job.id}")


# --- one job ----------------------------------------------------------------------------------


def _job_context(page: Page, db: Session, job: Job) -> dict[str, Any]:
    per_status = counts(db, job.id)
    executions = db.execute(
        select(JobExecution)
        .where(JobExecution.job_id == job.id)
        .order_by(failing_first(), JobExecution.updated_at.desc(), JobExecution.device_id)
        .limit(_ROWS)
    ).scalars()
    released = db.execute(
        select(func.count()).where(
            JobExecution.job_id == job.id, JobExecution.released_at.is_not(None)
        )
    ).scalar_one()
    creator = db.get(User, job.created_by) if job.created_by is not None else None
    assert page.user is not None
    may_cancel = job.status == JobStatus.IN_PROGRESS.value and (
        page.user.role != Role.TECHNICIAN.value or job.created_by == page.user.id
    )
    return {
        "job": job,
        "counts": per_status,
        "total": sum(per_status.values()),
        "released": released,
        "bar": bar(per_status),
        "executions": list(executions),
        "creator": creator.name if creator is not None else "",
        "may_cancel": may_cancel,
        "live_src": f"/jobs/{job.id}/_progress",
        **_labels(),
    }


@router.get("/{job_id}")
def job_page(job_id: str, page: JobsPage, db: SessionDep) -> Response:
    """One job: what it does, to whom, and how far it got (live)."""
    job = _job(page, db, job_id)
    return page.render("jobs/job.html", **_job_context(page, db, job))


@router.get("/{job_id}/_progress")
def job_progress(job_id: str, page: JobsPage, db: SessionDep) -> Response:
    """The live part of the job page."""
    job = _job(page, db, job_id)
    return page.render_fragment("jobs/_progress.html", **_job_context(page, db, job))


@router.post("/{job_id}/cancel")
async def cancel(job_id: str, page: JobsPage, db: SessionDep, request: Request) -> Response:
    """Stop the job: nothing more is sent; with "force" the running ones are canceled too."""
    raw = await request.form()
    force = raw.get("force") == "on"
    return await run_in_threadpool(_cancel_sync, page, db, request, job_id, force)


def _cancel_sync(page: Page, db: Session, request: Request, job_id: str, force: bool) -> Response:
    job = _job(page, db, job_id)
    assert page.user is not None
    if page.user.role == Role.TECHNICIAN.value and job.created_by != page.user.id:
        raise PageError(page, 403, N_("No access"), N_("You can stop only the jobs you started."))
    try:
        devices = cancel_job(
            db,
            job,
            force=force,
            actor=page.user,
            reason=page._("Stopped from the console"),
            now=utcnow(),
        )
    except JobStateError:
        page.flash(page._("This job had already ended."), "error")
        return page.redirect(f"/jobs/{job_id}")
    db.commit()
    request.app.state.jobs_notifier.publish_sync(devices)
    page.flash(page._("The job has been stopped."))
    return page.redirect(f"/jobs/{job_id}")


# --- one execution ----------------------------------------------------------------------------


@router.get("/{job_id}/executions/{execution_id}")
def execution_page(job_id: str, execution_id: str, page: JobsPage, db: SessionDep) -> Response:
    """One device's execution: where it stands, what it said, every step."""
    job = _job(page, db, job_id)
    ex = db.execute(
        select(JobExecution).where(
            JobExecution.job_id == job_id, JobExecution.execution_id == execution_id
        )
    ).scalar_one_or_none()
    if ex is None:
        raise PageError(page, 404, N_("Not found"), N_("This job has no such device run."))
    events = db.execute(
        select(JobExecutionEvent)
        .where(JobExecutionEvent.execution_pk == ex.id)
        .order_by(JobExecutionEvent.id)
    ).scalars()
    return page.render("jobs/execution.html", job=job, ex=ex, events=list(events), **_labels())
