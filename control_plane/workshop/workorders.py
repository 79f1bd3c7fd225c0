"""Work orders: tasks for trainees, the hours they log, the skills they practise.

A lead hands a task to a trainee (on a machine, or on the workshop in general) and signs it
off; the trainee starts it, logs hours against it and submits it for review. A trainee sees
only their own work orders; the progress page adds up their hours and skills.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import audit
from ..db import utcnow
from ..models import Role, User
from . import access
from .config import WorkshopConfig
from .errors import WorkshopError, forbidden, not_found
from .models import Machine, WorkLog, WorkOrder
from .service import get_machine, workshop_today

AUDIT_WORK_ORDER = "workshop_work_order"

#: What a trainee can practise in the workshop: code → (Italian, English).
SKILLS: dict[str, tuple[str, str]] = {
    "disassembly": ("Smontaggio e pulizia", "Disassembly and cleaning"),
    "diagnostics": ("Diagnostica hardware", "Hardware diagnostics"),
    "data_erasure": ("Cancellazione sicura dei dati", "Secure data erasure"),
    "repair": ("Riparazione e sostituzione di parti", "Repair and part replacement"),
    "os_install": ("Installazione del sistema", "Operating system installation"),
    "quality_check": ("Controllo qualità", "Quality check"),
    "logistics": ("Inventario e logistica", "Inventory and logistics"),
    "customer_care": ("Consegna e assistenza", "Delivery and customer care"),
}

# A single entry longer than a working day is a typo; a day's total past 16 hours too.
MAX_ENTRY_MINUTES = 12 * 60
MAX_DAY_MINUTES = 16 * 60
# Hours are logged in quarters of an hour, the way people remember their day.
QUARTER = 15
# How far back a forgotten day may still be logged.
MAX_BACKDATE_DAYS = 90


class WorkStatus(StrEnum):
    """Where a work order stands."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"  # the trainee says it is done; the lead reviews it
    DONE = "done"
    CANCELLED = "cancelled"


#: Status names: status → (Italian, English).
STATUS_LABELS: dict[str, tuple[str, str]] = {
    WorkStatus.OPEN: ("Da iniziare", "Not started"),
    WorkStatus.IN_PROGRESS: ("In corso", "In progress"),
    WorkStatus.SUBMITTED: ("Da verificare", "Awaiting review"),
    WorkStatus.DONE: ("Completato", "Done"),
    WorkStatus.CANCELLED: ("Annullato", "Cancelled"),
}

_S = WorkStatus
_ASSIGNEE_MOVES: dict[WorkStatus, frozenset[WorkStatus]] = {
    _S.OPEN: frozenset({_S.IN_PROGRESS}),
    _S.IN_PROGRESS: frozenset({_S.SUBMITTED}),
    _S.SUBMITTED: frozenset({_S.IN_PROGRESS}),  # take it back to add something
}
_LEAD_MOVES: dict[WorkStatus, frozenset[WorkStatus]] = {
    _S.OPEN: frozenset({_S.IN_PROGRESS, _S.DONE, _S.CANCELLED}),
    _S.IN_PROGRESS: frozenset({_S.SUBMITTED, _S.DONE, _S.CANCELLED}),
    _S.SUBMITTED: frozenset({_S.IN_PROGRESS, _S.DONE, _S.CANCELLED}),  # send back, or sign off
    _S.DONE: frozenset({_S.IN_PROGRESS}),  # reopen
    _S.CANCELLED: frozenset({_S.OPEN}),
}
_CLOSED = frozenset({_S.DONE, _S.CANCELLED})


def _check_skills(skills: Sequence[str], field_name: str) -> list[str]:
    out: list[str] = []
    for index, code in enumerate(skills):
        if code not in SKILLS:
            options = ", ".join(SKILLS)
            raise WorkshopError(
                422,
                f"{field_name}[{index}]",
                f"unknown skill {code!r}; skills: {options}",
                f"competenza sconosciuta «{code}»; competenze: {options}",
            )
        if code not in out:
            out.append(code)
    return out


def _active_user(session: Session, user_id: int, field_name: str) -> User:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise WorkshopError(
            422,
            field_name,
            f"no active person with id {user_id}",
            f"nessuna persona attiva con numero {user_id}",
        )
    return user


def create_work_order(
    session: Session,
    *,
    user: User,
    title: str,
    assignee_id: int,
    description: str = "",
    asset_tag: str | None = None,
    supervisor_id: int | None = None,
    skills: Sequence[str] = (),
    due_on: dt.date | None = None,
    now: dt.datetime | None = None,
) -> WorkOrder:
    """A new task for a trainee, supervised by a lead (the creator unless named)."""
    now = now or utcnow()
    if not access.is_lead(user):
        raise forbidden(
            "assignee_id",
            "only a workshop lead hands out work orders",
            "solo il responsabile del laboratorio assegna i lavori",
        )
    if not title.strip():
        raise WorkshopError(422, "title", "say what the task is", "scrivere in cosa consiste")
    assignee = _active_user(session, assignee_id, "assignee_id")
    if assignee.role != Role.TRAINEE.value:
        raise WorkshopError(
            422,
            "assignee_id",
            f"{assignee.name or assignee.email} is not a trainee",
            f"{assignee.name or assignee.email} non è in formazione",
        )
    supervisor = (
        user if supervisor_id is None else _active_user(session, supervisor_id, "supervisor_id")
    )
    if not access.is_lead(supervisor):
        raise WorkshopError(
            422,
            "supervisor_id",
            f"{supervisor.name or supervisor.email} is not a workshop lead",
            f"{supervisor.name or supervisor.email} non è responsabile del laboratorio",
        )
    machine: Machine | None = None
    if asset_tag:
        try:
            machine = get_machine(session, asset_tag)
        except WorkshopError as exc:
            raise WorkshopError(422, "asset_tag", exc.message_en, exc.message_it) from exc
    order = WorkOrder(
        title=title.strip()[:200],
        description=description.strip(),
        machine_id=machine.id if machine is not None else None,
        assignee_id=assignee.id,
        supervisor_id=supervisor.id,
        status=WorkStatus.OPEN.value,
        skills=_check_skills(skills, "skills"),
        due_on=due_on,
        review_notes="",
        created_by=user.id,
        created_at=now,
    )
    session.add(order)
    session.flush()
    audit.record(
        session,
        action="workshop.work_order.created",
        object_type=AUDIT_WORK_ORDER,
        object_id=order.id,
        actor=user,
        data={"assignee_id": assignee.id, "title": order.title, "asset_tag": asset_tag},
    )
    return order


def visible_work_orders(
    session: Session,
    *,
    viewer: User,
    assignee_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[WorkOrder], int]:
    """The work orders ``viewer`` may see (a trainee: only their own), newest first."""
    query = select(WorkOrder)
    if not access.sees_all_work(viewer):
        query = query.where(WorkOrder.assignee_id == viewer.id)
    if assignee_id is not None:
        query = query.where(WorkOrder.assignee_id == assignee_id)
    if status:
        try:
            query = query.where(WorkOrder.status == WorkStatus(status).value)
        except ValueError:
            raise WorkshopError(
                422, "status", f"unknown status {status!r}", f"stato sconosciuto «{status}»"
            ) from None
    total = int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    rows = session.execute(
        query.order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc()).limit(limit).offset(offset)
    ).scalars()
    return list(rows), total


def get_work_order(session: Session, *, viewer: User, order_id: int) -> WorkOrder:
    """One work order, if ``viewer`` may see it; a 404 otherwise (existence is not leaked)."""
    order = session.get(WorkOrder, order_id)
    if order is None or not (access.sees_all_work(viewer) or order.assignee_id == viewer.id):
        raise not_found(
            "work_order_id",
            f"no work order {order_id}",
            f"nessun lavoro numero {order_id}",
        )
    return order


def next_statuses(order: WorkOrder, viewer: User) -> frozenset[WorkStatus]:
    """The statuses ``viewer`` may move ``order`` to (none for a stranger)."""
    current = WorkStatus(order.status)
    if access.is_lead(viewer):
        return _LEAD_MOVES.get(current, frozenset())
    if order.assignee_id == viewer.id:
        return _ASSIGNEE_MOVES.get(current, frozenset())
    return frozenset()


def set_status(
    session: Session,
    *,
    order: WorkOrder,
    viewer: User,
    status: str,
    review_notes: str | None = None,
    now: dt.datetime | None = None,
) -> WorkOrder:
    """Move a work order along (the trainee starts and submits, the lead signs off)."""
    now = now or utcnow()
    try:
        target = WorkStatus(status)
    except ValueError:
        options = ", ".join(s.value for s in WorkStatus)
        raise WorkshopError(
            422,
            "status",
            f"unknown status {status!r}; statuses: {options}",
            f"stato sconosciuto «{status}»; stati: {options}",
        ) from None
    current = WorkStatus(order.status)
    if access.is_lead(viewer):
        moves = _LEAD_MOVES
    elif order.assignee_id == viewer.id:
        moves = _ASSIGNEE_MOVES
    else:
        raise forbidden(
            "status",
            "only the trainee it is assigned to or a lead may change this work order",
            "solo chi ha ricevuto il lavoro o il responsabile può cambiarlo",
        )
    if target != current and target not in moves.get(current, frozenset()):
        allowed = ", ".join(sorted(s.value for s in moves.get(current, frozenset()))) or "—"
        raise WorkshopError(
            409,
            "status",
            f"cannot go from '{current.value}' to '{target.value}'; possible: {allowed}",
            f"non si può passare da «{current.value}» a «{target.value}»; possibili: {allowed}",
        )
    order.status = target.value
    order.completed_at = now if target is WorkStatus.DONE else None
    if review_notes is not None:
        order.review_notes = review_notes.strip()
    session.flush()
    audit.record(
        session,
        action="workshop.work_order.status",
        object_type=AUDIT_WORK_ORDER,
        object_id=order.id,
        actor=viewer,
        data={"from": current.value, "to": target.value, "review_notes": order.review_notes},
    )
    return order


def parse_hours(value: float | Decimal | str, field_name: str = "hours") -> int:
    """Hours as typed ("1,5", 2.25) into minutes; quarters of an hour, at most 12 hours."""
    try:
        hours = float(str(value).strip().replace(",", "."))
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours) or hours <= 0:
        raise WorkshopError(
            422,
            field_name,
            "must be a positive number of hours, like 1.5",
            "deve essere un numero di ore maggiore di zero, per esempio 1,5",
        )
    minutes = hours * 60
    if abs(minutes / QUARTER - round(minutes / QUARTER)) > 1e-6:
        raise WorkshopError(
            422,
            field_name,
            "log hours in quarters of an hour (0.25, 0.5, 0.75, ...)",
            "registrare le ore a quarti d'ora (0,25, 0,5, 0,75, ...)",
        )
    if minutes > MAX_ENTRY_MINUTES:
        raise WorkshopError(
            422,
            field_name,
            f"at most {MAX_ENTRY_MINUTES // 60} hours in one entry",
            f"al massimo {MAX_ENTRY_MINUTES // 60} ore per registrazione",
        )
    return round(minutes)


def log_hours(
    session: Session,
    config: WorkshopConfig,
    *,
    order: WorkOrder,
    viewer: User,
    worked_on: dt.date,
    hours: float | Decimal | str,
    skills: Sequence[str] | None = None,
    notes: str = "",
    person_id: int | None = None,
    now: dt.datetime | None = None,
) -> WorkLog:
    """Log time on a work order; a trainee logs their own, a lead may log for anyone."""
    now = now or utcnow()
    minutes = parse_hours(hours)
    if person_id is None or person_id == viewer.id:
        person = viewer
        if access.is_trainee(viewer) and order.assignee_id != viewer.id:
            raise forbidden(
                "work_order_id",
                "a trainee logs hours only on their own work orders",
                "chi è in formazione registra ore solo sui propri lavori",
            )
    elif access.is_lead(viewer):
        person = _active_user(session, person_id, "person_id")
    else:
        raise forbidden(
            "person_id",
            "only a workshop lead logs hours for someone else",
            "solo il responsabile registra ore per altre persone",
        )
    if WorkStatus(order.status) in _CLOSED:
        raise WorkshopError(
            409,
            "work_order_id",
            f"the work order is {order.status}; reopen it to log hours",
            "il lavoro è chiuso: riaprirlo per registrare ore",
        )
    today = workshop_today(config, now)
    if worked_on > today:
        raise WorkshopError(422, "worked_on", "the day is in the future", "il giorno è nel futuro")
    if (today - worked_on).days > MAX_BACKDATE_DAYS:
        raise WorkshopError(
            422,
            "worked_on",
            f"more than {MAX_BACKDATE_DAYS} days ago; ask the workshop lead",
            f"più di {MAX_BACKDATE_DAYS} giorni fa: chiedere al responsabile",
        )
    already = session.execute(
        select(func.coalesce(func.sum(WorkLog.minutes), 0)).where(
            WorkLog.person_id == person.id, WorkLog.worked_on == worked_on
        )
    ).scalar_one()
    if int(already) + minutes > MAX_DAY_MINUTES:
        raise WorkshopError(
            422,
            "hours",
            f"that makes more than {MAX_DAY_MINUTES // 60} hours on {worked_on:%d/%m/%Y}",
            f"così si superano le {MAX_DAY_MINUTES // 60} ore il {worked_on:%d/%m/%Y}",
        )
    practised = _check_skills(order.skills if skills is None else skills, "skills")
    entry = WorkLog(
        work_order_id=order.id,
        person_id=person.id,
        worked_on=worked_on,
        minutes=minutes,
        skills=practised,
        notes=notes.strip(),
        recorded_by=viewer.id,
        recorded_at=now,
    )
    session.add(entry)
    if order.status == WorkStatus.OPEN.value:
        order.status = WorkStatus.IN_PROGRESS.value  # logging time means it has started
    session.flush()
    audit.record(
        session,
        action="workshop.hours.logged",
        object_type=AUDIT_WORK_ORDER,
        object_id=order.id,
        actor=viewer,
        data={
            "entry_id": entry.id,
            "person_id": person.id,
            "worked_on": worked_on.isoformat(),
            "minutes": minutes,
            "skills": practised,
        },
    )
    return entry


@dataclass
class Progress:
    """A trainee's work at a glance: hours, skills, tasks."""

    person: User
    total_minutes: int = 0
    days_worked: int = 0
    minutes_by_skill: dict[str, int] = field(default_factory=dict)
    orders_by_status: dict[str, int] = field(default_factory=dict)
    machines: list[str] = field(default_factory=list)
    orders: list[WorkOrder] = field(default_factory=list)
    recent: list[WorkLog] = field(default_factory=list)

    @property
    def total_hours(self) -> float:
        """All the hours logged."""
        return self.total_minutes / 60


def progress(session: Session, *, viewer: User, person_id: int, recent: int = 20) -> Progress:
    """What ``person_id`` has done in the workshop; a trainee may only look at themselves."""
    if not (access.sees_all_work(viewer) or viewer.id == person_id):
        raise not_found("user_id", f"no trainee {person_id}", f"nessuna persona {person_id}")
    person = session.get(User, person_id)
    if person is None:
        raise not_found("user_id", f"no trainee {person_id}", f"nessuna persona {person_id}")
    entries = list(
        session.execute(
            select(WorkLog)
            .where(WorkLog.person_id == person_id)
            .order_by(WorkLog.worked_on.desc(), WorkLog.id.desc())
        ).scalars()
    )
    by_skill: Counter[str] = Counter()
    for entry in entries:
        for code in entry.skills or ():
            # An entry practising two skills counts its time towards each of them.
            by_skill[code] += entry.minutes
    orders = list(
        session.execute(
            select(WorkOrder)
            .where(WorkOrder.assignee_id == person_id)
            .order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
        ).scalars()
    )
    status_counts = Counter(o.status for o in orders)
    machine_ids = {o.machine_id for o in orders if o.machine_id is not None}
    machines = (
        sorted(
            session.execute(select(Machine.asset_tag).where(Machine.id.in_(machine_ids))).scalars()
        )
        if machine_ids
        else []
    )
    return Progress(
        person=person,
        total_minutes=sum(e.minutes for e in entries),
        days_worked=len({e.worked_on for e in entries}),
        minutes_by_skill=dict(by_skill.most_common()),
        orders_by_status={s.value: status_counts.get(s.value, 0) for s in WorkStatus},
        machines=machines,
        orders=orders,
        recent=entries[:recent],
    )


def minutes_on(order: WorkOrder) -> int:
    """Minutes logged on a work order so far."""
    return sum(e.minutes for e in order.entries)


def trainees(session: Session) -> list[User]:
    """Active trainees, by name (for the lead's assignment form)."""
    return list(
        session.execute(
            select(User)
            .where(User.role == Role.TRAINEE.value, User.is_active.is_(True))
            .order_by(User.name, User.id)
        ).scalars()
    )
