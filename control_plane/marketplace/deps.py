"""Who is asking, for marketplace routes: some are public, most need a role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..api.deps import SessionDep, get_current_user, require_roles
from ..models import Role, User

_bearer = HTTPBearer(auto_error=False)


def get_optional_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User | None:
    """The person asking if they sent a valid token or console cookie, else None (public).

    A token that is sent but wrong is not silently ignored: it fails as on private routes.
    """
    if credentials is not None or getattr(request.state, "console_user_id", None) is not None:
        return get_current_user(request, session, credentials)
    return None


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
MarketAdmin = Annotated[User, Depends(require_roles(Role.MARKET_ADMIN))]
