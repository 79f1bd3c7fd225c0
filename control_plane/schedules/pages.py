"""Console pages of wake schedules: a person's appointments, in plain words, for caregivers
and coordinators. Italian first; every change goes through ``appointments`` (audited) and
republishes the person's PC schedule, exactly as the API does."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Form, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..api.deps import SessionDep
from ..db import utcnow
from ..models import Beneficiary, Device, Role
from ..web import N_, Page, PageError, console_router, page_for_roles, register_nav
from . import appointments, service
from .access import beneficiary_for, visible_beneficiary_ids
from .api import republish
from .appointments import InputError
from .expansion import RecurrenceError, zone
from .models import Appointment, ScheduleException, WakeRecord
from .service import Scheduler

router = console_router(prefix="/schedules")

register_nav(
    "/schedules",
    N_("Appointments"),
    [Role.CAREGIVER, Role.COORDINATOR],
    description_msgid=N_("When each person's PC switches on for your call: add, change, pause."),
    order=15,
)

CarePage = Annotated[Page, Depends(page_for_roles(Role.CAREGIVER, Role.COORDINATOR))]

# RFC 5545 day codes, Monday first, with their names.
WEEKDAYS: list[tuple[str, str]] = [
    ("MO", N_("Monday")),
    ("TU", N_("Tuesday")),
    ("WE", N_("Wednesday")),
    ("TH", N_("Thursday")),
    ("FR", N_("Friday")),
    ("SA", N_("Saturday")),
    ("SU", N_("Sunday")),
]
DURATIONS = (15, 20, 30, 45, 60, 90, 120)
OUTCOMES: dict[str, str] = {
    "pending": N_("Expected"),
    "woke": N_("The PC came on in time"),
    "late": N_("The PC came on late"),
    "missed": N_("The PC did not come on"),
}
# What went wrong with a form, per field, in words a caregiver understands.
FIELD_ERRORS: dict[str, str] = {
    "date": N_("Write the day, for example 25/03/2025."),
    "time": N_("Write the time, for example 10:00."),
    "duration_min": N_("Choose how long the call lasts."),
    "days": N_("Choose at least one day of the week."),
    "until": N_("The last day cannot be before the first appointment."),
    "effective_from": N_("The change cannot start on that day: choose another one."),
    "first_day": N_("Write the first day, for example 25/03/2025."),
    "last_day": N_("The last day cannot be before the first one."),
    "rrule": N_("This repetition is not possible: check the days."),
    "start": N_("Check the day and the time."),
}


def _person(page: Page, db: Session, beneficiary_id: int) -> Beneficiary:
    assert page.user is not None
    try:
        return beneficiary_for(db, page.user, beneficiary_id)
    except HTTPException as exc:
        raise PageError(page, 404, N_("Not found"), N_("This person is not in the list.")) from exc


def _appointment(page: Page, db: Session, appointment_id: int) -> tuple[Appointment, Beneficiary]:
    row = db.get(Appointment, appointment_id)
    if row is None:
        raise PageError(page, 404, N_("Not found"), N_("This appointment does not exist."))
    return row, _person(page, db, row.beneficiary_id)


def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.schedules
    return scheduler


def _today(person: Beneficiary) -> dt.date:
    return dt.datetime.now(zone(person.timezone)).date()


# --- words ------------------------------------------------------------------------------


def _day(page: Page, day: dt.date) -> str:
    name = page._(WEEKDAYS[day.weekday()][1])
    return f"{name} {day:%d/%m/%Y}" if page.lang == "it" else f"{name} {day:%Y-%m-%d}"


def _date(page: Page, day: dt.date) -> str:
    return f"{day:%d/%m/%Y}" if page.lang == "it" else f"{day:%Y-%m-%d}"


def _join(page: Page, items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return page._("%(first)s and %(last)s", first=", ".join(items[:-1]), last=items[-1])


def repeat_of(rule: str | None) -> tuple[str, list[str]]:
    """("once" | "daily" | "weekly" | "custom", weekly days) of an appointment's RRULE."""
    if rule is None:
        return "once", []
    parts = dict(p.split("=", 1) for p in rule.split(";") if "=" in p)
    parts.pop("UNTIL", None)
    if parts == {"FREQ": "DAILY"}:
        return "daily", []
    days = parts.pop("BYDAY", "")
    codes = {code for code, _ in WEEKDAYS}
    if parts == {"FREQ": "WEEKLY"} and days and set(days.split(",")) <= codes:
        return "weekly", [code for code, _ in WEEKDAYS if code in days.split(",")]
    return "custom", []


def describe(page: Page, a: Appointment, today: dt.date) -> str:
    """An appointment in one sentence: "Every Monday and Friday at 10:00, for 30 minutes"."""
    time = a.start_local.strftime("%H:%M")
    repeat, days = repeat_of(a.rrule)
    if repeat == "once":
        text = page._(
            "Once, on %(day)s at %(time)s", day=_day(page, a.start_local.date()), time=time
        )
    elif repeat == "daily":
        text = page._("Every day at %(time)s", time=time)
    elif repeat == "weekly":
        # Italian writes weekday names in lower case inside a sentence; English does not.
        names = [page._(name) for code, name in WEEKDAYS if code in days]
        names = [n.lower() for n in names] if page.lang == "it" else names
        text = page._("Every %(days)s at %(time)s", days=_join(page, names), time=time)
    else:
        text = page._("Repeating (%(rule)s) at %(time)s", rule=a.rrule or "", time=time)
    text += ", " + page._("for %(duration)s", duration=page.fmt.duration(a.duration_min * 60))
    if repeat != "once":
        if a.start_local.date() > today:
            text += ", " + page._("from %(date)s", date=_date(page, a.start_local.date()))
        if a.until is not None:
            text += ", " + page._("until %(date)s", date=_date(page, a.until))
    return text


def _form_error(page: Page, exc: InputError) -> dict[str, str]:
    field = exc.field.split("[")[0]
    if field.startswith("caregiver_ids"):
        field = "start"
    msgid = FIELD_ERRORS.get(field)
    message = (
        page._(msgid) if msgid else page._("This could not be saved: %(reason)s", reason=exc.reason)
    )
    return {field: message}


# --- reading ----------------------------------------------------------------------------


@router.get("")
def people(page: CarePage, db: SessionDep) -> Response:
    """The people you follow, each with their next appointment."""
    assert page.user is not None
    visible = visible_beneficiary_ids(db, page.user)
    query = select(Beneficiary).order_by(Beneficiary.name, Beneficiary.id)
    if visible is not None:
        query = query.where(Beneficiary.id.in_(visible))
    persons = list(db.execute(query).scalars())
    now = utcnow()
    upcoming: dict[int, service.Slot] = {}
    for person in persons:
        try:
            found = service.slots(db, [person], now, now + dt.timedelta(days=14))
        except RecurrenceError:
            found = []
        if found:
            upcoming[person.id] = found[0]
    rows = [
        {
            "person": person,
            "next": upcoming.get(person.id),
            "next_day": _day(page, upcoming[person.id].occurrence.local_start.date())
            if person.id in upcoming
            else "",
        }
        for person in persons
    ]
    return page.render("schedules/people.html", rows=rows)


@router.get("/people/{beneficiary_id}")
def person_page(beneficiary_id: int, page: CarePage, db: SessionDep) -> Response:
    """One person's appointments: what comes next, the rules, the pauses, the PC's record."""
    person = _person(page, db, beneficiary_id)
    now = utcnow()
    try:
        found = service.slots(db, [person], now, now + dt.timedelta(days=14))
    except RecurrenceError:
        found = []
    series = list(
        db.execute(
            select(Appointment)
            .where(Appointment.beneficiary_id == person.id)
            .order_by(Appointment.start_local, Appointment.id)
        ).scalars()
    )
    today = _today(person)
    # Series that ended before today are history: the page shows what still applies.
    current = [a for a in series if a.until is None or a.until >= today]
    current = [a for a in current if a.rrule is not None or a.start_local.date() >= today]
    pauses = list(
        db.execute(
            select(ScheduleException)
            .where(
                ScheduleException.beneficiary_id == person.id, ScheduleException.last_day >= today
            )
            .order_by(ScheduleException.first_day)
        ).scalars()
    )
    wakes = list(
        db.execute(
            select(WakeRecord)
            .where(WakeRecord.beneficiary_id == person.id, WakeRecord.start_at <= now)
            .order_by(WakeRecord.start_at.desc())
            .limit(10)
        ).scalars()
    )
    device = db.get(Device, person.device_id) if person.device_id else None
    return page.render(
        "schedules/person.html",
        person=person,
        device=device,
        next_slots=[
            {
                "day": _day(page, s.occurrence.local_start.date()),
                "time": s.occurrence.local_start.strftime("%H:%M"),
                "end": s.occurrence.end.astimezone(zone(person.timezone)).strftime("%H:%M"),
                "title": s.appointment.title,
                "iso": page.fmt.iso(s.occurrence.start),
            }
            for s in found[:20]
        ],
        series=[
            {"row": a, "text": describe(page, a, today), "repeats": a.rrule is not None}
            for a in current
        ],
        pauses=[
            {
                "row": p,
                "text": _date(page, p.first_day)
                if p.first_day == p.last_day
                else page._(
                    "from %(first)s to %(last)s",
                    first=_date(page, p.first_day),
                    last=_date(page, p.last_day),
                ),
            }
            for p in pauses
        ],
        wakes=[
            {
                "row": w,
                "day": _day(page, w.start_at.astimezone(zone(person.timezone)).date()),
                "time": w.start_at.astimezone(zone(person.timezone)).strftime("%H:%M"),
                "outcome": page._(OUTCOMES.get(w.outcome, w.outcome)),
            }
            for w in wakes
        ],
    )


# --- adding and changing ----------------------------------------------------------------


def _form_context(page: Page, person: Beneficiary, form: dict[str, Any]) -> dict[str, Any]:
    return {
        "person": person,
        "form": form,
        "weekdays": [(code, page._(name)) for code, name in WEEKDAYS],
        "durations": [(m, page.fmt.duration(m * 60)) for m in DURATIONS],
    }


def _parse(form: dict[str, Any], *, need_date: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Form fields to appointment values; (values, {field: msgid}) of what is wrong."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {"title": str(form.get("title", "")).strip()[:200]}
    day: dt.date | None = None
    if need_date:
        try:
            day = dt.date.fromisoformat(str(form.get("date", "")))
        except ValueError:
            errors["date"] = FIELD_ERRORS["date"]
    try:
        clock = dt.time.fromisoformat(str(form.get("time", "")))
    except ValueError:
        errors["time"] = FIELD_ERRORS["time"]
        clock = dt.time(0, 0)
    values["time"] = clock.replace(second=0, microsecond=0)
    if day is not None:
        values["start"] = dt.datetime.combine(day, values["time"])
    try:
        values["duration_min"] = int(str(form.get("duration_min", "")))
    except ValueError:
        errors["duration_min"] = FIELD_ERRORS["duration_min"]
    repeat = str(form.get("repeat", "once"))
    days = [d for d in form.get("days", []) if d in {code for code, _ in WEEKDAYS}]
    if repeat == "daily":
        values["rrule"] = "FREQ=DAILY"
    elif repeat == "weekly":
        if not days:
            errors["days"] = FIELD_ERRORS["days"]
        values["rrule"] = "FREQ=WEEKLY;BYDAY=" + ",".join(days)
    elif repeat == "once":
        values["rrule"] = None
    until_text = str(form.get("until", "")).strip()
    values["until"] = None
    if until_text and repeat != "once":
        try:
            values["until"] = dt.date.fromisoformat(until_text)
        except ValueError:
            errors["until"] = FIELD_ERRORS["date"]
    return values, errors


def _translated(page: Page, errors: dict[str, str]) -> dict[str, str]:
    return {field: page._(msgid) for field, msgid in errors.items()}


def _form_dict(
    title: str, date: str, time: str, duration_min: str, repeat: str, days: list[str], until: str
) -> dict[str, Any]:
    return {
        "title": title,
        "date": date,
        "time": time,
        "duration_min": duration_min,
        "repeat": repeat,
        "days": days,
        "until": until,
    }


@router.get("/people/{beneficiary_id}/new")
def new_appointment(beneficiary_id: int, page: CarePage, db: SessionDep) -> Response:
    """The form for a new appointment."""
    person = _person(page, db, beneficiary_id)
    tomorrow = _today(person) + dt.timedelta(days=1)
    form = _form_dict("", tomorrow.isoformat(), "10:00", "30", "weekly", [], "")
    form["days"] = [WEEKDAYS[tomorrow.weekday()][0]]
    return page.render(
        "schedules/appointment_form.html", errors={}, **_form_context(page, person, form)
    )


@router.post("/people/{beneficiary_id}/new")
def create_appointment(
    beneficiary_id: int,
    request: Request,
    page: CarePage,
    db: SessionDep,
    date: Annotated[str, Form()] = "",
    time: Annotated[str, Form()] = "",
    duration_min: Annotated[str, Form()] = "30",
    repeat: Annotated[str, Form()] = "once",
    days: Annotated[list[str] | None, Form()] = None,
    until: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
) -> Response:
    """Save a new appointment; its PC's schedule is republished."""
    person = _person(page, db, beneficiary_id)
    assert page.user is not None
    form = _form_dict(title, date, time, duration_min, repeat, days or [], until)
    values, errors = _parse(form, need_date=True)
    shown = _translated(page, errors)
    if not shown:
        try:
            appointments.create_appointment(
                db,
                person=person,
                user=page.user,
                title=values["title"],
                start=values["start"],
                duration_min=values["duration_min"],
                rrule=values["rrule"],
                until=values["until"],
            )
        except InputError as exc:
            db.rollback()
            shown = _form_error(page, exc)
    if shown:
        return page.render(
            "schedules/appointment_form.html",
            status_code=422,
            errors=shown,
            **_form_context(page, person, form),
        )
    republish(db, _scheduler(request), person.id)
    page.flash(page._("The appointment is saved. The PC will switch itself on for it."))
    return page.redirect(f"/schedules/people/{person.id}")


@router.get("/appointments/{appointment_id}/edit")
def edit_appointment(appointment_id: int, page: CarePage, db: SessionDep) -> Response:
    """The form to change an appointment (from a chosen day on)."""
    row, person = _appointment(page, db, appointment_id)
    repeat, days = repeat_of(row.rrule)
    form = _form_dict(
        row.title,
        row.start_local.date().isoformat(),
        row.start_local.strftime("%H:%M"),
        str(row.duration_min),
        repeat,
        days,
        row.until.isoformat() if row.until else "",
    )
    form["effective_from"] = max(_today(person), row.start_local.date()).isoformat()
    return page.render(
        "schedules/appointment_edit.html",
        errors={},
        appointment=row,
        description=describe(page, row, _today(person)),
        **_form_context(page, person, form),
    )


@router.post("/appointments/{appointment_id}/edit")
def update_appointment(
    appointment_id: int,
    request: Request,
    page: CarePage,
    db: SessionDep,
    time: Annotated[str, Form()] = "",
    duration_min: Annotated[str, Form()] = "30",
    repeat: Annotated[str, Form()] = "once",
    days: Annotated[list[str] | None, Form()] = None,
    until: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
    effective_from: Annotated[str, Form()] = "",
) -> Response:
    """Change an appointment from a day on: earlier ones stay as they were."""
    row, person = _appointment(page, db, appointment_id)
    assert page.user is not None
    form = _form_dict(title, effective_from, time, duration_min, repeat, days or [], until)
    form["effective_from"] = effective_from
    # The first day of the changed appointments is the day the change takes effect.
    values, errors = _parse(form, need_date=True)
    if "date" in errors:
        errors["effective_from"] = errors.pop("date")
    if repeat == "custom":
        values["rrule"] = row.rrule  # a rule the form cannot show stays as it is
    shown = _translated(page, errors)
    if not shown:
        changes = {k: values[k] for k in ("title", "start", "duration_min", "rrule", "until")}
        try:
            appointments.update_appointment(
                db,
                appointment=row,
                person=person,
                user=page.user,
                changes=changes,
                effective_from=values["start"].date(),
            )
        except InputError as exc:
            db.rollback()
            shown = _form_error(page, exc)
    if shown:
        return page.render(
            "schedules/appointment_edit.html",
            status_code=422,
            errors=shown,
            appointment=row,
            description=describe(page, row, _today(person)),
            **_form_context(page, person, form),
        )
    republish(db, _scheduler(request), person.id)
    page.flash(page._("The change is saved."))
    return page.redirect(f"/schedules/people/{person.id}")


@router.post("/appointments/{appointment_id}/stop")
def stop_appointment(
    appointment_id: int, request: Request, page: CarePage, db: SessionDep
) -> Response:
    """No more of this appointment from today (a one-off not yet held is deleted)."""
    row, person = _appointment(page, db, appointment_id)
    assert page.user is not None
    appointments.remove_appointment(db, appointment=row, user=page.user, from_day=_today(person))
    republish(db, _scheduler(request), person.id)
    page.flash(page._("The appointment is cancelled."))
    return page.redirect(f"/schedules/people/{person.id}")


# --- pauses -----------------------------------------------------------------------------


@router.get("/people/{beneficiary_id}/pause")
def new_pause(beneficiary_id: int, page: CarePage, db: SessionDep) -> Response:
    """The form for days without appointments."""
    person = _person(page, db, beneficiary_id)
    today = _today(person).isoformat()
    return page.render(
        "schedules/pause_form.html",
        errors={},
        person=person,
        form={"first_day": today, "last_day": today, "reason": ""},
    )


@router.post("/people/{beneficiary_id}/pause")
def create_pause(
    beneficiary_id: int,
    request: Request,
    page: CarePage,
    db: SessionDep,
    first_day: Annotated[str, Form()] = "",
    last_day: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """No appointments on these days: a holiday, a stay in hospital."""
    person = _person(page, db, beneficiary_id)
    assert page.user is not None
    form = {"first_day": first_day, "last_day": last_day, "reason": reason}
    errors: dict[str, str] = {}
    first = last = None
    try:
        first = dt.date.fromisoformat(first_day)
    except ValueError:
        errors["first_day"] = page._(FIELD_ERRORS["first_day"])
    try:
        last = dt.date.fromisoformat(last_day) if last_day.strip() else first
    except ValueError:
        errors["last_day"] = page._(FIELD_ERRORS["date"])
    if not errors and first is not None:
        try:
            appointments.add_exception(
                db,
                person=person,
                user=page.user,
                first_day=first,
                last_day=last,
                reason=reason[:200],
            )
        except InputError as exc:
            db.rollback()
            errors = _form_error(page, exc)
    if errors:
        return page.render(
            "schedules/pause_form.html", status_code=422, errors=errors, person=person, form=form
        )
    republish(db, _scheduler(request), person.id)
    page.flash(page._("No appointments on those days. The PC will stay off."))
    return page.redirect(f"/schedules/people/{person.id}")


@router.post("/pauses/{exception_id}/delete")
def delete_pause(exception_id: int, request: Request, page: CarePage, db: SessionDep) -> Response:
    """Those days have their appointments again."""
    row = db.get(ScheduleException, exception_id)
    if row is None:
        raise PageError(page, 404, N_("Not found"), N_("This pause does not exist."))
    person = _person(page, db, row.beneficiary_id)
    assert page.user is not None
    appointments.remove_exception(db, row=row, user=page.user)
    republish(db, _scheduler(request), person.id)
    page.flash(page._("The pause is removed: the appointments of those days are back."))
    return page.redirect(f"/schedules/people/{person.id}")
