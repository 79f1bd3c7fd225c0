"""The HTTP API of work orders, logged hours and a trainee's progress.

Trainees see and change only their own work orders (anything else is a 404, so they can't
even tell it exists); technicians see them all; workshop leads hand them out and sign
them off.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, Field

from ..api.deps import SessionDep, require_roles
from ..models import User
from . import access, workorders
from .api import ConfigDep, Limit, Offset, Reader
from .models import WorkLog, WorkOrder

router = APIRouter(prefix="/workshop", tags=["workshop"])

Lead = Annotated[User, Depends(require_roles(*access.LEADS))]


class WorkOrderCreate(BaseModel):
    """A task for a trainee."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    assignee_id: int = Field(ge=1)
    supervisor_id: int | None = Field(default=None, ge=1, description="default: you")
    asset_tag: str | None = Field(default=None, max_length=24)
    skills: list[str] = Field(default_factory=list, max_length=len(workorders.SKILLS))
    due_on: dt.date | None = None


class WorkOrderUpdate(BaseModel):
    """A new status, and the lead's notes when reviewing."""

    status: str = Field(max_length=16)
    review_notes: str | None = Field(default=None, max_length=5000)


class HoursCreate(BaseModel):
    """Time spent on a work order on one day."""

    worked_on: dt.date
    hours: float = Field(gt=0, le=24)
    skills: list[str] | None = Field(
        default=None, max_length=len(workorders.SKILLS), description="default: the order's"
    )
    notes: str = Field(default="", max_length=2000)
    person_id: int | None = Field(default=None, ge=1, description="leads only; default: you")


class HoursPublic(BaseModel):
    """One logged entry."""

    id: int
    work_order_id: int
    person_id: int
    worked_on: dt.date
    hours: float
    skills: list[str]
    notes: str

    @classmethod
    def of(cls, e: WorkLog) -> HoursPublic:
        """The public view of ``e``."""
        return cls(
            id=e.id,
            work_order_id=e.work_order_id,
            person_id=e.person_id,
            worked_on=e.worked_on,
            hours=e.minutes / 60,
            skills=list(e.skills or []),
            notes=e.notes,
        )


class WorkOrderPublic(BaseModel):
    """A work order with its logged hours."""

    id: int
    title: str
    description: str
    asset_tag: str | None
    assignee_id: int
    supervisor_id: int | None
    status: str
    skills: list[str]
    due_on: dt.date | None
    review_notes: str
    created_at: dt.datetime
    completed_at: dt.datetime | None
    hours_logged: float
    entries: list[HoursPublic]

    @classmethod
    def of(cls, o: WorkOrder) -> WorkOrderPublic:
        """The public view of ``o``."""
        return cls(
            id=o.id,
            title=o.title,
            description=o.description,
            asset_tag=o.machine.asset_tag if o.machine is not None else None,
            assignee_id=o.assignee_id,
            supervisor_id=o.supervisor_id,
            status=o.status,
            skills=list(o.skills or []),
            due_on=o.due_on,
            review_notes=o.review_notes,
            created_at=o.created_at,
            completed_at=o.completed_at,
            hours_logged=workorders.minutes_on(o) / 60,
            entries=[HoursPublic.of(e) for e in o.entries],
        )


class WorkOrderPage(BaseModel):
    items: list[WorkOrderPublic]
    total: int
    limit: int
    offset: int


class ProgressPublic(BaseModel):
    """A trainee's hours, skills and tasks."""

    user_id: int
    name: str
    total_hours: float
    days_worked: int
    hours_by_skill: dict[str, float]
    work_orders_by_status: dict[str, int]
    machines: list[str]
    recent: list[HoursPublic]


@router.post("/work-orders", status_code=status.HTTP_201_CREATED, response_model=WorkOrderPublic)
def create_work_order(body: WorkOrderCreate, session: SessionDep, user: Lead) -> WorkOrderPublic:
    """Hand a task to a trainee."""
    order = workorders.create_work_order(session, user=user, **body.model_dump())
    session.refresh(order)
    return WorkOrderPublic.of(order)


@router.get("/work-orders", response_model=WorkOrderPage)
def list_work_orders(
    session: SessionDep,
    user: Reader,
    assignee_id: Annotated[int | None, Query(ge=1)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> WorkOrderPage:
    """Work orders (a trainee sees only their own), newest first."""
    rows, total = workorders.visible_work_orders(
        session, viewer=user, assignee_id=assignee_id, status=status, limit=limit, offset=offset
    )
    return WorkOrderPage(
        items=[WorkOrderPublic.of(o) for o in rows], total=total, limit=limit, offset=offset
    )


@router.get("/work-orders/{order_id}", response_model=WorkOrderPublic)
def get_work_order(order_id: int, session: SessionDep, user: Reader) -> WorkOrderPublic:
    """One work order and its hours."""
    return WorkOrderPublic.of(workorders.get_work_order(session, viewer=user, order_id=order_id))


@router.patch("/work-orders/{order_id}", response_model=WorkOrderPublic)
def update_work_order(
    order_id: int, body: WorkOrderUpdate, session: SessionDep, user: Reader
) -> WorkOrderPublic:
    """Start, submit, send back, sign off or cancel a work order."""
    order = workorders.get_work_order(session, viewer=user, order_id=order_id)
    workorders.set_status(
        session, order=order, viewer=user, status=body.status, review_notes=body.review_notes
    )
    return WorkOrderPublic.of(order)


@router.post(
    "/work-orders/{order_id}/hours",
    status_code=status.HTTP_201_CREATED,
    response_model=HoursPublic,
)
def log_hours(
    order_id: int, body: HoursCreate, session: SessionDep, config: ConfigDep, user: Reader
) -> HoursPublic:
    """Log time spent on a work order."""
    order = workorders.get_work_order(session, viewer=user, order_id=order_id)
    entry = workorders.log_hours(
        session,
        config,
        order=order,
        viewer=user,
        worked_on=body.worked_on,
        hours=body.hours,
        skills=body.skills,
        notes=body.notes,
        person_id=body.person_id,
    )
    return HoursPublic.of(entry)


@router.get("/trainees/{user_id}/progress", response_model=ProgressPublic)
def trainee_progress(user_id: int, session: SessionDep, user: Reader) -> ProgressPublic:
    """What a trainee has done: hours, skills practised, tasks (a trainee: only their own)."""
    progress = workorders.progress(session, viewer=user, person_id=user_id)
    return ProgressPublic(
        user_id=progress.person.id,
        name=progress.person.name,
        total_hours=progress.total_hours,
        days_worked=progress.days_worked,
        hours_by_skill={k: v / 60 for k, v in progress.minutes_by_skill.items()},
        work_orders_by_status=progress.orders_by_status,
        machines=progress.machines,
        recent=[HoursPublic.of(e) for e in progress.recent],
    )
