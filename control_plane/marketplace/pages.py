"""The marketplace's console pages: public search and worker pages, and the request form.

The job pages (lists, a request and its actions) are in ``pages_jobs``; the administrators'
catalogue, worker profiles and stock in ``pages_admin``. Every page is Italian first, renders
with the console's layout and checks CSRF on every POST.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from ..api.deps import SessionDep
from ..features import FeatureContext
from ..models import Role
from ..web import N_, Page, PageDep, console_router, page_for_roles, register_nav
from . import catalogue, jobs, photos, reviews, workers
from .context import Market, get_market
from .errors import Invalid, MarketError, NotFound
from .forms import (
    FIELD_MESSAGES,
    GOOD_LABELS,
    KIND_LABELS,
    STATUS_LABELS,
    TIME_LABELS,
    WHEN_CHOICES,
    Formats,
    errors_by_field,
    parse_date,
    validation_errors,
    window_for,
)
from .models import GoodKind, WorkerKind
from .schemas import RequestCreate
from .search import WorkerQuery, search_workers
from .views import media_url, worker_public

router = console_router(prefix="/market")
CSS = Path(__file__).resolve().parent.parent / "templates" / "marketplace" / "market.css"
GOOD_SLOTS = 3  # goods offered on one form; more can be described in the text

register_nav(
    "/market/search",
    N_("Factotum services"),
    [Role.CLIENT, Role.WORKER, Role.MARKET_ADMIN],
    description_msgid=N_("Find someone for cleaning, painting, repairs and more."),
    order=70,
)

ClientPage = Annotated[Page, Depends(page_for_roles(Role.CLIENT))]


def formats(page: Page) -> Formats:
    """Money, dates and labels in the page's language."""
    return Formats(page.lang, page._)


def common(page: Page) -> dict[str, Any]:
    """What every marketplace template gets."""
    return {
        "f": formats(page),
        "STATUS": STATUS_LABELS,
        "KINDS": KIND_LABELS,
        "GOODS": GOOD_LABELS,
        "TIMES": TIME_LABELS,
        "MESSAGES": FIELD_MESSAGES,
        "media_url": media_url,
    }


def market_of(page: Page) -> Market:
    """The app's marketplace machinery."""
    return get_market(page.request)


@router.get("/market.css", include_in_schema=False)
def stylesheet() -> Response:
    """The marketplace's few styles on top of the console's."""
    return FileResponse(
        CSS, media_type="text/css", headers={"cache-control": "public, max-age=3600"}
    )


# --- public: search and worker pages -------------------------------------------------------


@router.get("", include_in_schema=False)
def market_home() -> Response:
    """The marketplace's address leads to its search."""
    return RedirectResponse("/market/search", status_code=303)


@router.get("/search")
def search_page(
    page: PageDep,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
    category: str = "",
    kind: Annotated[list[str] | None, Query()] = None,
    area: Annotated[str, Query(max_length=120)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    """Search workers: free text as people type it, a category, profiles, an area."""
    kinds = tuple(k for k in kind or () if k in {w.value for w in WorkerKind})
    category_id = int(category) if category.isdigit() else None
    category_ids: tuple[int, ...] = ()
    if category_id is not None:
        try:
            category_ids = catalogue.services_of(session, category_id)
        except NotFound:
            category_id = None
    limit = 20
    searched = bool(q.strip() or category_ids or kinds or area.strip())
    results = search_workers(
        session,
        WorkerQuery(
            text=q,
            category_ids=category_ids,
            kinds=kinds,
            area=area,
            sort="relevance" if q.strip() else "rating",
            limit=limit,
            offset=offset,
        ),
    )
    loaded = workers.load_workers(session, [h.worker_id for h in results.hits])
    hits = [worker_public(loaded[h.worker_id]) for h in results.hits]
    service_ids = catalogue.search_services(session, q, limit=6) if q.strip() else []
    services = [catalogue.get_category(session, i) for i in service_ids]
    return page.render(
        "marketplace/search.html",
        q=q,
        category_id=category_id,
        kinds=kinds,
        area=area,
        tree=catalogue.list_categories(session),
        hits=hits,
        total=results.total,
        searched=searched,
        services=services,
        offset=offset,
        limit=limit,
        **common(page),
    )


@router.get("/workers/{worker_id}")
def worker_page(worker_id: int, page: PageDep, session: SessionDep) -> Response:
    """A worker's page: who they are, what they do, where, and what clients said."""
    worker = workers.load_workers(session, [worker_id]).get(worker_id)
    if worker is None or not worker.active:
        return page.render(
            "error.html",
            status_code=404,
            title=page._("Not found"),
            message=page._("This worker is not on Factotum (any more)."),
        )
    return page.render(
        "marketplace/worker.html",
        worker=worker_public(worker),
        reviews=reviews.visible_reviews(session, worker.id),
        days=[
            ("mon", page._("Monday")),
            ("tue", page._("Tuesday")),
            ("wed", page._("Wednesday")),
            ("thu", page._("Thursday")),
            ("fri", page._("Friday")),
            ("sat", page._("Saturday")),
            ("sun", page._("Sunday")),
        ],
        **common(page),
    )


# --- the request form --------------------------------------------------------------------


def _form_values(form: FormData | dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {
        key: str(form.get(key) or "")
        for key in (
            "category_id",
            "description",
            "when",
            "exact_date",
            "window_start",
            "window_end",
            "time_of_day",
            "area",
        )
    }
    for i in range(GOOD_SLOTS):
        for part in ("kind", "title", "description"):
            values[f"good_{part}_{i}"] = str(form.get(f"good_{part}_{i}") or "")
    return values


def _files(form: FormData, key: str) -> list[UploadFile]:
    return [f for f in form.getlist(key) if isinstance(f, UploadFile) and f.filename]


def _render_form(
    page: Page,
    session: Session,
    values: dict[str, Any],
    errors: dict[str, str],
    *,
    status_code: int = 200,
) -> Response:
    market = market_of(page)
    return page.render(
        "marketplace/request_form.html",
        status_code=status_code,
        tree=catalogue.list_categories(session),
        values=values,
        errors=errors,
        when_choices=WHEN_CHOICES,
        good_slots=range(GOOD_SLOTS),
        good_kinds=[k.value for k in GoodKind],
        max_mb=round(market.store.max_bytes / (1024 * 1024), 1),
        max_photos=market.settings.max_photos,
        **common(page),
    )


@router.get("/requests/new")
def request_form(page: ClientPage, session: SessionDep, service: str = "") -> Response:
    """The quote request form (a service may be chosen already)."""
    values = _form_values({"when": "two_weeks", "time_of_day": "any", "category_id": service})
    return _render_form(page, session, values, {})


@router.post("/requests/new")
async def submit_request(request: Request, page: ClientPage, session: SessionDep) -> Response:
    """Check the whole form, then save the request, its photos and goods at once (or nothing)."""
    form = await request.form()
    try:
        values = _form_values(form)
        files = {"photos": _files(form, "photos")}
        for i in range(GOOD_SLOTS):
            files[f"good_photo_{i}"] = _files(form, f"good_photo_{i}")
        # Files are read here, in the event loop; the database work goes to a thread.
        data = {key: [await f.read() for f in items] for key, items in files.items()}
    finally:
        await form.close()  # the uploads' temporary files
    return await run_in_threadpool(_save_request, page, session, values, data)


def _save_request(
    page: Page, session: Session, values: dict[str, Any], data: dict[str, list[bytes]]
) -> Response:
    market = market_of(page)
    assert page.user is not None
    errors: list[tuple[str, str]] = []
    today = jobs.today()
    when = values["when"]
    exact = parse_date(values["exact_date"])
    start, end = parse_date(values["window_start"]), parse_date(values["window_end"])
    window = window_for(when, today)
    if window is not None:
        start, end = window
    if when not in WHEN_CHOICES:
        errors.append(("date_kind", "choose"))
    goods = []
    for i in range(GOOD_SLOTS):
        title, text = values[f"good_title_{i}"].strip(), values[f"good_description_{i}"].strip()
        if title or text or data[f"good_photo_{i}"]:
            goods.append((i, values[f"good_kind_{i}"] or "other", title, text))
    body: dict[str, Any] = {
        "category_id": values["category_id"] or None,
        "description": values["description"],
        "date_kind": "exact" if when == "exact" else "window",
        "exact_date": exact,
        "window_start": start,
        "window_end": end,
        "time_of_day": values["time_of_day"] or "any",
        "area": values["area"],
        "goods": [{"kind": k, "title": t, "description": d} for _, k, t, d in goods],
    }
    parsed: RequestCreate | None = None
    try:
        parsed = RequestCreate.model_validate(body)
    except ValidationError as exc:
        for field, reason in validation_errors(exc):
            if field.startswith("goods."):  # back to the slot the person filled in
                parts = field.split(".")
                field = ".".join([parts[0], str(goods[int(parts[1])][0]), *parts[2:]])
            errors.append((field, reason))
    if values["category_id"].isdigit():
        try:
            catalogue.get_service(session, int(values["category_id"]))
        except Invalid as exc:
            errors += exc.errors
    if when in WHEN_CHOICES:
        kind = "exact" if when == "exact" else "window"
        errors += jobs.date_errors(kind, exact, start, end, today)
    too_many = len(data["photos"]) > market.settings.max_photos
    for key, blobs in data.items():
        for blob in blobs:
            try:
                market.store.check(blob, field=key)
            except ValueError:
                errors.append((key, "bad file"))
        if too_many and key == "photos":
            errors.append((key, "too many"))
    if errors or parsed is None:
        return _render_form(page, session, values, errors_by_field(errors), status_code=422)
    try:
        with photos.written_files(market.store) as written:
            photo_ids = [
                photos.upload(
                    session, market.store, owner=page.user, data=b, field="photos", written=written
                ).id
                for b in data["photos"]
            ]
            good_inputs = []
            for (i, _, _, _), good in zip(goods, parsed.goods, strict=True):
                ids = [
                    photos.upload(
                        session,
                        market.store,
                        owner=page.user,
                        data=b,
                        field=f"goods.{i}.photo_ids",
                        written=written,
                    ).id
                    for b in data[f"good_photo_{i}"]
                ]
                good_inputs.append(
                    jobs.GoodInput(good.kind.value, good.title, good.description, tuple(ids))
                )
            created = jobs.create_request(
                session,
                market.notifier,
                client=page.user,
                service_id=parsed.category_id,
                description=parsed.description,
                date_kind=parsed.date_kind,
                exact_date=parsed.exact_date,
                window_start=parsed.window_start,
                window_end=parsed.window_end,
                time_of_day=parsed.time_of_day,
                area=parsed.area,
                photo_ids=photo_ids,
                goods=good_inputs,
                max_photos=market.settings.max_photos,
            )
            session.commit()
    except (Invalid, MarketError) as exc:
        session.rollback()
        return _render_form(page, session, values, errors_by_field(exc.errors), status_code=422)
    page.flash(page._("Your request has been sent. We will write to you soon."), "success")
    return page.redirect(f"/market/requests/{created.id}")


def install(ctx: FeatureContext) -> None:
    """Mount the pages (the console itself is installed by ``control_plane.web``)."""
    from . import pages_admin, pages_jobs

    ctx.app.include_router(router)
    ctx.app.include_router(pages_jobs.router)
    ctx.app.include_router(pages_admin.router)
