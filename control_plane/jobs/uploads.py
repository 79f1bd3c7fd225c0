"""What devices send over HTTPS for their jobs: diagnostics reports, log bundles, new
credentials; and the fleet's view of the reports and logs. Plus saved device queries.

Devices have MQTT credentials, not API tokens. Rather than hand every device a second secret,
these routes take HTTP Basic with the device id and its MQTT password, checked against the
same Mosquitto hash the broker uses (``devices.mqtt_password_hash``). Why HTTP and not MQTT:
a report or a log bundle is larger than the contract's 64 KiB payload limit, and a job's
``details`` are short strings by design.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import audit
from ..api.deps import FleetUser, SessionDep, SettingsDep, require_roles
from ..db import utcnow
from ..devices import sync_broker
from ..models import Device, Role, User
from ..security import mosquitto_hash, verify_mosquitto_hash
from .documents import JobSpecError
from .models import DeviceQuery, DiagnosticsReport, LogBundle
from .service import rowcount
from .targets import validate_filter

router = APIRouter(tags=["jobs"])

MAX_REPORT_BYTES = 2 * 1024 * 1024
MAX_LOG_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_LOG_TEXT_BYTES = 50 * 1024 * 1024  # decompressed: refuse gzip bombs
MIN_PASSWORD_CHARS = 24

_basic = HTTPBasic(auto_error=False, realm="difronte-device")


def current_device(
    device_id: str,
    session: SessionDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> Device:
    """The device in the path, authenticated by its id and MQTT password (HTTP Basic)."""
    challenge = {"WWW-Authenticate": 'Basic realm="difronte-device"'}
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "device authentication required: HTTP Basic with the device id and MQTT password",
            headers=challenge,
        )
    if credentials.username != device_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"the credentials of {credentials.username!r} may not act for {device_id!r}",
        )
    device = session.get(Device, device_id)
    if (
        device is None
        or device.revoked_at is not None
        or not verify_mosquitto_hash(credentials.password, device.mqtt_password_hash)
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong device id or password", headers=challenge
        )
    return device


CurrentDevice = Annotated[Device, Depends(current_device)]


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"body: {declared} bytes, more than {limit}"
        )
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body: more than {limit} bytes")
    return bytes(data)


def _store(session: Session, row: DiagnosticsReport | LogBundle) -> None:
    # Database work off the event loop: the upload routes are async only to read the body.
    session.add(row)
    session.flush()


def _fleet_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device with id {device_id!r}")
    return device


# --- diagnostics reports -----------------------------------------------------------------


class ReportStored(BaseModel):
    id: int
    device_id: str
    received_at: dt.datetime


class ReportSummary(ReportStored):
    execution_id: str | None
    generated_at: dt.datetime | None
    problems: dict[str, Any]


class ReportPublic(ReportSummary):
    report: dict[str, Any]


def _summary(row: DiagnosticsReport) -> dict[str, Any]:
    problems = row.report.get("problems")
    return {
        "id": row.id,
        "device_id": row.device_id,
        "received_at": row.received_at,
        "execution_id": row.execution_id,
        "generated_at": row.generated_at,
        "problems": problems if isinstance(problems, dict) else {},
    }


@router.post(
    "/devices/{device_id}/diagnostics",
    status_code=status.HTTP_201_CREATED,
    response_model=ReportStored,
)
async def upload_diagnostics(
    request: Request,
    device: CurrentDevice,
    session: SessionDep,
    execution_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ReportStored:
    """A device stores its diagnostics report (JSON object, at most 2 MiB)."""
    raw = await _body(request, MAX_REPORT_BYTES)
    try:
        report = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"body: not valid JSON: {exc}"
        ) from None
    if not isinstance(report, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "body: must be a JSON object")
    generated = report.get("generated_at")
    generated_at = None
    if isinstance(generated, int | float) and not isinstance(generated, bool) and generated > 0:
        try:
            generated_at = dt.datetime.fromtimestamp(float(generated), dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "generated_at: not a valid time"
            ) from None
    row = DiagnosticsReport(
        device_id=device.id,
        execution_id=execution_id,
        received_at=utcnow(),
        generated_at=generated_at,
        report=report,
    )
    await run_in_threadpool(_store, session, row)
    return ReportStored(id=row.id, device_id=row.device_id, received_at=row.received_at)


@router.get("/devices/{device_id}/diagnostics", response_model=list[ReportSummary])
def list_diagnostics(
    device_id: str,
    session: SessionDep,
    _user: FleetUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[ReportSummary]:
    """A device's diagnostics reports, newest first (without the report bodies)."""
    _fleet_device(session, device_id)
    rows = session.execute(
        select(DiagnosticsReport)
        .where(DiagnosticsReport.device_id == device_id)
        .order_by(DiagnosticsReport.received_at.desc(), DiagnosticsReport.id.desc())
        .limit(limit)
    ).scalars()
    return [ReportSummary(**_summary(r)) for r in rows]


def latest_report(session: Session, device_id: str) -> DiagnosticsReport | None:
    """The newest diagnostics report of a device (for the workshop), or None."""
    return session.execute(
        select(DiagnosticsReport)
        .where(DiagnosticsReport.device_id == device_id)
        .order_by(DiagnosticsReport.received_at.desc(), DiagnosticsReport.id.desc())
        .limit(1)
    ).scalar_one_or_none()


@router.get("/devices/{device_id}/diagnostics/{report_id}", response_model=ReportPublic)
def get_diagnostics(
    device_id: str, report_id: str, session: SessionDep, _user: FleetUser
) -> ReportPublic:
    """One report in full; ``latest`` for the newest."""
    _fleet_device(session, device_id)
    if report_id == "latest":
        row = latest_report(session, device_id)
    elif report_id.isdigit():
        row = session.get(DiagnosticsReport, int(report_id))
    else:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "report_id: a number or 'latest'"
        )
    if row is None or row.device_id != device_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report {report_id} for {device_id}")
    return ReportPublic(**_summary(row), report=row.report)


# --- log bundles -------------------------------------------------------------------------


class LogBundlePublic(BaseModel):
    id: int
    device_id: str
    execution_id: str | None
    received_at: dt.datetime
    size: int


@router.post(
    "/devices/{device_id}/logs",
    status_code=status.HTTP_201_CREATED,
    response_model=LogBundlePublic,
)
async def upload_logs(
    request: Request,
    device: CurrentDevice,
    session: SessionDep,
    execution_id: Annotated[str | None, Query(max_length=64)] = None,
) -> LogBundlePublic:
    """A device stores collected logs: gzip-compressed text, at most 10 MiB."""
    raw = await _body(request, MAX_LOG_UPLOAD_BYTES)
    try:
        # Decompress once, bounded, to refuse garbage and gzip bombs before storing.
        inflater = zlib.decompressobj(wbits=31)
        text = inflater.decompress(raw, MAX_LOG_TEXT_BYTES)
        if inflater.unconsumed_tail:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"body: more than {MAX_LOG_TEXT_BYTES} bytes uncompressed",
            )
        if not inflater.eof:
            raise zlib.error("truncated")
    except zlib.error as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"body: not gzip data: {exc}"
        ) from None
    del text
    row = LogBundle(
        device_id=device.id,
        execution_id=execution_id,
        received_at=utcnow(),
        size=len(raw),
        content=raw,
    )
    await run_in_threadpool(_store, session, row)
    return LogBundlePublic(
        id=row.id,
        device_id=row.device_id,
        execution_id=row.execution_id,
        received_at=row.received_at,
        size=row.size,
    )


@router.get("/devices/{device_id}/logs", response_model=list[LogBundlePublic])
def list_logs(
    device_id: str,
    session: SessionDep,
    _user: FleetUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[LogBundlePublic]:
    """A device's log bundles, newest first."""
    _fleet_device(session, device_id)
    rows = session.execute(
        select(
            LogBundle.id,
            LogBundle.device_id,
            LogBundle.execution_id,
            LogBundle.received_at,
            LogBundle.size,
        )
        .where(LogBundle.device_id == device_id)
        .order_by(LogBundle.received_at.desc(), LogBundle.id.desc())
        .limit(limit)
    ).all()
    return [
        LogBundlePublic(id=i, device_id=d, execution_id=e, received_at=r, size=s)
        for i, d, e, r, s in rows
    ]


@router.get(
    "/devices/{device_id}/logs/{bundle_id}",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def get_logs(device_id: str, bundle_id: int, session: SessionDep, _user: FleetUser) -> Response:
    """One log bundle as plain text."""
    row = session.get(LogBundle, bundle_id)
    if row is None or row.device_id != device_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no log bundle {bundle_id} for {device_id}")
    return Response(
        gzip.decompress(row.content),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{device_id}-logs-{row.id}.txt"'},
    )


# --- credentials rotation ---------------------------------------------------------------


class NewCredentials(BaseModel):
    password: str = Field(min_length=MIN_PASSWORD_CHARS, max_length=256)


@router.post("/devices/{device_id}/credentials", status_code=status.HTTP_204_NO_CONTENT)
def rotate_credentials(
    body: NewCredentials, device: CurrentDevice, session: SessionDep, settings: SettingsDep
) -> Response:
    """A device replaces its MQTT password (authenticated with the current one).

    Idempotent: sending the same new password again, authenticated with it, changes nothing,
    so a device that lost the answer can simply ask again with either password.
    """
    if not body.password.isprintable() or ":" in body.password:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "password: printable characters only, and no ':'",
        )
    if not verify_mosquitto_hash(body.password, device.mqtt_password_hash):
        device.mqtt_password_hash = mosquitto_hash(body.password)
        session.flush()
        # The broker reads its password file again (SIGHUP): the new password works from the
        # next connect, and the connection in use stays up.
        sync_broker(session, settings)
        audit.record(
            session,
            action="device.credentials.rotate",
            object_type="device",
            object_id=device.id,
            actor=f"device:{device.id}",
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- saved device queries ---------------------------------------------------------------


class DeviceQueryCreate(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")
    description: str = Field(default="", max_length=1000)
    filter: dict[str, Any]


class DeviceQueryPublic(BaseModel):
    id: int
    name: str
    description: str
    filter: dict[str, Any]
    created_at: dt.datetime


JobAdmin = Annotated[User, Depends(require_roles(Role.FLEET_MANAGER))]


@router.post(
    "/device-queries", status_code=status.HTTP_201_CREATED, response_model=DeviceQueryPublic
)
def create_query(body: DeviceQueryCreate, session: SessionDep, user: JobAdmin) -> DeviceQueryPublic:
    """Save a device filter under a name, to target jobs with."""
    try:
        flt = validate_filter(body.filter)
    except JobSpecError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if session.execute(select(DeviceQuery.id).where(DeviceQuery.name == body.name)).first():
        raise HTTPException(status.HTTP_409_CONFLICT, f"name: {body.name!r} exists already")
    row = DeviceQuery(
        name=body.name,
        description=body.description,
        filter=flt.model_dump(exclude_none=True),
        created_by=user.id,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        action="device_query.create",
        object_type="device_query",
        object_id=row.id,
        actor=user,
    )
    return DeviceQueryPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        filter=row.filter,
        created_at=row.created_at,
    )


@router.get("/device-queries", response_model=list[DeviceQueryPublic])
def list_queries(session: SessionDep, _user: FleetUser) -> list[DeviceQueryPublic]:
    """Every saved device query."""
    rows = session.execute(select(DeviceQuery).order_by(DeviceQuery.name)).scalars()
    return [
        DeviceQueryPublic(
            id=r.id,
            name=r.name,
            description=r.description,
            filter=r.filter,
            created_at=r.created_at,
        )
        for r in rows
    ]


@router.delete("/device-queries/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_query(name: str, session: SessionDep, user: JobAdmin) -> Response:
    """Forget a saved query (jobs already created keep their executions)."""
    done = rowcount(session, delete(DeviceQuery).where(DeviceQuery.name == name))
    if not done:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no saved query named {name!r}")
    audit.record(
        session,
        action="device_query.delete",
        object_type="device_query",
        object_id=name,
        actor=user,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
