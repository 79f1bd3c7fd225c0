"""Fleet routes: enrollment tokens and enrollment, alerts, a device's events and series."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from .. import alerts as alert_service
from .. import audit
from ..api.deps import CurrentUser, FleetUser, SessionDep, SettingsDep, require_roles
from ..db import utcnow
from ..models import Alert, AlertStatus, CaregiverAssignment, Device, DeviceEvent, Role, User
from .enrollment import EnrollmentRefused, create_token, enroll
from .models import EnrollmentToken
from .series import DEFAULT_RANGE, RANGES, load_series, parse_range

router = APIRouter(tags=["enrollment"])
alerts_router = APIRouter(prefix="/alerts", tags=["alerts"])
devices_router = APIRouter(prefix="/devices", tags=["devices"])

Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, description="items to skip")]

# Who sees every alert; caregivers see only those of the people they look after.
_ALERT_READERS = {Role.ADMIN, Role.FLEET_MANAGER, Role.TECHNICIAN, Role.COORDINATOR}
AlertManager = Annotated[
    User, Depends(require_roles(Role.FLEET_MANAGER, Role.TECHNICIAN, Role.COORDINATOR))
]


def _count(session: Session, query: Select[Any]) -> int:
    return int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def _device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device_id: no device {device_id!r}")
    return device


# -- enrollment ------------------------------------------------------------------------------


class TokenCreate(BaseModel):
    """A new enrollment token: for a chosen device id, or one generated."""

    device_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")
    name: str = Field(default="", max_length=200)
    group: str = Field(default="", max_length=100)
    ttl_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 30)


class TokenCreated(BaseModel):
    """The token's secret, shown once."""

    id: int
    token: str = Field(description="shown only once; type it on the PC with difronte-edge enroll")
    device_id: str
    expires_at: dt.datetime


TokenState = Literal["pending", "used", "expired"]


class TokenPublic(BaseModel):
    """An enrollment token without its secret."""

    id: int
    device_id: str
    name: str
    group: str
    state: TokenState
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None


class TokenPage(BaseModel):
    items: list[TokenPublic]
    total: int
    limit: int
    offset: int


class EnrollRequest(BaseModel):
    token: str = Field(min_length=10, max_length=200)


class EnrollResponse(BaseModel):
    """Everything the PC writes into its configuration."""

    device_id: str
    mqtt_host: str
    mqtt_port: int
    mqtt_password: str
    tls_ca_pem: str | None


def token_state(token: EnrollmentToken, now: dt.datetime) -> TokenState:
    """Pending, used or expired."""
    if token.used_at is not None:
        return "used"
    return "pending" if token.expires_at > now else "expired"


def _token_public(token: EnrollmentToken, now: dt.datetime) -> TokenPublic:
    return TokenPublic(
        id=token.id,
        device_id=token.device_id,
        name=token.name,
        group=token.group,
        state=token_state(token, now),
        created_at=token.created_at,
        expires_at=token.expires_at,
        used_at=token.used_at,
    )


@router.post("/enrollment-tokens", status_code=201, response_model=TokenCreated)
def new_token(
    body: TokenCreate, session: SessionDep, settings: SettingsDep, user: FleetUser
) -> TokenCreated:
    """Create a single-use, expiring enrollment token for one PC."""
    try:
        token, secret = create_token(
            session,
            settings,
            user=user,
            device_id=body.device_id,
            name=body.name,
            group=body.group,
            ttl_minutes=body.ttl_minutes,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record(
        session,
        action="enrollment.token_created",
        object_type="device",
        object_id=token.device_id,
        actor=user,
    )
    return TokenCreated(
        id=token.id, token=secret, device_id=token.device_id, expires_at=token.expires_at
    )


@router.get("/enrollment-tokens", response_model=TokenPage)
def list_tokens(
    session: SessionDep,
    _user: FleetUser,
    state: TokenState | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TokenPage:
    """Enrollment tokens, newest first, optionally only pending, used or expired ones."""
    now = utcnow()
    query = select(EnrollmentToken)
    if state == "used":
        query = query.where(EnrollmentToken.used_at.is_not(None))
    elif state == "pending":
        query = query.where(EnrollmentToken.used_at.is_(None), EnrollmentToken.expires_at > now)
    elif state == "expired":
        query = query.where(EnrollmentToken.used_at.is_(None), EnrollmentToken.expires_at <= now)
    total = _count(session, query)
    rows = session.execute(
        query.order_by(EnrollmentToken.id.desc()).limit(limit).offset(offset)
    ).scalars()
    return TokenPage(
        items=[_token_public(t, now) for t in rows], total=total, limit=limit, offset=offset
    )


@router.delete("/enrollment-tokens/{token_id}", status_code=204, response_class=Response)
def cancel_token(token_id: int, session: SessionDep, user: FleetUser) -> Response:
    """Withdraw an unused token (a PC that will not be installed after all)."""
    token = session.get(EnrollmentToken, token_id)
    if token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"token_id: no enrollment token {token_id}")
    if token.used_at is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"token_id: already used by {token.device_id}; revoke the device instead",
        )
    session.delete(token)
    audit.record(
        session,
        action="enrollment.token_cancelled",
        object_type="device",
        object_id=token.device_id,
        actor=user,
    )
    return Response(status_code=204)


@router.post("/enroll", response_model=EnrollResponse, openapi_extra={"security": []})
def enroll_device(
    body: EnrollRequest, session: SessionDep, settings: SettingsDep
) -> EnrollResponse:
    """A PC exchanges its enrollment token for its identity and broker credentials."""
    try:
        result = enroll(session, settings, secret=body.token)
    except EnrollmentRefused as exc:
        session.rollback()
        raise HTTPException(exc.status, str(exc)) from exc
    audit.record(
        session,
        action="device.enrolled",
        object_type="device",
        object_id=result.device_id,
        actor=f"device:{result.device_id}",
    )
    return EnrollResponse(**result.__dict__)


# -- alerts ----------------------------------------------------------------------------------


class AlertPublic(BaseModel):
    id: int
    key: str
    kind: str
    severity: str
    status: str
    device_id: str | None
    beneficiary_id: int | None
    message: str
    data: dict[str, Any]
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None
    resolved_at: dt.datetime | None


class AlertPage(BaseModel):
    items: list[AlertPublic]
    total: int
    limit: int
    offset: int


def _public(a: Alert) -> AlertPublic:
    return AlertPublic.model_validate(a, from_attributes=True)


def _visible_alerts(user: User) -> Select[Alert]:
    """The alerts ``user`` may see; 403 for roles that see none."""
    query = select(Alert)
    if user.role in _ALERT_READERS:
        return query
    if user.role == Role.CAREGIVER:
        mine = select(CaregiverAssignment.beneficiary_id).where(
            CaregiverAssignment.user_id == user.id
        )
        return query.where(Alert.beneficiary_id.in_(mine))
    raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not do this")


AlertState = Literal["open", "acknowledged", "resolved", "active", "all"]


@alerts_router.get("", response_model=AlertPage)
def list_alerts(
    session: SessionDep,
    user: CurrentUser,
    state: Annotated[
        AlertState,
        Query(alias="status", description='"active" = open or acknowledged; "all" = any'),
    ] = "active",
    kind: str | None = None,
    device_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> AlertPage:
    """Alerts, newest first, filtered by status, kind and device."""
    query = _visible_alerts(user)
    if state == "active":
        query = query.where(Alert.status != AlertStatus.RESOLVED.value)
    elif state != "all":
        query = query.where(Alert.status == state)
    if kind:
        query = query.where(Alert.kind == kind)
    if device_id:
        query = query.where(Alert.device_id == device_id)
    total = _count(session, query)
    rows = session.execute(query.order_by(Alert.id.desc()).limit(limit).offset(offset)).scalars()
    return AlertPage(items=[_public(a) for a in rows], total=total, limit=limit, offset=offset)


def _alert(session: Session, user: User, alert_id: int) -> Alert:
    alert = session.execute(_visible_alerts(user).where(Alert.id == alert_id)).scalar_one_or_none()
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert_id: no alert {alert_id}")
    return alert


@alerts_router.get("/{alert_id}", response_model=AlertPublic)
def get_alert(alert_id: int, session: SessionDep, user: CurrentUser) -> AlertPublic:
    """One alert."""
    return _public(_alert(session, user, alert_id))


@alerts_router.post("/{alert_id}/ack", response_model=AlertPublic)
def ack_alert(alert_id: int, session: SessionDep, user: AlertManager) -> AlertPublic:
    """Acknowledge an alert: someone is on it. It still resolves by itself when it clears."""
    alert = _alert(session, user, alert_id)
    if alert.status == AlertStatus.RESOLVED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert_id: alert {alert_id} is resolved")
    alert_service.acknowledge(session, alert, user)
    audit.record(
        session, action="alert.acknowledged", object_type="alert", object_id=alert_id, actor=user
    )
    return _public(alert)


# -- a device's events and telemetry series --------------------------------------------------


class EventPublic(BaseModel):
    id: str
    kind: str
    severity: str
    message: str
    data: dict[str, Any]
    ts: dt.datetime
    received_at: dt.datetime


class EventPage(BaseModel):
    items: list[EventPublic]
    total: int
    limit: int
    offset: int


@devices_router.get("/{device_id}/events", response_model=EventPage)
def list_events(
    device_id: str,
    session: SessionDep,
    _user: FleetUser,
    kind: str | None = None,
    severity: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> EventPage:
    """What the device reported happening (help button, errors, ...), newest first."""
    _device(session, device_id)
    query = select(DeviceEvent).where(DeviceEvent.device_id == device_id)
    if kind:
        query = query.where(DeviceEvent.kind == kind)
    if severity:
        query = query.where(DeviceEvent.severity == severity)
    total = _count(session, query)
    rows = session.execute(
        query.order_by(DeviceEvent.ts.desc(), DeviceEvent.id.desc()).limit(limit).offset(offset)
    ).scalars()
    items = [
        EventPublic(
            id=e.event_id,
            kind=e.kind,
            severity=e.severity,
            message=e.message,
            data=e.data or {},
            ts=e.ts,
            received_at=e.received_at,
        )
        for e in rows
    ]
    return EventPage(items=items, total=total, limit=limit, offset=offset)


class SeriesPublic(BaseModel):
    device_id: str
    since: dt.datetime
    until: dt.datetime
    series: dict[str, list[tuple[dt.datetime, float]]] = Field(
        description="metric -> [[time, value], ...], oldest first, averaged into buckets"
    )


@devices_router.get("/{device_id}/telemetry", response_model=SeriesPublic)
def device_series(
    device_id: str,
    session: SessionDep,
    _user: FleetUser,
    metric: Annotated[list[str], Query(min_length=1, max_length=20)],
    range_: Annotated[
        str, Query(alias="range", description=f"one of {', '.join(RANGES)}")
    ] = DEFAULT_RANGE,
    until: dt.datetime | None = None,
    max_points: Annotated[int, Query(ge=2, le=2000)] = 300,
) -> SeriesPublic:
    """A device's telemetry series over a range ending now (or at ``until``)."""
    _device(session, device_id)
    try:
        length = parse_range(range_)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if until is not None and until.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "until: give a time zone (e.g. Z)"
        )
    end = until or utcnow()
    start = end - length
    series = load_series(session, device_id, metric, start, end, max_points=max_points)
    return SeriesPublic(
        device_id=device_id,
        since=start,
        until=end,
        series={name: [(p.ts, p.value) for p in points] for name, points in series.items()},
    )
