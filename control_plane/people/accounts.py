"""Accounts: who may log in, with which role and language. Every change is audited.

The checks live here, so the API and the console refuse the same things with the same
field names. Nothing is changed until every field has been checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..models import ApiToken, Role, User
from ..security import hash_password
from .errors import Problems

LOCALES = ("it", "en")
ROLES = tuple(r.value for r in Role)
MAX_EMAIL = 254
MAX_NAME = 200
# The console's login reads at most 200 characters of a password (web/routes/auth.py).
MIN_PASSWORD = 10
MAX_PASSWORD = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USER_FIELDS = ("name", "role", "locale", "is_active")


def normalize_email(email: str) -> str:
    """The stored form of an e-mail address: trimmed, lower case (one account per address)."""
    return email.strip().lower()


def email_taken(session: Session, email: str, *, except_id: int | None = None) -> User | None:
    """The account already using ``email`` (in any letter case), if any."""
    query = select(User).where(func.lower(User.email) == normalize_email(email))
    if except_id is not None:
        query = query.where(User.id != except_id)
    return session.execute(query).scalars().first()


def _check_password(problems: Problems, password: str, email: str = "") -> None:
    if len(password) < MIN_PASSWORD:
        problems.add(
            "password",
            f"at least {MIN_PASSWORD} characters",
            code="password_short",
            min=MIN_PASSWORD,
        )
    elif len(password) > MAX_PASSWORD:
        problems.add("password", f"at most {MAX_PASSWORD} characters", code="password_long")
    elif not password.strip() or not password.isprintable():
        problems.add("password", "printable characters, not only spaces", code="password_chars")
    elif email and password.strip().lower() == normalize_email(email):
        problems.add("password", "must not be the e-mail address", code="password_email")


def _check_name(problems: Problems, name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        problems.add("name", f"1 to {MAX_NAME} characters")
    return name


def _check_role(problems: Problems, role: str) -> None:
    if role not in ROLES:
        problems.add("role", f"one of {', '.join(ROLES)}")


def _check_locale(problems: Problems, locale: str) -> None:
    if locale not in LOCALES:
        problems.add("locale", "it or en")


def list_users(
    session: Session, *, role: str | None = None, active: bool | None = None
) -> list[User]:
    """Accounts by name, optionally only one role or only (in)active ones."""
    query = select(User).order_by(func.lower(User.name), User.id)
    if role is not None:
        query = query.where(User.role == role)
    if active is not None:
        query = query.where(User.is_active.is_(active))
    return list(session.execute(query).scalars())


def create_user(
    session: Session,
    *,
    actor: User,
    email: str,
    name: str,
    role: str,
    locale: str,
    password: str,
) -> User:
    """A new account; InputError naming each wrong field (nothing saved then)."""
    problems = Problems()
    address = normalize_email(email)
    if not _EMAIL.match(address) or len(address) > MAX_EMAIL:
        problems.add("email", "a valid e-mail address, like name@example.org")
    elif email_taken(session, address) is not None:
        problems.add("email", f"{address} already has an account", code="email_taken", status=409)
    name = _check_name(problems, name)
    _check_role(problems, role)
    _check_locale(problems, locale)
    _check_password(problems, password, address)
    problems.raise_if_any()
    user = User(
        email=address,
        name=name,
        role=role,
        locale=locale,
        is_active=True,
        password_hash=hash_password(password),
    )
    session.add(user)
    _flush_or_email_taken(session, address)
    audit.record(
        session,
        action="user.create",
        object_type="user",
        object_id=user.id,
        actor=actor,
        data={"email": address, "name": name, "role": role, "locale": locale},
    )
    return user


def _flush_or_email_taken(session: Session, address: str) -> None:
    # Two admins creating the same address at once: the unique index decides.
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        problems = Problems()
        problems.add("email", f"{address} already has an account", code="email_taken", status=409)
        problems.raise_if_any()


def update_user(
    session: Session, *, actor: User, user: User, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Change name, role, language or state; returns what changed (before, after).

    A deactivated account can no longer log in and its bearer tokens stop working at once
    (both check ``is_active``). Administrators cannot lock themselves out.
    """
    problems = Problems()
    values: dict[str, Any] = {}
    for key in changes:
        if key not in USER_FIELDS:
            problems.add(key, "cannot be changed here")
    if "name" in changes:
        values["name"] = _check_name(problems, str(changes["name"] or ""))
    if "role" in changes:
        values["role"] = str(changes["role"] or "")
        _check_role(problems, values["role"])
        if user.id == actor.id and values["role"] != user.role:
            problems.add("role", "you cannot change your own role", code="own_role")
    if "locale" in changes:
        values["locale"] = str(changes["locale"] or "")
        _check_locale(problems, values["locale"])
    if "is_active" in changes:
        values["is_active"] = changes["is_active"]
        if not isinstance(values["is_active"], bool):
            problems.add("is_active", "true or false")
        elif user.id == actor.id and not values["is_active"]:
            problems.add("is_active", "you cannot deactivate your own account", code="own_active")
    problems.raise_if_any()
    changed = {
        key: [getattr(user, key), value]
        for key, value in values.items()
        if getattr(user, key) != value
    }
    for key, (_before, after) in changed.items():
        setattr(user, key, after)
    if changed:
        session.flush()
        audit.record(
            session,
            action="user.update",
            object_type="user",
            object_id=user.id,
            actor=actor,
            data=changed,
        )
    return changed


def set_password(session: Session, *, actor: User, user: User, password: str) -> None:
    """Give the account a new password (the audit records that it happened, not what)."""
    problems = Problems()
    _check_password(problems, password, user.email)
    problems.raise_if_any()
    user.password_hash = hash_password(password)
    # A new password is given when the old one may be known to someone else: the bearer tokens
    # made with it stop too (programs log in again).
    revoked = session.scalar(
        select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)
    )
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.flush()
    audit.record(
        session,
        action="user.password_set",
        object_type="user",
        object_id=user.id,
        actor=actor,
        data={"tokens_revoked": revoked} if revoked else None,
    )


def active_caregivers(session: Session) -> list[User]:
    """Everyone who may be assigned to a beneficiary: active accounts with the caregiver role."""
    return list_users(session, role=Role.CAREGIVER.value, active=True)
