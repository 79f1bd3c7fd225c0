"""Bearer tokens for programs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from ...models import ApiToken, User
from ...security import new_token, token_hash, verify_password
from ..deps import CurrentUser, SessionDep

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenRequest(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=200)
    name: str = Field(default="api", max_length=100)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"


class Me(BaseModel):
    id: int
    email: str
    name: str
    role: str


@router.post("/token", response_model=TokenPublic)
def create_token(body: TokenRequest, session: SessionDep) -> TokenPublic:
    """Exchange an e-mail and password for a bearer token."""
    # As the console's login: an e-mail address is the same whatever its capitals.
    email = body.email.strip().lower()
    user = session.execute(select(User).where(func.lower(User.email) == email)).scalar_one_or_none()
    if user is None or not user.is_active or not verify_password(body.password, user.password_hash):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong e-mail or password")
    token = new_token()
    session.add(ApiToken(user_id=user.id, token_hash=token_hash(token), name=body.name))
    return TokenPublic(access_token=token)


@router.get("/me", response_model=Me)
def me(user: CurrentUser) -> Me:
    """Who the token belongs to."""
    return Me(id=user.id, email=user.email, name=user.name, role=user.role)
