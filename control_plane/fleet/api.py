"""Enrollment and alert routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from .. import alerts as alert_service
from .. import audit
from ..api.deps import CurrentUser, FleetUser, SessionDep, SettingsDep
from ..models import Alert, AlertStatus, Role
from .enrollment import EnrollmentRefused, create_token, enroll

router = APIRouter(tags=["enrollment"])
alerts_router = APIRouter(prefix="/alerts", tags=["alerts"])


class TokenCreate(BaseModel):
    device_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")
    name: str = Field(default="", max_length=200)
    group: str = Field(default="", max_length=100)
    ttl_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 30)


class TokenCreated(BaseModel):
    token: str = Field(description="shown only once; type it on the PC with difronte-edge enroll")
    device_id: str
    expires_at: dt.datetime


class EnrollRequest(BaseModel):
    token: str = Field(min_length=10, max_length=200)


class EnrollResponse(BaseModel):
    device_id: str
    mqtt_host: str
    mqtt_port: int
    mqtt_password: str
    tls_ca_pem: str | None


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
    return TokenCreated(token=secret, device_id=token.device_id, expires_at=token.expires_at)


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


def _public(a: Alert) -> AlertPublic:
    return AlertPublic.model_validate(a, from_attributes=True)


@alerts_router.get("", response_model=AlertPage)
def list_alerts(
    session: SessionDep,
    user: CurrentUser,
    state: Annotated[
        str | None, Query(alias="status", pattern="^(open|acknowledged|resolved|active)$")
    ] = "active",
    kind: str | None = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlertPage:
    """Alerts, newest first ("active" = open or acknowledged). Device alerts are for the fleet."""
    if user.role not in {Role.ADMIN, Role.FLEET_MANAGER, Role.TECHNICIAN, Role.COORDINATOR}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not do this")
    q = select(Alert)
    if state == "active":
        q = q.where(Alert.status != AlertStatus.RESOLVED.value)
    elif state is not None:
        q = q.where(Alert.status == state)
    if kind:
        q = q.where(Alert.kind == kind)
    if device_id:
        q = q.where(Alert.device_id == device_id)
    total = session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    rows = session.execute(q.order_by(Alert.id.desc()).limit(limit).offset(offset)).scalars()
    return AlertPage(items=[_public(a) for a in rows], total=total)


@alerts_router.post("/{alert_id}/ack", response_model=AlertPublic)
def ack_alert(alert_id: int, session: SessionDep, user: FleetUser) -> AlertPublic:
    """Acknowledge an alert: someone is on it."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    alert_service.acknowledge(session, alert, user)
    audit.record(
        session, action="alert.acknowledged", object_type="alert", object_id=alert_id, actor=user
    )
    return _public(alert)
