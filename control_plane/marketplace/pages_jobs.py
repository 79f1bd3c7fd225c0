"""The job pages: a client's requests, a worker's jobs, the administrators' queue, and one
request with the actions open to whoever is looking (assign, quote, accept, finish, rate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from ..api.deps import SessionDep
from ..models import Role, User
from ..web import N_, Page, UserPage, console_router, page_for_roles, register_nav
from . import jobs, reviews
from .context import get_market
from .errors import Invalid, MarketError
from .forms import errors_by_field, parse_date, parse_euros
from .lifecycle import Actor
from .models import GoodStatus, ServiceRequest
from .pages import common
from .ranking import RankedCandidate
from .views import request_public

router = console_router(prefix="/market")

register_nav("/market/requests", N_("My requests"), [Role.CLIENT], order=71)
register_nav("/market/jobs", N_("My jobs"), [Role.WORKER], order=72)
register_nav(
    "/market/queue",
    N_("Requests to handle"),
    [Role.MARKET_ADMIN],
    description_msgid=N_("New quote requests, quotes to send, jobs to close."),
    order=73,
)

AdminPage = Annotated[Page, Depends(page_for_roles(Role.MARKET_ADMIN))]
WorkerPage = Annotated[Page, Depends(page_for_roles(Role.WORKER))]
ClientPage = Annotated[Page, Depends(page_for_roles(Role.CLIENT))]

# The administrators' queue, by what needs doing.
QUEUE_TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "new": (N_("New"), ("new",)),
    "open": (N_("In progress"), ("assigned", "quoted", "declined", "scheduled")),
    "done": (N_("Done, to close"), ("done",)),
    "closed": (N_("Closed"), ("closed", "canceled")),
}


def _list(
    page: Page, session: Session, *, title: str, status: tuple[str, ...] = (), **extra: Any
) -> Response:
    assert page.user is not None
    rows, total = jobs.visible_requests(session, page.user, status=status, limit=200)
    return page.render(
        "marketplace/requests.html",
        title=title,
        rows=rows,
        total=total,
        **extra,
        **common(page),
    )


@router.get("/requests")
def my_requests(page: ClientPage, session: SessionDep) -> Response:
    """A client's requests, newest first."""
    return _list(page, session, title=page._("My requests"), new_button=True)


@router.get("/jobs")
def my_jobs(page: WorkerPage, session: SessionDep) -> Response:
    """The jobs given to a worker."""
    return _list(page, session, title=page._("My jobs"))


@router.get("/queue")
def queue(page: AdminPage, session: SessionDep, tab: str = "new") -> Response:
    """Every request, by what needs doing."""
    tab = tab if tab in QUEUE_TABS else "new"
    return _list(
        page,
        session,
        title=page._("Requests to handle"),
        status=QUEUE_TABS[tab][1],
        tabs=QUEUE_TABS,
        tab=tab,
    )


# --- one request ---------------------------------------------------------------------------


def _detail(
    page: Page,
    session: Session,
    request: ServiceRequest,
    actor: Actor,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    public = request_public(session, request, actor)
    candidates: list[RankedCandidate] = []
    if actor is Actor.ADMIN and "assign" in public.actions:
        candidates = jobs.candidates_for(session, request)
    review = reviews.review_of(session, request)
    return page.render(
        "marketplace/request.html",
        status_code=status_code,
        r=public,
        actor=actor.value,
        candidates=candidates,
        explain=lambda factor: factor.explain(page._),
        review_row=review,
        errors=errors or {},
        values=values or {},
        today=jobs.today().isoformat(),
        **common(page),
    )


@router.get("/requests/{request_id}")
def request_page(request_id: int, page: UserPage, session: SessionDep) -> Response:
    """One request, as its client, its worker or an administrator sees it."""
    assert page.user is not None
    try:
        request, actor = jobs.request_for(session, page.user, request_id)
    except MarketError:
        return _no_access(page)
    return _detail(page, session, request, actor)


def _no_access(page: Page) -> Response:
    return page.render(
        "error.html",
        status_code=403,
        title=page._("No access"),
        message=page._("This request is not yours, or it does not exist."),
    )


Action = Callable[[Session, ServiceRequest, User, dict[str, str]], str]


async def _act(
    http: Request, page: Page, session: Session, request_id: int, action: Action
) -> Response:
    """Run one action from a form; show the page again with messages if it cannot be done."""
    raw = await http.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    await raw.close()  # nothing else is read from it; files (if any were sent) are dropped
    assert page.user is not None
    try:
        request, actor = jobs.request_for(session, page.user, request_id)
    except MarketError:
        return _no_access(page)
    try:
        done = action(session, request, page.user, form)
        session.commit()
    except MarketError as exc:
        session.rollback()
        request, actor = jobs.request_for(session, page.user, request_id)
        return _detail(
            page, session, request, actor, errors=errors_by_field(exc.errors), values=form,
            status_code=409 if exc.status == 409 else 422,
        )  # fmt: skip
    page.flash(page._(done), "success")
    return page.redirect(f"/market/requests/{request_id}")


@router.post("/requests/{request_id}/assign")
async def assign(request_id: int, http: Request, page: AdminPage, session: SessionDep) -> Response:
    """Give the job to the chosen worker."""
    notifier = get_market(http).notifier

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        worker = form.get("worker_id", "")
        if not worker.isdigit():
            raise Invalid("worker_id", "choose a worker")
        jobs.assign(s, notifier, r, worker_id=int(worker), user=user)
        return N_("The worker has been assigned and told by e-mail.")

    return await _act(http, page, session, request_id, act)


@router.post("/requests/{request_id}/quote")
async def quote(request_id: int, http: Request, page: AdminPage, session: SessionDep) -> Response:
    """Send the quote, with the verdict on every good offered."""
    notifier = get_market(http).notifier

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        errors: list[tuple[str, str]] = []
        price = parse_euros(form.get("price", ""))
        if price is None:
            errors.append(("price", "unclear"))
        date = parse_date(form.get("date", ""))
        if date is None:
            errors.append(("date", "missing"))
        assessments = []
        for good in r.goods:
            if good.status != GoodStatus.OFFERED.value and f"good_{good.id}" not in form:
                continue  # assessed before; keep it
            decision = form.get(f"good_{good.id}", "")
            if decision == "accept":
                value = parse_euros(form.get(f"value_{good.id}", ""))
                if not value:
                    errors.append((f"value_{good.id}", "value"))
                assessments.append(jobs.Assessment(good.id, True, value or 1))
            elif decision == "decline":
                reason = form.get(f"reason_{good.id}", "").strip()
                if not reason:
                    errors.append((f"reason_{good.id}", "reason"))
                assessments.append(jobs.Assessment(good.id, False, None, reason or "-"))
            else:
                errors.append((f"good_{good.id}", "assessments"))
        problem = Invalid.collect(errors)
        if problem is not None:
            raise problem
        assert price is not None and date is not None
        jobs.send_quote(
            s, notifier, r, price_cents=price, date=date, note=form.get("note", "").strip()[:2000],
            assessments=assessments, user=user,
        )  # fmt: skip
        return N_("The quote has been sent to the client.")

    return await _act(http, page, session, request_id, act)


@router.post("/requests/{request_id}/accept")
async def accept(request_id: int, http: Request, page: UserPage, session: SessionDep) -> Response:
    """The client accepts the quote."""
    notifier = get_market(http).notifier

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        jobs.accept_quote(s, notifier, r, user=user)
        return N_("Thank you: the job is booked.")

    return await _act(http, page, session, request_id, act)


@router.post("/requests/{request_id}/decline")
async def decline(request_id: int, http: Request, page: UserPage, session: SessionDep) -> Response:
    """The client declines the quote."""
    notifier = get_market(http).notifier

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        reason = form.get("reason", "").strip()
        if len(reason) > 500:
            raise Invalid("reason", "too long")
        jobs.decline_quote(s, notifier, r, user=user, reason=reason)
        return N_("The quote has been declined.")

    return await _act(http, page, session, request_id, act)


@router.post("/requests/{request_id}/cancel")
async def cancel(request_id: int, http: Request, page: UserPage, session: SessionDep) -> Response:
    """Cancel a request not yet scheduled."""
    notifier = get_market(http).notifier

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        jobs.cancel(s, notifier, r, user=user, reason=form.get("reason", "")[:500])
        return N_("The request has been canceled.")

    return await _act(http, page, session, request_id, act)


@router.post("/requests/{request_id}/complete")
async def complete(request_id: int, http: Request, page: UserPage, session: SessionDep) -> Response:
    """The worker (or an administrator) marks the job done."""
    notifier = get_market(http).notifier

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        jobs.complete(s, notifier, r, user=user)
        return N_("Marked as done. Thank you!")

    return await _act(http, page, session, request_id, act)


@router.post("/requests/{request_id}/close")
async def close(request_id: int, http: Request, page: AdminPage, session: SessionDep) -> Response:
    """An administrator closes the request."""
    notifier = get_market(http).notifier

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        jobs.close(s, notifier, r, user=user)
        return N_("The request has been closed.")

    return await _act(http, page, session, request_id, act)


@router.post("/requests/{request_id}/review")
async def rate(request_id: int, http: Request, page: UserPage, session: SessionDep) -> Response:
    """The client rates the finished job."""
    notifier = get_market(http).notifier

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        stars = form.get("stars", "")
        comment = form.get("comment", "").strip()
        errors = []
        if stars not in {"1", "2", "3", "4", "5"}:
            errors.append(("stars", "1-5"))
        if len(comment) > 2000:
            errors.append(("comment", "too long"))
        problem = Invalid.collect(errors)
        if problem is not None:
            raise problem
        reviews.rate(s, notifier, r, user=user, stars=int(stars), comment=comment)
        return N_("Thank you for your review!")

    return await _act(http, page, session, request_id, act)


@router.post("/requests/{request_id}/review/hide")
async def hide(request_id: int, http: Request, page: AdminPage, session: SessionDep) -> Response:
    """An administrator hides an abusive review, with a reason."""

    def act(s: Session, r: ServiceRequest, user: User, form: dict[str, str]) -> str:
        review = reviews.review_of(s, r)
        if review is None:
            raise Invalid("request", "no review")
        reason = form.get("reason", "").strip()
        if len(reason) > 500:
            raise Invalid("reason", "too long")
        reviews.set_hidden(s, review, hidden=True, reason=reason, actor=user)
        return N_("The review is hidden; the average no longer counts it.")

    return await _act(http, page, session, request_id, act)
