"""The console pages of work orders and trainees' progress.

A trainee opens "My work", taps a task, logs today's hours with the skills already ticked,
and submits it when done; a lead hands out tasks and signs them off. A trainee only ever
sees their own tasks and their own progress page.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Form, Response
from sqlalchemy.orm import Session

from ..api.deps import SessionDep
from ..models import User
from ..web.i18n import N_
from ..web.pages import Page, PageError, console_router
from . import access, workorders
from .api import ConfigDep
from .errors import WorkshopError
from .models import WorkOrder
from .pages import ReaderPage, common, format_hours, labels
from .service import workshop_today
from .workorders import SKILLS, WorkStatus

router = console_router(prefix="/workshop")

# The buttons a work order page offers, by who is looking: (target status, it, en).
_BUTTONS: dict[str, tuple[str, str]] = {
    WorkStatus.IN_PROGRESS: ("Inizia / riprendi", "Start / resume"),
    WorkStatus.SUBMITTED: ("Ho finito: da verificare", "I'm done: please review"),
    WorkStatus.DONE: ("Approva: completato", "Approve: done"),
    WorkStatus.CANCELLED: ("Annulla il lavoro", "Cancel the work order"),
    WorkStatus.OPEN: ("Riapri", "Reopen"),
}


def _user(page: Page) -> User:
    user = page.user
    assert user is not None
    return user


def _order(page: Page, db: Session, order_id: int) -> WorkOrder:
    try:
        return workorders.get_work_order(db, viewer=_user(page), order_id=order_id)
    except WorkshopError as exc:
        raise PageError(
            page, 404, N_("Not found"), N_("%(reason)s"), reason=exc.message(page.lang)
        ) from exc


def _list_context(
    page: Page,
    db: Session,
    status: str,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
) -> dict[str, Any]:
    user = _user(page)
    try:
        rows, total = workorders.visible_work_orders(db, viewer=user, status=status or None)
    except WorkshopError:
        rows, total = workorders.visible_work_orders(db, viewer=user)
        status = ""
    return common(
        page,
        rows=rows,
        total=total,
        status=status,
        statuses=[s.value for s in WorkStatus],
        trainees=workorders.trainees(db) if access.is_lead(user) else [],
        skills=list(SKILLS),
        errors=errors or {},
        form=form or {},
        minutes_on=workorders.minutes_on,
    )


@router.get("/work")
def work_list(page: ReaderPage, db: SessionDep, status: str = "") -> Response:
    """Work orders: a trainee's own, or everyone's for leads and technicians."""
    return page.render("workshop/work_list.html", **_list_context(page, db, status))


@router.post("/work")
def create_work(
    page: ReaderPage,
    db: SessionDep,
    title: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=5000)] = "",
    assignee_id: Annotated[str, Form(max_length=12)] = "",
    asset_tag: Annotated[str, Form(max_length=24)] = "",
    due_on: Annotated[str, Form(max_length=10)] = "",
    skills: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Hand out a work order (leads only); mistakes are shown on the list page."""
    user = _user(page)
    form: dict[str, Any] = {
        "title": title,
        "description": description,
        "assignee_id": assignee_id,
        "asset_tag": asset_tag,
        "due_on": due_on,
        "skills": skills or [],
    }
    try:
        if not assignee_id.strip().isdigit():
            raise WorkshopError(422, "assignee_id", "choose who does it", "scegliere chi lo svolge")
        due: dt.date | None = None
        if due_on.strip():
            try:
                due = dt.date.fromisoformat(due_on.strip())
            except ValueError:
                raise WorkshopError(422, "due_on", "not a date", "data non valida") from None
        order = workorders.create_work_order(
            db,
            user=user,
            title=title,
            description=description,
            assignee_id=int(assignee_id),
            asset_tag=asset_tag.strip() or None,
            skills=skills or [],
            due_on=due,
        )
    except WorkshopError as exc:
        db.rollback()
        return page.render(
            "workshop/work_list.html",
            status_code=exc.status if exc.status in (403, 409, 422) else 422,
            **_list_context(page, db, "", errors={exc.field: exc.message(page.lang)}, form=form),
        )
    db.commit()
    page.flash(page._("Work order “%(title)s” handed out.", title=order.title))
    return page.redirect(f"/workshop/work/{order.id}")


def _order_context(
    page: Page,
    db: Session,
    order: WorkOrder,
    config_today: dt.date,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
) -> dict[str, Any]:
    user = _user(page)
    current = WorkStatus(order.status)
    moves = workorders.next_statuses(order, user)
    t = labels(page)
    buttons = [
        (s.value, t.pick(_BUTTONS[s.value]))
        for s in WorkStatus
        if s in moves and s.value in _BUTTONS
    ]
    may_log = current not in (WorkStatus.DONE, WorkStatus.CANCELLED) and (
        order.assignee_id == user.id or access.is_staff(user)
    )
    return common(
        page,
        order=order,
        assignee=db.get(User, order.assignee_id),
        supervisor=db.get(User, order.supervisor_id) if order.supervisor_id else None,
        buttons=buttons,
        may_log=may_log,
        skills=list(SKILLS),
        minutes=workorders.minutes_on(order),
        today=config_today.isoformat(),
        errors=errors or {},
        form=form or {},
    )


@router.get("/work/{order_id}")
def work_order(order_id: int, page: ReaderPage, db: SessionDep, config: ConfigDep) -> Response:
    """One work order: what to do, the hours logged, log more, move it along."""
    order = _order(page, db, order_id)
    return page.render(
        "workshop/work_order.html",
        **_order_context(page, db, order, workshop_today(config)),
    )


@router.post("/work/{order_id}/hours")
def log_hours(
    order_id: int,
    page: ReaderPage,
    db: SessionDep,
    config: ConfigDep,
    worked_on: Annotated[str, Form(max_length=10)] = "",
    hours: Annotated[str, Form(max_length=10)] = "",
    notes: Annotated[str, Form(max_length=2000)] = "",
    skills: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Log hours on the work order (skills as ticked)."""
    user = _user(page)
    order = _order(page, db, order_id)
    form: dict[str, Any] = {
        "worked_on": worked_on,
        "hours": hours,
        "notes": notes,
        "skills": skills or [],
    }
    try:
        try:
            day = dt.date.fromisoformat(worked_on.strip())
        except ValueError:
            raise WorkshopError(422, "worked_on", "give the day", "indicare il giorno") from None
        entry = workorders.log_hours(
            db,
            config,
            order=order,
            viewer=user,
            worked_on=day,
            hours=hours,
            skills=skills or [],
            notes=notes,
        )
    except WorkshopError as exc:
        db.rollback()
        order = _order(page, db, order_id)
        return page.render(
            "workshop/work_order.html",
            status_code=exc.status if exc.status in (403, 409, 422) else 422,
            **_order_context(
                page,
                db,
                order,
                workshop_today(config),
                errors={exc.field: exc.message(page.lang)},
                form=form,
            ),
        )
    db.commit()
    page.flash(page._("%(hours)s hours logged.", hours=format_hours(page, entry.minutes)))
    return page.redirect(f"/workshop/work/{order.id}")


@router.post("/work/{order_id}/status")
def change_status(
    order_id: int,
    page: ReaderPage,
    db: SessionDep,
    config: ConfigDep,
    status: Annotated[str, Form(max_length=16)] = "",
    review_notes: Annotated[str | None, Form(max_length=5000)] = None,
) -> Response:
    """Start, submit, approve, send back or cancel the work order."""
    user = _user(page)
    order = _order(page, db, order_id)
    try:
        workorders.set_status(
            db, order=order, viewer=user, status=status, review_notes=review_notes
        )
    except WorkshopError as exc:
        db.rollback()
        order = _order(page, db, order_id)
        return page.render(
            "workshop/work_order.html",
            status_code=exc.status if exc.status in (403, 409, 422) else 422,
            **_order_context(
                page,
                db,
                order,
                workshop_today(config),
                errors={exc.field: exc.message(page.lang)},
            ),
        )
    db.commit()
    page.flash(page._("Work order: %(status)s.", status=labels(page).status(order.status)))
    return page.redirect(f"/workshop/work/{order.id}")


@router.get("/me")
def my_progress(page: ReaderPage) -> Response:
    """The reader's own progress page."""
    return page.redirect(f"/workshop/trainees/{_user(page).id}")


@router.get("/trainees/{user_id}")
def trainee(user_id: int, page: ReaderPage, db: SessionDep) -> Response:
    """A trainee's work and progress: hours, skills practised, tasks."""
    try:
        progress = workorders.progress(db, viewer=_user(page), person_id=user_id)
    except WorkshopError as exc:
        raise PageError(
            page, 404, N_("Not found"), N_("%(reason)s"), reason=exc.message(page.lang)
        ) from exc
    peak = max(progress.minutes_by_skill.values(), default=0) or 1
    return page.render(
        "workshop/trainee.html",
        **common(
            page,
            progress=progress,
            skill_rows=[
                (code, minutes, round(100 * minutes / peak))
                for code, minutes in progress.minutes_by_skill.items()
            ],
        ),
    )
