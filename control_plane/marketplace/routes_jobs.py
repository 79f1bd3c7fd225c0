"""API: quote requests and their jobs, from the client's request to the rating.

Anyone logged in may call these; what they may see or do is decided per request by the
lifecycle (client, assigned worker, administrator) — see ``jobs.actor_for``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from ..api.deps import CurrentUser, SessionDep
from . import jobs, reviews
from .context import MarketDep
from .deps import MarketAdmin
from .errors import Forbidden
from .lifecycle import Actor, RequestStatus
from .schemas import (
    AssessBody,
    AssessmentIn,
    AssignBody,
    CandidatePublic,
    QuoteCreate,
    ReasonBody,
    RequestCreate,
    RequestPage,
    RequestPublic,
    ReviewCreate,
    ReviewPublic,
)
from .views import candidate_public, request_public, review_public

router = APIRouter(prefix="/market/requests", tags=["marketplace"])


def _assessments(items: list[AssessmentIn]) -> list[jobs.Assessment]:
    return [jobs.Assessment(a.good_id, a.accepted, a.value_cents, a.reason) for a in items]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RequestPublic)
def create_request(
    body: RequestCreate, session: SessionDep, market: MarketDep, user: CurrentUser
) -> RequestPublic:
    """Ask for a quote: the service, the job, when, where, photos and goods offered."""
    request = jobs.create_request(
        session,
        market.notifier,
        client=user,
        service_id=body.category_id,
        description=body.description,
        date_kind=body.date_kind,
        exact_date=body.exact_date,
        window_start=body.window_start,
        window_end=body.window_end,
        time_of_day=body.time_of_day,
        area=body.area,
        photo_ids=body.photo_ids,
        goods=[
            jobs.GoodInput(g.kind.value, g.title, g.description, tuple(g.photo_ids))
            for g in body.goods
        ],
        max_photos=market.settings.max_photos,
    )
    return request_public(session, request, Actor.CLIENT)


@router.get("", response_model=RequestPage)
def list_requests(
    session: SessionDep,
    user: CurrentUser,
    status_: Annotated[list[RequestStatus] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RequestPage:
    """Your requests (clients), your jobs (workers), or the whole queue (administrators)."""
    rows, total = jobs.visible_requests(
        session, user, status=[s.value for s in status_ or ()], limit=limit, offset=offset
    )
    items = [request_public(session, r, jobs.actor_for(session, user, r)) for r in rows]
    return RequestPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{request_id}", response_model=RequestPublic)
def get_request(request_id: int, session: SessionDep, user: CurrentUser) -> RequestPublic:
    """One request, with what you may do next."""
    request, actor = jobs.request_for(session, user, request_id)
    return request_public(session, request, actor)


@router.get("/{request_id}/candidates", response_model=list[CandidatePublic])
def candidates(request_id: int, session: SessionDep, _user: MarketAdmin) -> list[CandidatePublic]:
    """Suitable workers, best first, each factor of the score explained."""
    request = jobs.get_request(session, request_id)
    return [candidate_public(c) for c in jobs.candidates_for(session, request)]


@router.post("/{request_id}/assign", response_model=RequestPublic)
def assign(
    request_id: int, body: AssignBody, session: SessionDep, market: MarketDep, user: MarketAdmin
) -> RequestPublic:
    """Give the job to a worker."""
    request = jobs.get_request(session, request_id)
    jobs.assign(session, market.notifier, request, worker_id=body.worker_id, user=user)
    return request_public(session, request, Actor.ADMIN)


@router.post("/{request_id}/goods/assess", response_model=RequestPublic)
def assess(
    request_id: int, body: AssessBody, session: SessionDep, user: MarketAdmin
) -> RequestPublic:
    """Accept offered goods with a value, or decline them with a reason."""
    request = jobs.get_request(session, request_id)
    jobs.assess_goods(session, request, _assessments(body.assessments), user=user)
    return request_public(session, request, Actor.ADMIN)


@router.post("/{request_id}/quote", response_model=RequestPublic)
def quote(
    request_id: int, body: QuoteCreate, session: SessionDep, market: MarketDep, user: MarketAdmin
) -> RequestPublic:
    """Send the client a quote: price and date, accepted goods credited against the price."""
    request = jobs.get_request(session, request_id)
    jobs.send_quote(
        session,
        market.notifier,
        request,
        price_cents=body.price_cents,
        date=body.date,
        note=body.note,
        assessments=_assessments(body.assessments),
        user=user,
    )
    return request_public(session, request, Actor.ADMIN)


@router.post("/{request_id}/accept", response_model=RequestPublic)
def accept(
    request_id: int, session: SessionDep, market: MarketDep, user: CurrentUser
) -> RequestPublic:
    """Accept the quote: the job is scheduled."""
    request, actor = jobs.request_for(session, user, request_id)
    jobs.accept_quote(session, market.notifier, request, user=user)
    return request_public(session, request, actor)


@router.post("/{request_id}/decline", response_model=RequestPublic)
def decline(
    request_id: int, body: ReasonBody, session: SessionDep, market: MarketDep, user: CurrentUser
) -> RequestPublic:
    """Decline the quote (a reason helps the cooperative quote again)."""
    request, actor = jobs.request_for(session, user, request_id)
    jobs.decline_quote(session, market.notifier, request, user=user, reason=body.reason)
    return request_public(session, request, actor)


@router.post("/{request_id}/complete", response_model=RequestPublic)
def complete(
    request_id: int, session: SessionDep, market: MarketDep, user: CurrentUser
) -> RequestPublic:
    """Mark the job done (its worker or an administrator)."""
    request, actor = jobs.request_for(session, user, request_id)
    jobs.complete(session, market.notifier, request, user=user)
    return request_public(session, request, actor)


@router.post("/{request_id}/close", response_model=RequestPublic)
def close(
    request_id: int, session: SessionDep, market: MarketDep, user: MarketAdmin
) -> RequestPublic:
    """Close a finished or declined job."""
    request = jobs.get_request(session, request_id)
    jobs.close(session, market.notifier, request, user=user)
    return request_public(session, request, Actor.ADMIN)


@router.post("/{request_id}/cancel", response_model=RequestPublic)
def cancel(
    request_id: int, body: ReasonBody, session: SessionDep, market: MarketDep, user: CurrentUser
) -> RequestPublic:
    """Cancel a request that is not scheduled yet (its client or an administrator)."""
    request, actor = jobs.request_for(session, user, request_id)
    jobs.cancel(session, market.notifier, request, user=user, reason=body.reason)
    return request_public(session, request, actor)


@router.post(
    "/{request_id}/review", status_code=status.HTTP_201_CREATED, response_model=ReviewPublic
)
def rate(
    request_id: int, body: ReviewCreate, session: SessionDep, market: MarketDep, user: CurrentUser
) -> ReviewPublic:
    """Rate the finished job, 1 to 5 stars with a comment: its client, once."""
    request = jobs.get_request(session, request_id)
    if jobs.actor_for(session, user, request) is not Actor.CLIENT:
        raise Forbidden("request", "only the client of this job may rate it")
    review = reviews.rate(
        session, market.notifier, request, user=user, stars=body.stars, comment=body.comment
    )
    return review_public(review)
