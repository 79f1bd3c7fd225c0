"""The device registry: register, list, inspect, revoke."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from ... import audit
from ...devices import DeviceExists, create_device, revoke_device
from ...models import Device, IngestError
from ...twin import TwinError, set_section
from ..deps import FleetUser, SessionDep, SettingsDep

router = APIRouter(prefix="/devices", tags=["devices"])


class DeviceCreate(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$", description="device id = MQTT username")
    name: str = Field(default="", max_length=200)
    group: str = Field(default="", max_length=100)


class DevicePublic(BaseModel):
    id: str
    name: str
    group: str
    created_at: dt.datetime
    revoked: bool
    online: bool
    session: int
    last_seen: dt.datetime | None
    agent_version: str
    boot_reason: str
    telemetry_seq: int
    last_telemetry: dict[str, Any] | None
    last_telemetry_at: dt.datetime | None
    reported: dict[str, Any] | None
    rejected_count: int

    @classmethod
    def of(cls, d: Device) -> DevicePublic:
        return cls(
            id=d.id,
            name=d.name,
            group=d.group,
            created_at=d.created_at,
            revoked=d.revoked_at is not None,
            online=d.online,
            session=d.session,
            last_seen=d.last_seen,
            agent_version=d.agent_version,
            boot_reason=d.boot_reason,
            telemetry_seq=d.telemetry_seq,
            last_telemetry=d.last_telemetry,
            last_telemetry_at=d.last_telemetry_at,
            reported=d.reported,
            rejected_count=d.rejected_count,
        )


class DeviceCreated(DevicePublic):
    mqtt_username: str
    mqtt_password: str = Field(description="shown only once")


class DevicePage(BaseModel):
    items: list[DevicePublic]
    total: int
    limit: int
    offset: int


class IngestErrorPublic(BaseModel):
    topic: str
    field: str
    reason: str
    at: dt.datetime


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DeviceCreated)
def register(
    body: DeviceCreate, session: SessionDep, settings: SettingsDep, _user: FleetUser
) -> DeviceCreated:
    """Register a device and issue its broker credentials."""
    try:
        device, password = create_device(
            session, settings, device_id=body.id, name=body.name, group=body.group
        )
    except DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    public = DevicePublic.of(device).model_dump()
    return DeviceCreated(**public, mqtt_username=device.id, mqtt_password=password)


@router.get("", response_model=DevicePage)
def list_devices(
    session: SessionDep,
    _user: FleetUser,
    group: str | None = None,
    online: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DevicePage:
    """Every device, filtered by group and online state, paginated."""
    query = select(Device)
    if group is not None:
        query = query.where(Device.group == group)
    if online is not None:
        query = query.where(Device.online.is_(online))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(Device.id).limit(limit).offset(offset)).scalars()
    return DevicePage(
        items=[DevicePublic.of(d) for d in rows], total=total, limit=limit, offset=offset
    )


def _get(session: SessionDep, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device with id {device_id!r}")
    return device


@router.get("/{device_id}", response_model=DevicePublic)
def get_device(device_id: str, session: SessionDep, _user: FleetUser) -> DevicePublic:
    """One device's state."""
    return DevicePublic.of(_get(session, device_id))


@router.post("/{device_id}/revoke", response_model=DevicePublic)
def revoke(
    device_id: str, session: SessionDep, settings: SettingsDep, user: FleetUser
) -> DevicePublic:
    """Remove the device's broker credentials."""
    device = _get(session, device_id)
    revoke_device(session, settings, device)
    audit.record(
        session, action="device.revoked", object_type="device", object_id=device_id, actor=user
    )
    return DevicePublic.of(device)


@router.get("/{device_id}/ingest-errors", response_model=list[IngestErrorPublic])
def ingest_errors(device_id: str, session: SessionDep, _user: FleetUser) -> list[IngestErrorPublic]:
    """The newest messages from this device that were refused, and why."""
    _get(session, device_id)
    rows = session.execute(
        select(IngestError)
        .where(IngestError.device_id == device_id)
        .order_by(IngestError.id.desc())
        .limit(50)
    ).scalars()
    return [IngestErrorPublic(topic=r.topic, field=r.field, reason=r.reason, at=r.at) for r in rows]


class TwinPublic(BaseModel):
    desired_version: int
    desired: dict[str, Any]
    reported: dict[str, Any] | None
    reported_at: dt.datetime | None


@router.get("/{device_id}/twin", response_model=TwinPublic)
def get_twin(device_id: str, session: SessionDep, _user: FleetUser) -> TwinPublic:
    """Desired and reported state side by side."""
    d = _get(session, device_id)
    return TwinPublic(
        desired_version=d.desired_version,
        desired=d.desired or {},
        reported=d.reported,
        reported_at=d.reported_at,
    )


@router.put("/{device_id}/twin/desired/{section}", response_model=TwinPublic)
def put_desired_section(
    device_id: str,
    section: str,
    body: dict[str, Any],
    request: Request,
    session: SessionDep,
    user: FleetUser,
) -> TwinPublic:
    """Set one section of the desired twin (validated by the contract) and publish it."""
    device = _get(session, device_id)
    try:
        set_section(session, device, section, body)
    except TwinError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    audit.record(
        session,
        action="twin.set",
        object_type="device",
        object_id=device_id,
        actor=user,
        data={"section": section},
    )
    session.commit()
    request.app.state.twin.publish_sync([device_id])
    return get_twin(device_id, session, user)
