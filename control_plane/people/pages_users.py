"""Console pages of accounts, for administrators: who may log in, with which role and
language; new accounts and new passwords. A password typed here is never shown again, not
even when the form comes back with a problem."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Response
from sqlalchemy.orm import Session

from ..api.deps import SessionDep
from ..models import Role, User
from ..web import N_, Page, PageError, console_router, page_for_roles, register_nav
from . import accounts
from .errors import InputError
from .pages import field_errors

router = console_router(prefix="/people/users")

register_nav(
    "/people/users",
    N_("Accounts"),
    [],  # administrators only (they see every page)
    description_msgid=N_("Who can log in to the console, with which role; new passwords."),
    order=90,
)

AdminPage = Annotated[Page, Depends(page_for_roles())]

MESSAGES: dict[str, str] = {
    "email": N_("Write a valid e-mail address, for example anna.rossi@example.org."),
    "email_taken": N_("There is already an account with this e-mail address."),
    "name": N_("Write the name (at most 200 characters)."),
    "role": N_("Choose a role from the list."),
    "own_role": N_("You cannot change your own role: ask another administrator."),
    "locale": N_("Choose Italian or English."),
    "is_active": N_("Tick the box, or leave it empty."),
    "own_active": N_("You cannot switch off your own account."),
    "password": N_("Write a password."),
    "password_short": N_("The password must be at least %(min)s characters long."),
    "password_long": N_("The password can be at most 200 characters long."),
    "password_chars": N_("The password cannot be only spaces or contain invisible characters."),
    "password_email": N_("The password cannot be the e-mail address."),
}
LANGUAGE_LABELS = {"it": "Italiano", "en": "English"}


def _roles(page: Page) -> list[tuple[str, str]]:
    return [(r.value, page.role_label(r.value)) for r in Role]


def _account(page: Page, db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise PageError(page, 404, N_("Not found"), N_("This account does not exist."))
    return user


@router.get("")
def users(page: AdminPage, db: SessionDep, role: str = "") -> Response:
    """Every account, optionally of one role."""
    chosen = role if role in accounts.ROLES else ""
    rows = accounts.list_users(db, role=chosen or None)
    return page.render(
        "people/users.html",
        rows=rows,
        roles=_roles(page),
        chosen_role=chosen,
        languages=LANGUAGE_LABELS,
    )


@router.get("/new")
def new_user(page: AdminPage) -> Response:
    """The form for a new account."""
    form = {"email": "", "name": "", "role": Role.CAREGIVER.value, "locale": "it"}
    return page.render(
        "people/user_new.html",
        form=form,
        errors={},
        roles=_roles(page),
        languages=LANGUAGE_LABELS,
        min_password=accounts.MIN_PASSWORD,
    )


@router.post("/new")
def create_user(
    page: AdminPage,
    db: SessionDep,
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """Save a new account with the password the administrator typed."""
    assert page.user is not None
    form = {"email": email, "name": name, "role": role, "locale": locale}
    try:
        user = accounts.create_user(
            db,
            actor=page.user,
            email=email,
            name=name,
            role=role,
            locale=locale,
            password=password,
        )
    except InputError as exc:
        db.rollback()
        return page.render(
            "people/user_new.html",
            status_code=exc.status,
            form=form,
            errors=field_errors(page, exc, MESSAGES),
            roles=_roles(page),
            languages=LANGUAGE_LABELS,
            min_password=accounts.MIN_PASSWORD,
        )
    page.flash(
        page._(
            "The account of %(name)s is ready. Give them the password in person.", name=user.name
        )
    )
    return page.redirect("/people/users")


def _user_context(
    page: Page,
    user: User,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    password_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "account": user,
        "form": form
        or {
            "name": user.name,
            "role": user.role,
            "locale": user.locale,
            "is_active": user.is_active,
        },
        "errors": errors or {},
        "password_errors": password_errors or {},
        "roles": _roles(page),
        "languages": LANGUAGE_LABELS,
        "min_password": accounts.MIN_PASSWORD,
    }


@router.get("/{user_id}")
def user_page(user_id: int, page: AdminPage, db: SessionDep) -> Response:
    """One account: its name, role, language and state, and a new password."""
    return page.render("people/user.html", **_user_context(page, _account(page, db, user_id)))


@router.post("/{user_id}")
def update_user(
    user_id: int,
    page: AdminPage,
    db: SessionDep,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "",
    is_active: Annotated[str, Form()] = "",
) -> Response:
    """Save the account's name, role, language and state."""
    assert page.user is not None
    user = _account(page, db, user_id)
    form = {"name": name, "role": role, "locale": locale, "is_active": bool(is_active)}
    try:
        accounts.update_user(db, actor=page.user, user=user, changes=form)
    except InputError as exc:
        db.rollback()
        user = _account(page, db, user_id)
        return page.render(
            "people/user.html",
            status_code=exc.status,
            **_user_context(page, user, form=form, errors=field_errors(page, exc, MESSAGES)),
        )
    page.flash(page._("The changes are saved."))
    return page.redirect(f"/people/users/{user.id}")


@router.post("/{user_id}/password")
def set_password(
    user_id: int,
    page: AdminPage,
    db: SessionDep,
    password: Annotated[str, Form()] = "",
) -> Response:
    """Give the account a new password."""
    assert page.user is not None
    user = _account(page, db, user_id)
    try:
        accounts.set_password(db, actor=page.user, user=user, password=password)
    except InputError as exc:
        db.rollback()
        user = _account(page, db, user_id)
        return page.render(
            "people/user.html",
            status_code=exc.status,
            **_user_context(page, user, password_errors=field_errors(page, exc, MESSAGES)),
        )
    page.flash(page._("The new password is saved. Give it to %(name)s in person.", name=user.name))
    return page.redirect(f"/people/users/{user.id}")
