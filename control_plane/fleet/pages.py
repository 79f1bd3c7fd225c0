"""Console pages for adding PCs to the fleet: enrollment tokens, made and withdrawn.

A technician asks for a token here and types it on the PC (``difronte-edge enroll``); the
token is shown once. The device list and device pages live in ``control_plane.web.routes.fleet``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit
from ..api.deps import SessionDep
from ..config import Settings
from ..db import utcnow
from ..models import Role
from ..web import N_, Page, PageError, console_router, page_for_roles
from .enrollment import create_token
from .models import EnrollmentToken

router = console_router(prefix="/enrollment")

FleetPage = Annotated[Page, Depends(page_for_roles(Role.FLEET_MANAGER, Role.TECHNICIAN))]

# How long a token stays valid, as offered in the form: hours -> label.
VALIDITY = {
    "1": N_("1 hour"),
    "24": N_("1 day"),
    "168": N_("1 week"),
}
DEFAULT_VALIDITY = "24"


def _pending(db: Session) -> list[EnrollmentToken]:
    return list(
        db.execute(
            select(EnrollmentToken)
            .where(EnrollmentToken.used_at.is_(None), EnrollmentToken.expires_at > utcnow())
            .order_by(EnrollmentToken.expires_at)
        ).scalars()
    )


def _form_context(
    page: Page, db: Session, form: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    values = {"device_id": "", "name": "", "group": "", "validity": DEFAULT_VALIDITY}
    values.update(form or {})
    return {
        "form": values,
        "validity": [(hours, page._(label)) for hours, label in VALIDITY.items()],
        "pending": _pending(db),
        "error": None,
        "error_field": None,
        **extra,
    }


@router.get("")
def enrollment(page: FleetPage, db: SessionDep) -> Response:
    """The form for a new token, and the tokens not used yet."""
    return page.render("fleet/enroll.html", **_form_context(page, db))


@router.post("")
async def new_token(page: FleetPage, db: SessionDep, request: Request) -> Response:
    """Make a token and show it once, with the command to type on the PC."""
    raw = await request.form()
    form = {k: v.strip() for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
    return await run_in_threadpool(_new_token_sync, page, db, request.app.state.settings, form)


def _new_token_sync(page: Page, db: Session, settings: Settings, form: dict[str, str]) -> Response:
    assert page.user is not None
    validity = form.get("validity", DEFAULT_VALIDITY)
    if validity not in VALIDITY:
        return _refuse(page, db, form, "validity", page._("Choose how long the token is valid."))
    if len(form.get("name", "")) > 200 or len(form.get("group", "")) > 100:
        return _refuse(page, db, form, "name", page._("The name or the group is too long."))
    try:
        token, secret = create_token(
            db,
            settings,
            user=page.user,
            device_id=form.get("device_id") or None,
            name=form.get("name", ""),
            group=form.get("group", ""),
            ttl_minutes=int(validity) * 60,
        )
    except ValueError as exc:
        db.rollback()
        return _refuse(page, db, form, "device_id", _device_id_problem(page, str(exc)))
    audit.record(
        db,
        action="enrollment.token_created",
        object_type="device",
        object_id=token.device_id,
        actor=page.user,
    )
    db.commit()
    command = f"difronte-edge enroll --url {settings.public_url} --token {secret}"
    return page.render(
        "fleet/enroll_done.html",
        token=token,
        secret=secret,
        command=command,
        expires=token.expires_at,
    )


def _device_id_problem(page: Page, reason: str) -> str:
    if "already enrolled" in reason:
        return page._("A PC with this name is already in the fleet.")
    if "pending" in reason:
        return page._("This name already has a token waiting to be used.")
    return page._(
        "Use 3 to 64 lowercase letters, digits and dashes, starting with a letter or digit."
    )


def _refuse(page: Page, db: Session, form: dict[str, str], field: str, message: str) -> Response:
    return page.render(
        "fleet/enroll.html",
        status_code=422,
        **_form_context(page, db, form, error_field=field, error=message),
    )


@router.post("/{token_id}/withdraw")
def withdraw(token_id: int, page: FleetPage, db: SessionDep) -> Response:
    """Withdraw a token nobody has used: the PC it was for can no longer enroll with it."""
    token = db.get(EnrollmentToken, token_id)
    if token is None or token.used_at is not None:
        raise PageError(
            page, 404, N_("Token not found"), N_("This token does not exist or was already used.")
        )
    device_id = token.device_id
    db.delete(token)
    audit.record(
        db,
        action="enrollment.token_cancelled",
        object_type="device",
        object_id=device_id,
        actor=page.user,
    )
    page.flash(page._("The token for %(device_id)s was withdrawn.", device_id=device_id))
    return page.redirect("/enrollment")
