"""Console pages of beneficiaries, for coordinators (and administrators): who they are, their
PC and their caregivers. Every change goes through ``beneficiaries`` (checked whole,
audited), exactly as the API does; a refused form comes back with what was typed and a
sentence next to each wrong field."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import Depends, Form, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from ..api.deps import SessionDep
from ..models import Beneficiary, Device, Role
from ..web import N_, Page, PageError, console_router, page_for_roles, register_nav
from . import accounts, beneficiaries
from .api import commit_and_publish, schedule_config
from .errors import InputError

router = console_router(prefix="/people")
CSS = Path(__file__).resolve().parent.parent / "templates" / "people" / "people.css"

register_nav(
    "/people",
    N_("Beneficiaries"),
    [Role.COORDINATOR],
    description_msgid=N_(
        "The people at home with a PC: add them, link their PC, choose who calls."
    ),
    order=25,
)

ManagerPage = Annotated[Page, Depends(page_for_roles(Role.COORDINATOR))]

FALLBACK = N_("This could not be saved: %(reason)s")
# The sentence next to a wrong field, by the problem's key (see errors.Problem.key).
MESSAGES: dict[str, str] = {
    "name": N_("Write the person's name (at most 200 characters)."),
    "timezone": N_("Choose a time zone from the list."),
    "address_area": N_("At most 200 characters."),
    "notes": N_("At most 5000 characters."),
    "auto_answer": N_("Tick the box, or leave it empty."),
    "device_id": N_("Choose a PC from the list."),
    "device_unknown": N_("This PC is not registered. Choose one from the list."),
    "device_revoked": N_("This PC has been taken out of service. Choose another one."),
    "device_taken": N_(
        "This PC is already in use at the home of %(holder)s. Choose another one, "
        "or first unlink it from %(holder)s."
    ),
    "device_taken_now": N_(
        "Someone has just linked this PC to another person. Choose another one."
    ),
    "user_id": N_("Choose a caregiver from the list."),
    "user_unknown": N_("This account does not exist. Choose a caregiver from the list."),
    "not_caregiver": N_("This account is not a caregiver's. Choose a caregiver from the list."),
    "not_active": N_("This caregiver's account is switched off. Choose another caregiver."),
    "already_assigned": N_("This caregiver already looks after this person."),
    "not_assigned": N_("This caregiver no longer looks after this person. Reload the page."),
}
_DEFAULT_ZONE = "Europe/Rome"


@router.get("/people.css", include_in_schema=False)
def stylesheet() -> Response:
    """The few styles these pages add to the console's."""
    return FileResponse(
        CSS, media_type="text/css", headers={"cache-control": "public, max-age=3600"}
    )


def field_errors(
    page: Page, exc: InputError, messages: Mapping[str, str] = MESSAGES
) -> dict[str, str]:
    """``{field: sentence}`` for the page, in its language."""
    out: dict[str, str] = {}
    for p in exc.problems:
        msgid = messages.get(p.key) or messages.get(p.field)
        text = page._(msgid, **p.params) if msgid else page._(FALLBACK, reason=p.reason)
        out.setdefault(p.field, text)
    return out


def _person(page: Page, db: Session, beneficiary_id: int) -> Beneficiary:
    person = db.get(Beneficiary, beneficiary_id)
    if person is None:
        raise PageError(page, 404, N_("Not found"), N_("This person is not in the list."))
    return person


def time_zones(current: str = "") -> list[str]:
    """The zones offered on the form: Europe's, and the person's own if it is elsewhere."""
    zones = sorted(z for z in available_timezones() if z.startswith("Europe/"))
    if current and current not in zones:
        zones.insert(0, current)
    return zones


# --- reading ------------------------------------------------------------------------------


@router.get("")
def people(page: ManagerPage, db: SessionDep) -> Response:
    """Every beneficiary with their PC and their caregivers."""
    rows = []
    for person in beneficiaries.list_beneficiaries(db):
        rows.append(
            {
                "person": person,
                "device": db.get(Device, person.device_id) if person.device_id else None,
                "caregivers": beneficiaries.assignments(db, person.id),
            }
        )
    return page.render("people/list.html", rows=rows)


# --- a new beneficiary --------------------------------------------------------------------


def _details_context(
    db: Session, form: Mapping[str, Any], errors: Mapping[str, str], person: Beneficiary | None
) -> dict[str, Any]:
    devices = beneficiaries.free_devices(db)
    current = db.get(Device, person.device_id) if person and person.device_id else None
    if current is not None:
        devices.insert(0, current)
    return {
        "form": form,
        "errors": errors,
        "devices": devices,
        "zones": time_zones(str(form.get("timezone", ""))),
    }


@router.get("/new")
def new_person(page: ManagerPage, db: SessionDep) -> Response:
    """The form for a new beneficiary."""
    form = {
        "name": "",
        "timezone": _DEFAULT_ZONE,
        "address_area": "",
        "notes": "",
        "auto_answer": True,
        "device_id": "",
    }
    return page.render("people/new.html", **_details_context(db, form, {}, None))


@router.post("/new")
def create_person(
    request: Request,
    page: ManagerPage,
    db: SessionDep,
    name: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = _DEFAULT_ZONE,
    address_area: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
    auto_answer: Annotated[str, Form()] = "",
    device_id: Annotated[str, Form()] = "",
) -> Response:
    """Save a new beneficiary (with their PC, if one was chosen)."""
    assert page.user is not None
    form = {
        "name": name,
        "timezone": timezone,
        "address_area": address_area,
        "notes": notes,
        "auto_answer": bool(auto_answer),
        "device_id": device_id,
    }
    try:
        person, devices = beneficiaries.create_beneficiary(
            db,
            actor=page.user,
            values={**form, "device_id": device_id or None},
            config=schedule_config(request),
        )
    except InputError as exc:
        db.rollback()
        return page.render(
            "people/new.html",
            status_code=exc.status if exc.status != 404 else 422,
            **_details_context(db, form, field_errors(page, exc), None),
        )
    commit_and_publish(request, db, devices)
    page.flash(page._("%(name)s is saved. Now choose who will call them.", name=person.name))
    return page.redirect(f"/people/{person.id}")


# --- one beneficiary ----------------------------------------------------------------------


def _person_context(
    page: Page,
    db: Session,
    person: Beneficiary,
    *,
    form: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    caregiver_errors: Mapping[str, str] | None = None,
    chosen_caregiver: str = "",
) -> dict[str, Any]:
    form = form or {
        "name": person.name,
        "timezone": person.timezone,
        "address_area": person.address_area,
        "notes": person.notes,
        "auto_answer": person.auto_answer,
        "device_id": person.device_id or "",
    }
    assigned = beneficiaries.assignments(db, person.id)
    taken = {a.user_id for a in assigned}
    return {
        "person": person,
        "device": db.get(Device, person.device_id) if person.device_id else None,
        "caregivers": assigned,
        "candidates": [u for u in accounts.active_caregivers(db) if u.id not in taken],
        "caregiver_errors": caregiver_errors or {},
        "chosen_caregiver": chosen_caregiver,
        **_details_context(db, form, errors or {}, person),
    }


@router.get("/{beneficiary_id}")
def person_page(beneficiary_id: int, page: ManagerPage, db: SessionDep) -> Response:
    """A beneficiary's details, PC and caregivers, each changeable here."""
    person = _person(page, db, beneficiary_id)
    return page.render("people/person.html", **_person_context(page, db, person))


@router.post("/{beneficiary_id}")
def update_person(
    beneficiary_id: int,
    request: Request,
    page: ManagerPage,
    db: SessionDep,
    name: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    address_area: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
    auto_answer: Annotated[str, Form()] = "",
    device_id: Annotated[str, Form()] = "",
) -> Response:
    """Save the details (and the PC chosen, or none)."""
    assert page.user is not None
    person = _person(page, db, beneficiary_id)
    form = {
        "name": name,
        "timezone": timezone,
        "address_area": address_area,
        "notes": notes,
        "auto_answer": bool(auto_answer),
        "device_id": device_id,
    }
    try:
        _changed, devices = beneficiaries.update_beneficiary(
            db,
            actor=page.user,
            person=person,
            changes={**form, "device_id": device_id or None},
            config=schedule_config(request),
        )
    except InputError as exc:
        db.rollback()
        person = _person(page, db, beneficiary_id)
        return page.render(
            "people/person.html",
            status_code=exc.status if exc.status != 404 else 422,
            **_person_context(page, db, person, form=form, errors=field_errors(page, exc)),
        )
    commit_and_publish(request, db, devices)
    page.flash(page._("The changes are saved."))
    return page.redirect(f"/people/{person.id}")


@router.post("/{beneficiary_id}/unlink")
def unlink(beneficiary_id: int, request: Request, page: ManagerPage, db: SessionDep) -> Response:
    """The person no longer has this PC: it stops waking for them and becomes free."""
    assert page.user is not None
    person = _person(page, db, beneficiary_id)
    devices = beneficiaries.unlink_device(
        db, actor=page.user, person=person, config=schedule_config(request)
    )
    commit_and_publish(request, db, devices)
    page.flash(page._("The PC is no longer linked to %(name)s.", name=person.name))
    return page.redirect(f"/people/{person.id}")


# --- caregivers ---------------------------------------------------------------------------


def _caregiver_refused(
    page: Page, db: Session, beneficiary_id: int, exc: InputError, chosen: str = ""
) -> Response:
    db.rollback()
    person = _person(page, db, beneficiary_id)
    return page.render(
        "people/person.html",
        status_code=exc.status if exc.status != 404 else 409,
        **_person_context(
            page,
            db,
            person,
            caregiver_errors=field_errors(page, exc),
            chosen_caregiver=chosen,
        ),
    )


@router.post("/{beneficiary_id}/caregivers")
def add_caregiver(
    beneficiary_id: int,
    page: ManagerPage,
    db: SessionDep,
    user_id: Annotated[str, Form()] = "",
) -> Response:
    """Assign a caregiver: from now on they see this person and can call them."""
    assert page.user is not None
    person = _person(page, db, beneficiary_id)
    try:
        chosen: object = int(user_id)
    except ValueError:
        chosen = None
    try:
        row = beneficiaries.assign_caregiver(db, actor=page.user, person=person, user_id=chosen)
    except InputError as exc:
        return _caregiver_refused(page, db, beneficiary_id, exc, user_id)
    page.flash(
        page._("%(caregiver)s now looks after %(name)s.", caregiver=row.user.name, name=person.name)
    )
    return page.redirect(f"/people/{person.id}#caregivers")


@router.post("/{beneficiary_id}/caregivers/{user_id}/primary")
def make_primary(beneficiary_id: int, user_id: int, page: ManagerPage, db: SessionDep) -> Response:
    """Make this caregiver the primary one."""
    assert page.user is not None
    person = _person(page, db, beneficiary_id)
    try:
        beneficiaries.set_primary(db, actor=page.user, person=person, user_id=user_id)
    except InputError as exc:
        return _caregiver_refused(page, db, beneficiary_id, exc)
    page.flash(page._("The primary caregiver is changed."))
    return page.redirect(f"/people/{person.id}#caregivers")


@router.post("/{beneficiary_id}/caregivers/{user_id}/remove")
def remove_caregiver(
    beneficiary_id: int, user_id: int, page: ManagerPage, db: SessionDep
) -> Response:
    """The caregiver no longer looks after this person (nor sees them)."""
    assert page.user is not None
    person = _person(page, db, beneficiary_id)
    try:
        beneficiaries.remove_caregiver(db, actor=page.user, person=person, user_id=user_id)
    except InputError as exc:
        return _caregiver_refused(page, db, beneficiary_id, exc)
    page.flash(page._("The caregiver no longer looks after %(name)s.", name=person.name))
    return page.redirect(f"/people/{person.id}#caregivers")
