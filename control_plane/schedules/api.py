"""HTTP API of wake schedules: appointments, exceptions, agenda, wakes, device wake state."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit
from ..api.deps import CurrentUser, SessionDep
from ..db import utcnow
from ..models import Beneficiary, Device, User
from . import appointments, service
from .access import (
    FLEET_ROLES,
    PROFILE_ROLES,
    beneficiary_for,
    require_role,
    visible_beneficiary_ids,
)
from .appointments import MAX_MINUTES, InputError
from .expansion import RecurrenceError
from .models import (
    Appointment,
    DeviceWakeProfile,
    ScheduleException,
    SchedulePublication,
    WakeRecord,
)
from .reconcile import reconcile
from .service import Scheduler

router = APIRouter(tags=["schedules"])


def get_scheduler(request: Request) -> Scheduler:
    """The app's scheduler (config and publication)."""
    scheduler: Scheduler = request.app.state.schedules
    return scheduler


SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


# --- schemas ----------------------------------------------------------------------------


class AppointmentCreate(BaseModel):
    title: str = Field(default="", max_length=200)
    start: dt.datetime = Field(
        description="first occurrence, local wall-clock time of the beneficiary (no offset)"
    )
    duration_min: int = Field(ge=1, le=MAX_MINUTES)
    rrule: str | None = Field(
        default=None,
        max_length=500,
        description="RFC 5545 RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO,WE,FR; none: one-off",
    )
    until: dt.date | None = Field(default=None, description="last local day of the series")
    caregiver_ids: list[int] = Field(default_factory=list, max_length=20)
    notes: str = Field(default="", max_length=5000)


class AppointmentUpdate(BaseModel):
    title: str | None = Field(default=None, max_length=200)
    start: dt.datetime | None = None
    duration_min: int | None = Field(default=None, ge=1, le=MAX_MINUTES)
    rrule: str | None = Field(default=None, max_length=500)
    until: dt.date | None = None
    caregiver_ids: list[int] | None = Field(default=None, max_length=20)
    notes: str | None = Field(default=None, max_length=5000)
    effective_from: dt.date | None = Field(
        default=None,
        description="apply the change from this local day on; earlier ones stay as they were",
    )


class AppointmentPublic(BaseModel):
    id: int
    beneficiary_id: int
    title: str
    start: dt.datetime
    timezone: str
    duration_min: int
    rrule: str | None
    until: dt.date | None
    caregiver_ids: list[int]
    notes: str
    previous_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, a: Appointment, timezone: str) -> AppointmentPublic:
        return cls(
            id=a.id,
            beneficiary_id=a.beneficiary_id,
            title=a.title,
            start=a.start_local,
            timezone=timezone,
            duration_min=a.duration_min,
            rrule=a.rrule,
            until=a.until,
            caregiver_ids=a.caregiver_ids,
            notes=a.notes,
            previous_id=a.previous_id,
            created_at=a.created_at,
            updated_at=a.updated_at,
        )


class ExceptionCreate(BaseModel):
    first_day: dt.date
    last_day: dt.date | None = Field(default=None, description="inclusive; default first_day")
    reason: str = Field(default="", max_length=200)
    appointment_id: int | None = Field(
        default=None, description="only this appointment; none: every appointment"
    )


class ExceptionPublic(BaseModel):
    id: int
    beneficiary_id: int
    appointment_id: int | None
    first_day: dt.date
    last_day: dt.date
    reason: str
    created_at: dt.datetime


class OccurrencePublic(BaseModel):
    appointment_id: int
    beneficiary_id: int
    beneficiary_name: str
    title: str
    local_start: dt.datetime
    timezone: str
    start: dt.datetime
    end: dt.datetime
    caregiver_ids: list[int]


class WakePublic(BaseModel):
    device_id: str
    beneficiary_id: int | None
    start: dt.datetime
    end: dt.datetime
    appointment_ids: list[str]
    outcome: str
    online_at: dt.datetime | None
    called_at: dt.datetime | None
    call_checked: bool
    no_call: bool

    @classmethod
    def of(cls, r: WakeRecord) -> WakePublic:
        return cls(
            device_id=r.device_id,
            beneficiary_id=r.beneficiary_id,
            start=r.start_at,
            end=r.end_at,
            appointment_ids=list(r.appointment_ids or []),
            outcome=r.outcome,
            online_at=r.online_at,
            called_at=r.called_at,
            call_checked=r.call_checked,
            no_call=r.no_call,
        )


PolicyName = Literal["poweroff", "suspend", "stay"]


class WakeProfileUpdate(BaseModel):
    policy: PolicyName | None = Field(
        description="poweroff, suspend or stay between wakes; none: the default"
    )


class WakeProfilePublic(BaseModel):
    policy: str | None
    wakes_from_off: bool | None
    commission_result: str | None
    commissioned_at: dt.datetime | None
    commission_detail: dict[str, Any]

    @classmethod
    def of(cls, p: DeviceWakeProfile | None) -> WakeProfilePublic:
        if p is None:
            return cls(
                policy=None,
                wakes_from_off=None,
                commission_result=None,
                commissioned_at=None,
                commission_detail={},
            )
        return cls(
            policy=p.policy,
            wakes_from_off=p.wakes_from_off,
            commission_result=p.commission_result,
            commissioned_at=p.commissioned_at,
            commission_detail=dict(p.commission_detail or {}),
        )


class FindingPublic(BaseModel):
    kind: str
    message: str


class DeviceSchedulePublic(BaseModel):
    device_id: str
    beneficiary_id: int | None
    published_version: int | None
    published_at: dt.datetime | None
    horizon_end: dt.datetime | None
    lead_s: int | None
    policy: str | None
    next_wakes: list[dict[str, Any]]
    reported_version: int | None
    armed_alarm: dt.datetime | None
    alarm_reason: str | None
    alarm_error: str | None
    findings: list[FindingPublic]
    profile: WakeProfilePublic
    recent_wakes: list[WakePublic]


# --- helpers ----------------------------------------------------------------------------


def _input_error(exc: InputError) -> HTTPException:
    return _unprocessable(str(exc))


def _appointment_for(session: Session, user: User, appointment_id: int) -> Appointment:
    visible = visible_beneficiary_ids(session, user)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or (visible is not None and appointment.beneficiary_id not in visible):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no appointment with id {appointment_id}")
    return appointment


def republish(session: Session, scheduler: Scheduler, beneficiary_id: int) -> None:
    """Commit the change, then publish the beneficiary's device schedule."""
    try:
        ids = service.refresh_beneficiary(session, beneficiary_id, utcnow(), scheduler.config)
    except RecurrenceError as exc:
        raise _unprocessable(str(exc)) from None
    session.commit()
    scheduler.publish(ids)


# --- appointments -----------------------------------------------------------------------


@router.get("/beneficiaries/{beneficiary_id}/appointments", response_model=list[AppointmentPublic])
def list_appointments(
    beneficiary_id: int, session: SessionDep, user: CurrentUser
) -> list[AppointmentPublic]:
    """The beneficiary's appointments (series and one-offs), oldest first."""
    person = beneficiary_for(session, user, beneficiary_id)
    rows = session.execute(
        select(Appointment)
        .where(Appointment.beneficiary_id == beneficiary_id)
        .order_by(Appointment.start_local, Appointment.id)
    ).scalars()
    return [AppointmentPublic.of(a, person.timezone) for a in rows]


@router.post(
    "/beneficiaries/{beneficiary_id}/appointments",
    status_code=status.HTTP_201_CREATED,
    response_model=AppointmentPublic,
)
def create_appointment(
    beneficiary_id: int,
    body: AppointmentCreate,
    session: SessionDep,
    user: CurrentUser,
    scheduler: SchedulerDep,
) -> AppointmentPublic:
    """Add an appointment; the device's schedule is republished."""
    person = beneficiary_for(session, user, beneficiary_id)
    try:
        appointment = appointments.create_appointment(
            session,
            person=person,
            user=user,
            title=body.title,
            start=body.start,
            duration_min=body.duration_min,
            rrule=body.rrule,
            until=body.until,
            caregiver_ids=body.caregiver_ids,
            notes=body.notes,
        )
    except InputError as exc:
        raise _input_error(exc) from None
    republish(session, scheduler, beneficiary_id)
    return AppointmentPublic.of(appointment, person.timezone)


@router.get("/appointments/{appointment_id}", response_model=AppointmentPublic)
def get_appointment(
    appointment_id: int, session: SessionDep, user: CurrentUser
) -> AppointmentPublic:
    """One appointment."""
    appointment = _appointment_for(session, user, appointment_id)
    person = session.get(Beneficiary, appointment.beneficiary_id)
    assert person is not None
    return AppointmentPublic.of(appointment, person.timezone)


@router.patch("/appointments/{appointment_id}", response_model=AppointmentPublic)
def update_appointment(
    appointment_id: int,
    body: AppointmentUpdate,
    session: SessionDep,
    user: CurrentUser,
    scheduler: SchedulerDep,
) -> AppointmentPublic:
    """Change an appointment, or (``effective_from``) its occurrences from a day on.

    From a day on, the series is split: the old one ends the day before, a new one (with
    ``previous_id`` pointing back) carries the change; the new one is returned.
    """
    appointment = _appointment_for(session, user, appointment_id)
    person = session.get(Beneficiary, appointment.beneficiary_id)
    assert person is not None
    given = body.model_fields_set - {"effective_from"}
    try:
        target, _split = appointments.update_appointment(
            session,
            appointment=appointment,
            person=person,
            user=user,
            changes={name: getattr(body, name) for name in given},
            effective_from=body.effective_from,
        )
    except InputError as exc:
        raise _input_error(exc) from None
    republish(session, scheduler, appointment.beneficiary_id)
    return AppointmentPublic.of(target, person.timezone)


@router.delete("/appointments/{appointment_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_appointment(
    appointment_id: int,
    session: SessionDep,
    user: CurrentUser,
    scheduler: SchedulerDep,
    from_day: Annotated[
        dt.date | None,
        Query(alias="from", description="end the series before this local day instead"),
    ] = None,
) -> Response:
    """Delete an appointment, or (``?from=``) end its series before that day."""
    appointment = _appointment_for(session, user, appointment_id)
    beneficiary_id = appointment.beneficiary_id
    appointments.remove_appointment(session, appointment=appointment, user=user, from_day=from_day)
    republish(session, scheduler, beneficiary_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- exceptions -------------------------------------------------------------------------


def _exception_public(e: ScheduleException) -> ExceptionPublic:
    return ExceptionPublic(
        id=e.id,
        beneficiary_id=e.beneficiary_id,
        appointment_id=e.appointment_id,
        first_day=e.first_day,
        last_day=e.last_day,
        reason=e.reason,
        created_at=e.created_at,
    )


@router.get(
    "/beneficiaries/{beneficiary_id}/schedule-exceptions", response_model=list[ExceptionPublic]
)
def list_exceptions(
    beneficiary_id: int, session: SessionDep, user: CurrentUser
) -> list[ExceptionPublic]:
    """Days without appointments (holidays, hospital stays)."""
    beneficiary_for(session, user, beneficiary_id)
    rows = session.execute(
        select(ScheduleException)
        .where(ScheduleException.beneficiary_id == beneficiary_id)
        .order_by(ScheduleException.first_day, ScheduleException.id)
    ).scalars()
    return [_exception_public(e) for e in rows]


@router.post(
    "/beneficiaries/{beneficiary_id}/schedule-exceptions",
    status_code=status.HTTP_201_CREATED,
    response_model=ExceptionPublic,
)
def create_exception(
    beneficiary_id: int,
    body: ExceptionCreate,
    session: SessionDep,
    user: CurrentUser,
    scheduler: SchedulerDep,
) -> ExceptionPublic:
    """No appointments on these days; the device's schedule is republished."""
    person = beneficiary_for(session, user, beneficiary_id)
    try:
        row = appointments.add_exception(
            session,
            person=person,
            user=user,
            first_day=body.first_day,
            last_day=body.last_day,
            reason=body.reason,
            appointment_id=body.appointment_id,
        )
    except InputError as exc:
        raise _input_error(exc) from None
    republish(session, scheduler, beneficiary_id)
    return _exception_public(row)


@router.delete("/schedule-exceptions/{exception_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_exception(
    exception_id: int, session: SessionDep, user: CurrentUser, scheduler: SchedulerDep
) -> Response:
    """Remove an exception: those days have their appointments again."""
    visible = visible_beneficiary_ids(session, user)
    row = session.get(ScheduleException, exception_id)
    if row is None or (visible is not None and row.beneficiary_id not in visible):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no schedule exception with id {exception_id}"
        )
    beneficiary_id = row.beneficiary_id
    appointments.remove_exception(session, row=row, user=user)
    republish(session, scheduler, beneficiary_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- agenda and wakes -------------------------------------------------------------------


def occurrences_for(
    session: Session, people: list[Beneficiary], start: dt.datetime, end: dt.datetime
) -> list[OccurrencePublic]:
    """Every occurrence of these beneficiaries' appointments over ``[start, end)``, by time."""
    try:
        found = service.slots(session, people, start, end)
    except RecurrenceError as exc:
        raise _unprocessable(str(exc)) from None
    return [
        OccurrencePublic(
            appointment_id=s.appointment.id,
            beneficiary_id=s.person.id,
            beneficiary_name=s.person.name,
            title=s.appointment.title,
            local_start=s.occurrence.local_start,
            timezone=s.person.timezone,
            start=s.occurrence.start,
            end=s.occurrence.end,
            caregiver_ids=s.appointment.caregiver_ids,
        )
        for s in found
    ]


def _range(start: dt.datetime | None, days: float) -> tuple[dt.datetime, dt.datetime]:
    if start is None:
        begin = utcnow()
    elif start.tzinfo is None:
        raise _unprocessable("start: give a UTC offset (e.g. 2024-05-20T00:00:00+02:00)")
    else:
        begin = start.astimezone(dt.UTC)
    return begin, begin + dt.timedelta(days=days)


@router.get("/beneficiaries/{beneficiary_id}/occurrences", response_model=list[OccurrencePublic])
def list_occurrences(
    beneficiary_id: int,
    session: SessionDep,
    user: CurrentUser,
    start: dt.datetime | None = None,
    days: Annotated[float, Query(gt=0, le=62)] = 14,
) -> list[OccurrencePublic]:
    """The beneficiary's appointments as concrete times (default: the next 14 days)."""
    person = beneficiary_for(session, user, beneficiary_id)
    begin, end = _range(start, days)
    return occurrences_for(session, [person], begin, end)


@router.get("/agenda", response_model=list[OccurrencePublic])
def agenda(
    session: SessionDep,
    user: CurrentUser,
    start: dt.datetime | None = None,
    days: Annotated[float, Query(gt=0, le=31)] = 1,
    mine: bool = False,
) -> list[OccurrencePublic]:
    """Appointments of every beneficiary you follow; ``mine``: only those you call at."""
    visible = visible_beneficiary_ids(session, user)
    query = select(Beneficiary).order_by(Beneficiary.name, Beneficiary.id)
    if visible is not None:
        query = query.where(Beneficiary.id.in_(visible))
    people = list(session.execute(query).scalars())
    begin, end = _range(start, days)
    found = occurrences_for(session, people, begin, end)
    if mine:
        found = [o for o in found if user.id in o.caregiver_ids]
    return found


@router.get("/beneficiaries/{beneficiary_id}/wakes", response_model=list[WakePublic])
def list_wakes(
    beneficiary_id: int,
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[WakePublic]:
    """Recent wake windows of the beneficiary's PC: woke, missed, late; call or not."""
    beneficiary_for(session, user, beneficiary_id)
    rows = session.execute(
        select(WakeRecord)
        .where(WakeRecord.beneficiary_id == beneficiary_id)
        .order_by(WakeRecord.start_at.desc())
        .limit(limit)
    ).scalars()
    return [WakePublic.of(r) for r in rows]


# --- devices ----------------------------------------------------------------------------


def _device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device with id {device_id!r}")
    return device


def _epoch_dt(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


@router.get("/devices/{device_id}/schedule", response_model=DeviceSchedulePublic)
def device_schedule(
    device_id: str, session: SessionDep, user: CurrentUser, scheduler: SchedulerDep
) -> DeviceSchedulePublic:
    """The schedule published to a device, what it armed, and what does not match."""
    require_role(user, FLEET_ROLES, "see devices' wake state")
    device = _device(session, device_id)
    pub = session.get(SchedulePublication, device_id)
    schedule = (device.desired or {}).get("schedule") or {}
    reported = device.reported or {}
    now = utcnow()
    findings = []
    if pub is not None and schedule:
        findings = reconcile(
            now=now.timestamp(),
            published_version=int(schedule.get("version", pub.version)),
            published_at=pub.published_at.timestamp(),
            schedule=schedule,
            reported=device.reported,
            online=device.online,
            online_since=device.status_at.timestamp() if device.status_at else None,
            stale_after_s=scheduler.config.stale_after_s,
            min_ahead_s=scheduler.config.min_ahead_s,
        )
    upcoming = [w for w in schedule.get("wakes", []) if float(w["end"]) > now.timestamp()][:10]
    recent = session.execute(
        select(WakeRecord)
        .where(WakeRecord.device_id == device_id)
        .order_by(WakeRecord.start_at.desc())
        .limit(20)
    ).scalars()
    return DeviceSchedulePublic(
        device_id=device_id,
        beneficiary_id=pub.beneficiary_id if pub else None,
        published_version=pub.version if pub else None,
        published_at=pub.published_at if pub else None,
        horizon_end=pub.horizon_end if pub else None,
        lead_s=schedule.get("lead_s"),
        policy=schedule.get("policy"),
        next_wakes=[
            {
                "start": _epoch_dt(w["start"]),
                "end": _epoch_dt(w["end"]),
                "appointment_ids": w.get("appointment_ids", []),
            }
            for w in upcoming
        ],
        reported_version=reported.get("schedule_version"),
        armed_alarm=_epoch_dt(reported.get("armed_alarm")),
        alarm_reason=reported.get("alarm_reason"),
        alarm_error=reported.get("alarm_error"),
        findings=[FindingPublic(kind=f.kind, message=f.message) for f in findings],
        profile=WakeProfilePublic.of(session.get(DeviceWakeProfile, device_id)),
        recent_wakes=[WakePublic.of(r) for r in recent],
    )


@router.put("/devices/{device_id}/wake-profile", response_model=WakeProfilePublic)
def set_wake_profile(
    device_id: str,
    body: WakeProfileUpdate,
    session: SessionDep,
    user: CurrentUser,
    scheduler: SchedulerDep,
) -> WakeProfilePublic:
    """Set how the device spends the time between wakes (after commissioning)."""
    require_role(user, PROFILE_ROLES, "change a device's wake policy")
    device = _device(session, device_id)
    profile = session.get(DeviceWakeProfile, device_id)
    if profile is None:
        profile = DeviceWakeProfile(device_id=device_id, commission_detail={})
        session.add(profile)
    before = profile.policy
    profile.policy = body.policy
    session.flush()
    audit.record(
        session,
        action="wake_profile.set",
        object_type="device",
        object_id=device_id,
        actor=user,
        data={"policy": body.policy, "before": before},
    )
    beneficiary_id = session.execute(
        select(Beneficiary.id).where(Beneficiary.device_id == device.id)
    ).scalar_one_or_none()
    if beneficiary_id is not None:
        republish(session, scheduler, beneficiary_id)
    return WakeProfilePublic.of(profile)
