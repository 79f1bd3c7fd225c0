"""FastAPI dependencies: database session, settings, the person asking."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Settings
from ..db import utcnow
from ..models import ApiToken, Role, User
from ..security import token_hash

_bearer = HTTPBearer(auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A database session committed when the request succeeds."""
    factory = request.app.state.sessionmaker
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


def user_from_token(session: Session, token: str) -> User | None:
    """The active user owning ``token``, or None."""
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == token_hash(token))
    ).scalar_one_or_none()
    if row is None:
        return None
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if not row.user.is_active:
        return None
    row.last_used_at = now
    return row.user


def get_current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The person behind the bearer token (or the console's session cookie)."""
    user: User | None = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        user = user_from_token(session, credentials.credentials)
    else:
        cookie_user = getattr(request.state, "console_user_id", None)
        if cookie_user is not None:
            user = session.get(User, cookie_user)
    if user is None or not user.is_active:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="authentication required: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[User], User]:
    """A dependency that admits only the given roles (admins always)."""
    allowed = {r.value for r in roles} | {Role.ADMIN.value}

    def _check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"your role ({user.role}) may not do this",
            )
        return user

    return _check


FleetUser = Annotated[User, Depends(require_roles(Role.FLEET_MANAGER, Role.TECHNICIAN))]
