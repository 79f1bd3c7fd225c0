"""The marketplace administrators' pages: the catalogue, the worker profiles and the stock.

Each form is checked whole (its pydantic schema, then the service function) before anything
is saved; a refused form comes back with what was typed and a sentence next to each field.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from ..api.deps import SessionDep
from ..models import Role, User
from ..web import N_, Page, console_router, register_nav
from . import catalogue, stock, workers
from .errors import Conflict, MarketError, NotFound
from .forms import TIME_LABELS, parse_euros, validation_errors
from .models import Category, StockSource, StockStatus, WorkerProfile
from .pages import common, formats
from .pages_jobs import AdminPage
from .ranking import SLOTS, WEEKDAYS
from .schemas import (
    CategoryCreate,
    CategoryUpdate,
    Slot,
    StockCreate,
    StockUpdate,
    Weekday,
    WorkerCreate,
    WorkerUpdate,
)
from .views import category_tree, worker_public

router = console_router(prefix="/market/admin")

register_nav(
    "/market/admin/catalogue",
    N_("Services catalogue"),
    [Role.MARKET_ADMIN],
    description_msgid=N_("Add, rename or hide the categories and services clients can ask for."),
    order=74,
)
register_nav(
    "/market/admin/workers",
    N_("Worker profiles"),
    [Role.MARKET_ADMIN],
    description_msgid=N_("Who does the jobs: their services, areas and usual days."),
    order=75,
)
register_nav(
    "/market/admin/stock",
    N_("Stock"),
    [Role.MARKET_ADMIN],
    description_msgid=N_("Goods taken in exchange and refurbished PCs, and what became of them."),
    order=76,
)

# The sentence next to a field with a problem, per page ("<field>_taken": already exists).
CATALOGUE_MESSAGES = {
    "parent_id": N_("Choose a category, or none to make a new category."),
    "name": N_("Write a name of 2 to 120 characters."),
    "name_taken": N_("There is already one with this name here: choose another name."),
    "name_en": N_("At most 120 characters."),
    "description": N_("At most 2000 characters."),
    "position": N_("Write a whole number from 0 to 10000, or leave it empty."),
}
WORKER_MESSAGES = {
    "user_id": N_("Choose the person this profile is for."),
    "user_id_taken": N_("This person already has a profile."),
    "kind": N_("Choose Volunteer, Factotum or Artisan."),
    "display_name": N_("Write the name people will see (2 to 120 characters)."),
    "description": N_("At most 2000 characters."),
    "skills": N_("Tick at least one service that is offered to clients."),
    "areas": N_("Write at least one area, separated by commas (each 2 to 120 characters)."),
    "availability": N_("Tick only the days and times shown."),
}
STOCK_MESSAGES = {
    "source": N_("Choose where the item comes from."),
    "kind": N_("Choose what kind of item it is."),
    "title": N_("Give the item a short name (2 to 120 characters)."),
    "description": N_("At most 2000 characters."),
    "value": N_("Write the value in euros, for example 120 or 85,50 (or leave it empty)."),
    "workshop_ref": N_(
        "For a PC from the workshop, write the machine's tag (at most 64 characters)."
    ),
    "workshop_ref_taken": N_("This machine is already in the stock."),
    "status": N_("This change is not possible: a sold or disposed item stays so. Reload the page."),
}
STOCK_STATUS_LABELS = {
    StockStatus.AVAILABLE.value: N_("Available"),
    StockStatus.RESERVED.value: N_("Reserved"),
    StockStatus.SOLD.value: N_("Sold"),
    StockStatus.DISPOSED.value: N_("Disposed of"),
}
# What the buttons that move an item to each state say.
STOCK_ACTIONS = {
    StockStatus.AVAILABLE.value: N_("Make available again"),
    StockStatus.RESERVED.value: N_("Reserve"),
    StockStatus.SOLD.value: N_("Mark as sold"),
    StockStatus.DISPOSED.value: N_("Mark as disposed of"),
}
STOCK_SOURCE_LABELS = {
    StockSource.BARTER.value: N_("Taken in exchange"),
    StockSource.WORKSHOP.value: N_("Refurbished PC from the workshop"),
    StockSource.DONATION.value: N_("Donation"),
}
DAY_LABELS = {
    "mon": N_("Monday"),
    "tue": N_("Tuesday"),
    "wed": N_("Wednesday"),
    "thu": N_("Thursday"),
    "fri": N_("Friday"),
    "sat": N_("Saturday"),
    "sun": N_("Sunday"),
}
STOCK_TABS = ("all", *STOCK_STATUS_LABELS)


def _context(page: Page, messages: Mapping[str, str]) -> dict[str, Any]:
    return {**common(page), "MESSAGES": messages}


# Schema fields named differently on the forms.
_FORM_FIELDS = {"value_cents": "value"}

Schema = TypeVar("Schema", bound=BaseModel)


def _problems(
    errors: Iterable[tuple[str, str]], known: Collection[str], *, fallback: str
) -> dict[str, str]:
    """``{form field: message key}`` for ``(field, reason)`` pairs (first one per field wins).

    A field the form does not show (only an edited page sends one) lands on ``fallback``.
    """
    out: dict[str, str] = {}
    for api_field, _reason in errors:
        field = api_field.split(".")[0]
        field = _FORM_FIELDS.get(field, field)
        field = field if field in known else fallback
        out.setdefault(field, field)
    return out


def _service_problems(exc: MarketError, known: Collection[str], *, fallback: str) -> dict[str, str]:
    """The messages for an error raised by a service function ("already exists" apart)."""
    if isinstance(exc, Conflict) and f"{exc.field}_taken" in known:
        return {exc.field: f"{exc.field}_taken"}
    return _problems(exc.errors, known, fallback=fallback)


def _check(
    schema: type[Schema], body: dict[str, Any], known: Collection[str], *, fallback: str
) -> tuple[Schema | None, dict[str, str]]:
    """``body`` parsed by ``schema``, or None and the messages per field."""
    try:
        return schema.model_validate(body), {}
    except ValidationError as exc:
        return None, _problems(validation_errors(exc), known, fallback=fallback)


Render = Callable[[dict[str, str], int], Response]


def _refuse(
    session: Session, exc: MarketError, render: Render, known: Collection[str], *, fallback: str
) -> Response:
    """Undo whatever the form started, and show it again with the service's messages."""
    session.rollback()
    return render(
        _service_problems(exc, known, fallback=fallback), 409 if exc.status == 409 else 422
    )


async def _form(http: Request) -> FormData:
    # The CSRF check has parsed the form already: this is the same, cached object. Reading it
    # here, in the event loop, lets the routes be plain functions run in the thread pool.
    form = await http.form()
    await form.close()  # these forms carry no files; any sent are dropped
    return form


FormDep = Annotated[FormData, Depends(_form)]


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _texts(form: FormData, key: str) -> list[str]:
    return [v for v in form.getlist(key) if isinstance(v, str)]


def _not_found(page: Page) -> Response:
    return page.render(
        "error.html",
        status_code=404,
        title=page._("Not found"),
        message=page._("This does not exist (any more). Go back and reload the page."),
    )


# --- the catalogue ---------------------------------------------------------------------------


def _category_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        k: _text(form, k) for k in ("parent_id", "name", "name_en", "description", "position")
    }
    values["active"] = bool(_text(form, "active"))
    return values


def _render_catalogue(
    page: Page, session: Session, values: dict[str, Any], errors: dict[str, str], status: int
) -> Response:
    roots = catalogue.list_categories(session, include_inactive=True)
    return page.render(
        "marketplace/admin_catalogue.html",
        status_code=status,
        tree=[category_tree(c, include_inactive=True) for c in roots],
        values=values,
        errors=errors,
        **_context(page, CATALOGUE_MESSAGES),
    )


@router.get("/catalogue")
def catalogue_page(page: AdminPage, session: SessionDep, parent: str = "") -> Response:
    """The categories and their services, and the form to add one."""
    values = {"parent_id": parent, "name": "", "name_en": "", "description": "", "position": ""}
    return _render_catalogue(page, session, values, {}, 200)


@router.post("/catalogue")
def add_category(form: FormDep, page: AdminPage, session: SessionDep) -> Response:
    """Add a category, or a service to a category."""
    assert page.user is not None
    values = _category_values(form)

    def render(errors: dict[str, str], status: int) -> Response:
        return _render_catalogue(page, session, values, errors, status)

    body = {
        "name": values["name"],
        "name_en": values["name_en"],
        "parent_id": values["parent_id"] or None,
        "description": values["description"],
        "position": values["position"] or 0,
    }
    parsed, errors = _check(CategoryCreate, body, CATALOGUE_MESSAGES, fallback="name")
    if parsed is None:
        return render(errors, 422)
    try:
        created = catalogue.create_category(session, **parsed.model_dump(), actor=page.user)
        session.commit()
    except MarketError as exc:
        return _refuse(session, exc, render, CATALOGUE_MESSAGES, fallback="parent_id")
    f = formats(page)
    if created.parent is None:
        done = page._("The category %(name)s has been added.", name=f.name(created))
    else:
        done = page._(
            "The service %(name)s has been added to %(category)s.",
            name=f.name(created),
            category=f.name(created.parent),
        )
    page.flash(done, "success")
    return page.redirect("/market/admin/catalogue")


def _render_category(
    page: Page, category: Category, values: dict[str, Any], errors: dict[str, str], status: int
) -> Response:
    return page.render(
        "marketplace/admin_category.html",
        status_code=status,
        category=category_tree(category, include_inactive=True),
        parent=category.parent,
        values=values,
        errors=errors,
        **_context(page, CATALOGUE_MESSAGES),
    )


@router.get("/catalogue/{category_id}")
def category_page(category_id: int, page: AdminPage, session: SessionDep) -> Response:
    """One category or service, to rename, describe, reorder or hide."""
    try:
        category = catalogue.get_category(session, category_id)
    except NotFound:
        return _not_found(page)
    values = {
        "name": category.name,
        "name_en": category.name_en,
        "description": category.description,
        "position": str(category.position),
        "active": category.active,
    }
    return _render_category(page, category, values, {}, 200)


@router.post("/catalogue/{category_id}")
def change_category(
    category_id: int, form: FormDep, page: AdminPage, session: SessionDep
) -> Response:
    """Save the changes to a category or service."""
    assert page.user is not None
    try:
        category = catalogue.get_category(session, category_id)
    except NotFound:
        return _not_found(page)
    values = _category_values(form)

    def render(errors: dict[str, str], status: int) -> Response:
        return _render_category(page, category, values, errors, status)

    body = {
        "name": values["name"],
        "name_en": values["name_en"],
        "description": values["description"],
        "position": values["position"] or 0,
        "active": values["active"],
    }
    parsed, errors = _check(CategoryUpdate, body, CATALOGUE_MESSAGES, fallback="name")
    if parsed is None:
        return render(errors, 422)
    try:
        catalogue.update_category(session, category, **parsed.model_dump(), actor=page.user)
        session.commit()
    except MarketError as exc:
        return _refuse(session, exc, render, CATALOGUE_MESSAGES, fallback="name")
    page.flash(page._("Changes saved."), "success")
    return page.redirect("/market/admin/catalogue")


@router.post("/catalogue/{category_id}/active")
def show_or_hide(category_id: int, form: FormDep, page: AdminPage, session: SessionDep) -> Response:
    """Hide a category or service from clients, or show it again (nothing is deleted)."""
    assert page.user is not None
    try:
        category = catalogue.get_category(session, category_id)
    except NotFound:
        return _not_found(page)
    active = _text(form, "active") == "1"
    catalogue.update_category(session, category, active=active, actor=page.user)
    session.commit()
    name = formats(page).name(category)
    if active:
        done = page._("Clients can ask for %(name)s again.", name=name)
    else:
        done = page._(
            "Clients cannot ask for %(name)s any more. Nothing has been deleted: "
            "with “Show again” it comes back as before.",
            name=name,
        )
    page.flash(done, "success")
    return page.redirect("/market/admin/catalogue")


# --- worker profiles -------------------------------------------------------------------------


def _worker_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        k: _text(form, k) for k in ("user_id", "kind", "display_name", "description", "areas")
    }
    values["skills"] = _texts(form, "skills")
    values["availability"] = {day: _texts(form, f"availability_{day}") for day in WEEKDAYS}
    values["active"] = bool(_text(form, "active"))
    return values


def _worker_body(values: dict[str, Any]) -> dict[str, Any]:
    areas = values["areas"].replace("\n", ",").split(",")
    return {
        "kind": values["kind"],
        "display_name": values["display_name"],
        "description": values["description"],
        "skills": values["skills"],
        "areas": [a.strip() for a in areas if a.strip()],
        "availability": {day: slots for day, slots in values["availability"].items() if slots},
    }


def _days(availability: Mapping[Weekday, list[Slot]]) -> dict[str, list[str]]:
    # The service takes plain strings; the schema's are literal types.
    return {str(day): [str(slot) for slot in slots] for day, slots in availability.items()}


def _worker_form(page: Page, session: Session) -> dict[str, Any]:
    """What the profile fields (``_worker_fields.html``) need."""
    return {
        "tree": catalogue.list_categories(session),
        "days": [(d, DAY_LABELS[d]) for d in WEEKDAYS],
        "slots": [(s, TIME_LABELS[s]) for s in SLOTS],
        **_context(page, WORKER_MESSAGES),
    }


def _render_workers(
    page: Page, session: Session, values: dict[str, Any], errors: dict[str, str], status: int
) -> Response:
    ids = workers.all_worker_ids(session)
    loaded = workers.load_workers(session, ids)
    return page.render(
        "marketplace/admin_workers.html",
        status_code=status,
        rows=[worker_public(loaded[i]) for i in ids],
        people=workers.accounts_without_profile(session),
        values=values,
        errors=errors,
        **_worker_form(page, session),
    )


@router.get("/workers")
def workers_page(page: AdminPage, session: SessionDep) -> Response:
    """Every worker profile, and the form to create one."""
    values = {"skills": [], "availability": {}, "active": True}
    values.update(dict.fromkeys(("user_id", "kind", "display_name", "description", "areas"), ""))
    return _render_workers(page, session, values, {}, 200)


@router.post("/workers")
def add_worker(form: FormDep, page: AdminPage, session: SessionDep) -> Response:
    """Create the profile of a person with the worker role."""
    assert page.user is not None
    values = _worker_values(form)

    def render(errors: dict[str, str], status: int) -> Response:
        return _render_workers(page, session, values, errors, status)

    body = _worker_body(values)
    parsed, errors = _check(WorkerCreate, body, WORKER_MESSAGES, fallback="availability")
    owner = session.get(User, int(values["user_id"])) if values["user_id"].isdigit() else None
    if owner is None:
        errors["user_id"] = "user_id"
    if parsed is None or owner is None:
        return render(errors, 422)
    try:
        worker = workers.create_worker(
            session,
            user=owner,
            kind=parsed.kind.value,
            display_name=parsed.display_name,
            description=parsed.description,
            skill_ids=parsed.skills,
            areas=parsed.areas,
            availability=_days(parsed.availability),
            actor=page.user,
        )
        session.commit()
    except MarketError as exc:
        return _refuse(session, exc, render, WORKER_MESSAGES, fallback="availability")
    page.flash(
        page._(
            "The profile of %(name)s has been created: clients can find it in the search.",
            name=worker.display_name,
        ),
        "success",
    )
    return page.redirect("/market/admin/workers")


def _render_worker(
    page: Page,
    session: Session,
    worker: WorkerProfile,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int,
) -> Response:
    return page.render(
        "marketplace/admin_worker.html",
        status_code=status,
        worker=worker_public(workers.load_workers(session, [worker.id])[worker.id]),
        account=session.get(User, worker.user_id),
        values=values,
        errors=errors,
        **_worker_form(page, session),
    )


@router.get("/workers/{worker_id}")
def worker_page(worker_id: int, page: AdminPage, session: SessionDep) -> Response:
    """One profile, to change."""
    worker = workers.load_workers(session, [worker_id]).get(worker_id)
    if worker is None:
        return _not_found(page)
    public = worker_public(worker)
    values = {
        "kind": worker.kind,
        "display_name": worker.display_name,
        "description": worker.description,
        "skills": [str(s.id) for s in public.services],
        "areas": ", ".join(public.areas),
        "availability": public.availability,
        "active": worker.active,
    }
    return _render_worker(page, session, worker, values, {}, 200)


@router.post("/workers/{worker_id}")
def change_worker(worker_id: int, form: FormDep, page: AdminPage, session: SessionDep) -> Response:
    """Save the changes to a profile."""
    assert page.user is not None
    try:
        worker = workers.get_worker(session, worker_id)
    except NotFound:
        return _not_found(page)
    values = _worker_values(form)

    def render(errors: dict[str, str], status: int) -> Response:
        return _render_worker(page, session, worker, values, errors, status)

    body = {**_worker_body(values), "active": values["active"]}
    parsed, errors = _check(WorkerUpdate, body, WORKER_MESSAGES, fallback="availability")
    if parsed is None:
        return render(errors, 422)
    try:
        workers.update_worker(
            session,
            worker,
            actor=page.user,
            kind=parsed.kind.value if parsed.kind else None,
            display_name=parsed.display_name,
            description=parsed.description,
            skill_ids=parsed.skills,
            areas=parsed.areas,
            availability=_days(parsed.availability or {}),
            active=parsed.active,
        )
        session.commit()
    except MarketError as exc:
        return _refuse(session, exc, render, WORKER_MESSAGES, fallback="availability")
    page.flash(
        page._("The profile of %(name)s has been saved.", name=worker.display_name), "success"
    )
    return page.redirect("/market/admin/workers")


# --- the stock -------------------------------------------------------------------------------

_NO_ITEM = dict.fromkeys(("source", "kind", "title", "description", "value", "workshop_ref"), "")


def _render_stock(
    page: Page, session: Session, values: dict[str, str], errors: dict[str, str], status: int
) -> Response:
    tab = str(page.request.query_params.get("status", "all"))
    tab = tab if tab in STOCK_TABS else "all"
    return page.render(
        "marketplace/admin_stock.html",
        status_code=status,
        items=stock.list_items(session, status=None if tab == "all" else tab, limit=500),
        tab=tab,
        tabs=STOCK_TABS,
        # The states each state may become (a sold or disposed item stays so), in order.
        next_status={s.value: [n.value for n in stock.next_statuses(s)] for s in StockStatus},
        STOCK_STATUS=STOCK_STATUS_LABELS,
        STOCK_ACTIONS=STOCK_ACTIONS,
        SOURCES=STOCK_SOURCE_LABELS,
        sources=[StockSource.WORKSHOP.value, StockSource.DONATION.value],
        values=values,
        errors=errors,
        **_context(page, STOCK_MESSAGES),
    )


@router.get("/stock")
def stock_page(page: AdminPage, session: SessionDep) -> Response:
    """The stock, all of it or by state (``?status=``), and the form to add an item."""
    return _render_stock(page, session, dict(_NO_ITEM), {}, 200)


@router.post("/stock")
def add_item(form: FormDep, page: AdminPage, session: SessionDep) -> Response:
    """Put an item in the stock by hand: a refurbished PC, a donation."""
    assert page.user is not None
    values = {k: _text(form, k) for k in _NO_ITEM}

    def render(errors: dict[str, str], status: int) -> Response:
        return _render_stock(page, session, values, errors, status)

    cents = parse_euros(values["value"]) if values["value"] else 0
    body = {**values, "value_cents": cents or 0}
    parsed, errors = _check(StockCreate, body, STOCK_MESSAGES, fallback="source")
    if cents is None:
        errors["value"] = "value"
    if parsed is None or cents is None:
        return render(errors, 422)
    try:
        item = stock.add_item(
            session,
            source=parsed.source,
            kind=parsed.kind.value,
            title=parsed.title,
            description=parsed.description,
            value_cents=parsed.value_cents,
            workshop_ref=parsed.workshop_ref,
            actor=page.user,
        )
        session.commit()
    except MarketError as exc:
        return _refuse(session, exc, render, STOCK_MESSAGES, fallback="source")
    page.flash(page._("Added to the stock: %(title)s.", title=item.title), "success")
    return page.redirect("/market/admin/stock")


@router.post("/stock/{item_id}/status")
def change_status(item_id: int, form: FormDep, page: AdminPage, session: SessionDep) -> Response:
    """Reserve, sell or dispose of an item, or make a reserved one available again."""
    assert page.user is not None
    try:
        item = stock.get_item(session, item_id)
    except NotFound:
        return _not_found(page)

    def render(_errors: dict[str, str], status: int) -> Response:
        # The one message there is, next to this item's buttons.
        return _render_stock(page, session, dict(_NO_ITEM), {f"status_{item_id}": "status"}, status)

    parsed, _ = _check(StockUpdate, {"status": _text(form, "status")}, (), fallback="status")
    if parsed is None:
        return render({}, 422)
    try:
        stock.set_status(session, item, parsed.status.value, actor=page.user)
        session.commit()
    except MarketError as exc:
        return _refuse(session, exc, render, STOCK_MESSAGES, fallback="status")
    label = page._(STOCK_STATUS_LABELS[item.status])
    page.flash(page._("%(title)s is now: %(status)s.", title=item.title, status=label), "success")
    return page.redirect("/market/admin/stock")
