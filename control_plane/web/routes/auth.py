"""Logging in and out, and choosing the language."""

from __future__ import annotations

import logging
import math
import secrets
from functools import cache
from typing import Annotated

from fastapi import Form, Request, Response
from sqlalchemy import func, select

from ...api.deps import SessionDep
from ...models import User
from ...security import hash_password, verify_password
from ..console import LANG_COOKIE
from ..i18n import LANGUAGES, N_
from ..pages import PageDep, PageError, console_router, safe_next

log = logging.getLogger(__name__)

router = console_router()

_LANG_COOKIE_AGE = 365 * 24 * 3600
_MAX_EMAIL = 254
_MAX_PASSWORD = 200


@cache
def _dummy_hash() -> str:
    # Checked against when the e-mail is unknown, so a wrong e-mail takes as long as a wrong
    # password and the timing does not tell who has an account.
    return hash_password(secrets.token_urlsafe(16))


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
def login_form(page: PageDep, next: str = "/") -> Response:
    """The login form (or straight on, when already logged in)."""
    target = safe_next(next)
    if page.viewer is not None:
        return page.redirect(target)
    return page.render("login.html", next=target, email="", error="")


@router.post("/login")
def login(
    request: Request,
    page: PageDep,
    db: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the e-mail and password; start the session or say what was wrong."""
    target = safe_next(next)
    email = email.strip()[:_MAX_EMAIL]

    def refuse(message: str, status_code: int = 200, **headers: str) -> Response:
        return page.render(
            "login.html",
            status_code=status_code,
            headers=headers or None,
            next=target,
            email=email,
            error=message,
        )

    if not email:
        return refuse(page._("Write your e-mail address."))
    if not password:
        return refuse(page._("Write your password."))
    throttle = page.console.throttle
    address = _client_address(request)
    wait = throttle.retry_after(email, address)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        message = page.ngettext(
            "Too many wrong attempts. Try again in %(num)d minute.",
            "Too many wrong attempts. Try again in %(num)d minutes.",
            minutes,
        )
        return refuse(message, 429, **{"Retry-After": str(math.ceil(wait))})
    user = db.execute(
        select(User).where(func.lower(User.email) == email.lower())
    ).scalar_one_or_none()
    stored = user.password_hash if user is not None else _dummy_hash()
    ok = verify_password(password[:_MAX_PASSWORD], stored)
    if user is None or not ok or not user.is_active:
        locked = throttle.record_failure(email, address)
        log.info(
            "console login failed for %r from %s%s", email, address, " (locked)" if locked else ""
        )
        return refuse(page._("Wrong e-mail or password. Please try again."))
    throttle.record_success(email, address)
    # The language picked on the login page is this person's latest explicit choice: keep it.
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES and chosen != user.locale:
        user.locale = chosen
        db.commit()  # before the redirect is followed (see choose_language)
    page.log_in(user)
    log.info("console login for user %d from %s", user.id, address)
    return page.redirect(target)


@router.post("/logout")
def logout(page: PageDep) -> Response:
    """End the session and go back to the login page."""
    page.log_out()
    page.flash(page._("You have logged out. See you soon!"))
    return page.redirect("/login")


@router.post("/lang")
def choose_language(
    page: PageDep,
    db: SessionDep,
    lang: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Switch the console between Italian and English, and remember the choice."""
    if lang not in LANGUAGES:
        raise PageError(
            page, 400, N_("Something went wrong"), N_("lang: choose Italian or English.")
        )
    if page.user is not None:
        page.user.locale = lang
        # Commit now: the session dependency commits only after the response has gone out,
        # and the browser follows the redirect at once.
        db.commit()
    response = page.redirect(safe_next(next))
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=_LANG_COOKIE_AGE,
        httponly=True,
        samesite="lax",
        secure=page.console.secure_cookies,
    )
    return response
