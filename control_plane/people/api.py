"""The people API under /api/v1: accounts (administrators), beneficiaries, their PC and
their caregivers (administrators and coordinators; caregivers read their own people)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ..api.deps import CurrentUser, SessionDep, require_roles
from ..api.errors import problem
from ..care.access import CARE_ROLES, require_beneficiary, visible_beneficiary_ids
from ..models import Beneficiary, Device, Role, User
from . import accounts, beneficiaries
from .errors import InputError

router = APIRouter(tags=["people"])

AdminUser = Annotated[User, Depends(require_roles())]
ManagerUser = Annotated[User, Depends(require_roles(Role.COORDINATOR))]


def _reader(user: CurrentUser) -> User:
    if user.role not in CARE_ROLES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not do this")
    return user


ReaderUser = Annotated[User, Depends(_reader)]


async def input_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """InputError as problem+json, one entry per wrong field."""
    assert isinstance(exc, InputError)
    titles = {404: "Not found", 409: "Conflict"}
    return problem(
        exc.status,
        titles.get(exc.status, "Invalid request"),
        str(exc),
        errors=[{"field": p.field, "reason": p.reason} for p in exc.problems],
    )


# --- schemas ------------------------------------------------------------------------------


class UserCreate(BaseModel):
    email: str = Field(max_length=accounts.MAX_EMAIL)
    name: str = Field(max_length=accounts.MAX_NAME)
    role: Role
    locale: str = Field(default="it", description="it or en")
    password: str = Field(max_length=1000, description="the first password, given to the person")


class UserUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=accounts.MAX_NAME)
    role: Role | None = None
    locale: str | None = None
    is_active: bool | None = Field(
        default=None, description="false: no more logins, the account's tokens stop working"
    )


class PasswordSet(BaseModel):
    password: str = Field(max_length=1000)


class UserPublic(BaseModel):
    id: int
    email: str
    name: str
    role: str
    locale: str
    is_active: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, u: User) -> UserPublic:
        return cls(
            id=u.id,
            email=u.email,
            name=u.name,
            role=u.role,
            locale=u.locale,
            is_active=u.is_active,
            created_at=u.created_at,
        )


class CaregiverPublic(BaseModel):
    user_id: int
    name: str
    primary: bool
    is_active: bool


class DeviceBrief(BaseModel):
    id: str
    name: str
    online: bool
    last_seen: dt.datetime | None


class BeneficiaryCreate(BaseModel):
    name: str = Field(max_length=beneficiaries.MAX_NAME)
    timezone: str = Field(default="Europe/Rome", max_length=beneficiaries.MAX_TIMEZONE)
    address_area: str = Field(default="", max_length=beneficiaries.MAX_AREA)
    notes: str = Field(default="", max_length=beneficiaries.MAX_NOTES)
    auto_answer: bool = True
    device_id: str | None = Field(default=None, max_length=64)


class BeneficiaryUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=beneficiaries.MAX_NAME)
    timezone: str | None = Field(default=None, max_length=beneficiaries.MAX_TIMEZONE)
    address_area: str | None = Field(default=None, max_length=beneficiaries.MAX_AREA)
    notes: str | None = Field(default=None, max_length=beneficiaries.MAX_NOTES)
    auto_answer: bool | None = None
    device_id: str | None = Field(
        default=None, max_length=64, description="a free registered PC; null unlinks the PC"
    )


class BeneficiaryPublic(BaseModel):
    id: int
    name: str
    timezone: str
    address_area: str
    notes: str
    auto_answer: bool
    device_id: str | None
    device: DeviceBrief | None
    caregivers: list[CaregiverPublic]
    created_at: dt.datetime


class AssignmentCreate(BaseModel):
    user_id: int
    primary: bool = False


# --- helpers ------------------------------------------------------------------------------


def caregivers_of(session: Session, beneficiary_id: int) -> list[CaregiverPublic]:
    """The person's caregivers, the primary one first."""
    return [
        CaregiverPublic(
            user_id=a.user_id, name=a.user.name, primary=a.primary, is_active=a.user.is_active
        )
        for a in beneficiaries.assignments(session, beneficiary_id)
    ]


def beneficiary_public(session: Session, b: Beneficiary) -> BeneficiaryPublic:
    """A beneficiary with their PC's state and their caregivers."""
    device = session.get(Device, b.device_id) if b.device_id else None
    return BeneficiaryPublic(
        id=b.id,
        name=b.name,
        timezone=b.timezone,
        address_area=b.address_area,
        notes=b.notes,
        auto_answer=b.auto_answer,
        device_id=b.device_id,
        device=DeviceBrief(
            id=device.id, name=device.name, online=device.online, last_seen=device.last_seen
        )
        if device is not None
        else None,
        caregivers=caregivers_of(session, b.id),
        created_at=b.created_at,
    )


def schedule_config(request: Request) -> Any:
    """The running schedule config (None: the schedules feature is not installed)."""
    scheduler = getattr(request.app.state, "schedules", None)
    return getattr(scheduler, "config", None)


def commit_and_publish(request: Request, session: Session, device_ids: Iterable[str]) -> None:
    """Commit, then publish the desired twins that changed (never before the commit)."""
    session.commit()
    ids = sorted(set(device_ids))
    if ids:
        request.app.state.twin.publish_sync(ids)


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user_id: no account {user_id}")
    return user


def _beneficiary(session: Session, beneficiary_id: int) -> Beneficiary:
    person = session.get(Beneficiary, beneficiary_id)
    if person is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"beneficiary_id: no beneficiary {beneficiary_id}"
        )
    return person


# --- accounts -----------------------------------------------------------------------------


@router.get("/users", response_model=list[UserPublic])
def list_users(
    session: SessionDep,
    user: AdminUser,
    role: Role | None = None,
    active: Annotated[bool | None, Query()] = None,
) -> list[UserPublic]:
    """Every account (filter by role, by active or not)."""
    rows = accounts.list_users(session, role=role.value if role else None, active=active)
    return [UserPublic.of(u) for u in rows]


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, session: SessionDep, user: AdminUser) -> UserPublic:
    """A new account with its first password (never shown again)."""
    created = accounts.create_user(
        session,
        actor=user,
        email=body.email,
        name=body.name,
        role=body.role.value,
        locale=body.locale,
        password=body.password,
    )
    return UserPublic.of(created)


@router.get("/users/{user_id}", response_model=UserPublic)
def get_user(user_id: int, session: SessionDep, user: AdminUser) -> UserPublic:
    """One account."""
    return UserPublic.of(_user(session, user_id))


@router.patch("/users/{user_id}", response_model=UserPublic)
def update_user(user_id: int, body: UserUpdate, session: SessionDep, user: AdminUser) -> UserPublic:
    """Change name, role, language, or switch the account off (or on again)."""
    target = _user(session, user_id)
    changes: dict[str, Any] = {}
    for key in body.model_fields_set:
        value = getattr(body, key)
        changes[key] = value.value if isinstance(value, Role) else value
    accounts.update_user(session, actor=user, user=target, changes=changes)
    return UserPublic.of(target)


@router.put("/users/{user_id}/password", status_code=status.HTTP_204_NO_CONTENT)
def set_password(user_id: int, body: PasswordSet, session: SessionDep, user: AdminUser) -> Response:
    """Give the account a new password."""
    accounts.set_password(session, actor=user, user=_user(session, user_id), password=body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/caregivers", response_model=list[UserPublic])
def list_caregivers(session: SessionDep, user: ManagerUser) -> list[UserPublic]:
    """The active caregivers, who may be assigned to beneficiaries."""
    return [UserPublic.of(u) for u in accounts.active_caregivers(session)]


# --- beneficiaries ------------------------------------------------------------------------


@router.get("/beneficiaries", response_model=list[BeneficiaryPublic])
def list_beneficiaries(session: SessionDep, user: ReaderUser) -> list[BeneficiaryPublic]:
    """The beneficiaries you may see (caregivers: those assigned to you)."""
    ids = visible_beneficiary_ids(session, user)
    return [beneficiary_public(session, b) for b in beneficiaries.list_beneficiaries(session, ids)]


@router.post(
    "/beneficiaries", response_model=BeneficiaryPublic, status_code=status.HTTP_201_CREATED
)
def create_beneficiary(
    body: BeneficiaryCreate, request: Request, session: SessionDep, user: ManagerUser
) -> BeneficiaryPublic:
    """A new beneficiary, optionally with their PC (a free, registered one)."""
    person, devices = beneficiaries.create_beneficiary(
        session, actor=user, values=body.model_dump(), config=schedule_config(request)
    )
    commit_and_publish(request, session, devices)
    return beneficiary_public(session, person)


@router.get("/beneficiaries/{beneficiary_id}", response_model=BeneficiaryPublic)
def get_beneficiary(
    beneficiary_id: int, session: SessionDep, user: ReaderUser
) -> BeneficiaryPublic:
    """One beneficiary, with their PC and caregivers."""
    return beneficiary_public(session, require_beneficiary(session, user, beneficiary_id))


@router.patch("/beneficiaries/{beneficiary_id}", response_model=BeneficiaryPublic)
def update_beneficiary(
    beneficiary_id: int,
    body: BeneficiaryUpdate,
    request: Request,
    session: SessionDep,
    user: ManagerUser,
) -> BeneficiaryPublic:
    """Change some fields; ``device_id`` links a PC (null: none)."""
    person = _beneficiary(session, beneficiary_id)
    changes = {key: getattr(body, key) for key in body.model_fields_set}
    for key in ("name", "timezone", "auto_answer"):
        if key in changes and changes[key] is None:
            raise InputError.single(key, "must not be null")
    _changed, devices = beneficiaries.update_beneficiary(
        session, actor=user, person=person, changes=changes, config=schedule_config(request)
    )
    commit_and_publish(request, session, devices)
    return beneficiary_public(session, person)


@router.delete("/beneficiaries/{beneficiary_id}/device", response_model=BeneficiaryPublic)
def unlink_device(
    beneficiary_id: int, request: Request, session: SessionDep, user: ManagerUser
) -> BeneficiaryPublic:
    """The person no longer has a PC; it stops waking for them and becomes free."""
    person = _beneficiary(session, beneficiary_id)
    devices = beneficiaries.unlink_device(
        session, actor=user, person=person, config=schedule_config(request)
    )
    commit_and_publish(request, session, devices)
    return beneficiary_public(session, person)


# --- caregivers ---------------------------------------------------------------------------


@router.get("/beneficiaries/{beneficiary_id}/caregivers", response_model=list[CaregiverPublic])
def list_assignments(
    beneficiary_id: int, session: SessionDep, user: ReaderUser
) -> list[CaregiverPublic]:
    """The person's caregivers, the primary one first."""
    require_beneficiary(session, user, beneficiary_id)
    return caregivers_of(session, beneficiary_id)


@router.post(
    "/beneficiaries/{beneficiary_id}/caregivers",
    response_model=list[CaregiverPublic],
    status_code=status.HTTP_201_CREATED,
)
def assign_caregiver(
    beneficiary_id: int, body: AssignmentCreate, session: SessionDep, user: ManagerUser
) -> list[CaregiverPublic]:
    """Assign an active caregiver (the first one becomes the primary); the new list."""
    person = _beneficiary(session, beneficiary_id)
    beneficiaries.assign_caregiver(
        session, actor=user, person=person, user_id=body.user_id, primary=body.primary
    )
    return caregivers_of(session, beneficiary_id)


@router.put(
    "/beneficiaries/{beneficiary_id}/caregivers/{user_id}/primary",
    response_model=list[CaregiverPublic],
)
def set_primary(
    beneficiary_id: int, user_id: int, session: SessionDep, user: ManagerUser
) -> list[CaregiverPublic]:
    """Make this caregiver the primary one (one per beneficiary); the new list."""
    person = _beneficiary(session, beneficiary_id)
    beneficiaries.set_primary(session, actor=user, person=person, user_id=user_id)
    return caregivers_of(session, beneficiary_id)


@router.delete(
    "/beneficiaries/{beneficiary_id}/caregivers/{user_id}", status_code=status.HTTP_204_NO_CONTENT
)
def remove_caregiver(
    beneficiary_id: int, user_id: int, session: SessionDep, user: ManagerUser
) -> Response:
    """The caregiver no longer looks after (nor sees) this person."""
    person = _beneficiary(session, beneficiary_id)
    beneficiaries.remove_caregiver(session, actor=user, person=person, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
