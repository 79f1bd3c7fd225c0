"""Rows as the API shows them: what each person may see of a worker, a request, a review."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import User
from . import lifecycle
from .jobs import current_quote, photos_of
from .lifecycle import Actor
from .models import (
    Category,
    Good,
    GoodKind,
    Quote,
    Review,
    ServiceRequest,
    WorkerKind,
    WorkerProfile,
)
from .ranking import RankedCandidate
from .reviews import review_of
from .schemas import (
    CandidatePublic,
    CategoryPublic,
    CategoryTree,
    FactorPublic,
    GoodPublic,
    PersonRef,
    QuotePublic,
    RequestPublic,
    ReviewPublic,
    ServiceRef,
    WorkerPublic,
    WorkerRef,
)

MEDIA_PATH = "/api/v1/market/media"


def media_url(media_id: int) -> str:
    """Where a photo is served."""
    return f"{MEDIA_PATH}/{media_id}"


def category_public(category: Category) -> CategoryPublic:
    """A category or service."""
    return CategoryPublic(
        id=category.id,
        parent_id=category.parent_id,
        slug=category.slug,
        name=category.name,
        name_en=category.name_en,
        description=category.description,
        position=category.position,
        active=category.active,
    )


def category_tree(category: Category, *, include_inactive: bool = False) -> CategoryTree:
    """A category with its services in display order."""
    services = sorted(category.children, key=lambda c: (c.position, c.name))
    return CategoryTree(
        **category_public(category).model_dump(),
        services=[category_public(s) for s in services if include_inactive or s.active],
    )


def service_ref(service: Category) -> ServiceRef:
    """A service with its category's name."""
    parent = service.parent
    return ServiceRef(
        id=service.id,
        name=service.name,
        name_en=service.name_en,
        category_id=service.parent_id,
        category_name=parent.name if parent else "",
    )


def rating_average(worker: WorkerProfile) -> float | None:
    """The plain average of the visible reviews, one decimal (None before the first)."""
    if worker.rating_count == 0:
        return None
    return round(worker.rating_sum / worker.rating_count, 1)


def worker_public(worker: WorkerProfile) -> WorkerPublic:
    """What anyone may see of a worker (no e-mail, no account details)."""
    services = sorted(
        (s.category for s in worker.skills), key=lambda c: (c.parent_id or 0, c.position, c.name)
    )
    return WorkerPublic(
        id=worker.id,
        kind=WorkerKind(worker.kind),
        display_name=worker.display_name,
        description=worker.description,
        services=[service_ref(c) for c in services],
        areas=[a.name for a in worker.areas],
        availability={k: list(v) for k, v in (worker.availability or {}).items()},
        photo_url=media_url(worker.photo_id) if worker.photo_id else None,
        rating_average=rating_average(worker),
        rating_count=worker.rating_count,
        active=worker.active,
    )


def review_public(review: Review, *, show_reason: bool = False) -> ReviewPublic:
    """A review; why it was hidden is for administrators."""
    return ReviewPublic(
        id=review.id,
        request_id=review.request_id,
        stars=review.stars,
        comment=review.comment,
        created_at=review.created_at,
        hidden=review.hidden,
        hidden_reason=review.hidden_reason if show_reason else "",
    )


def quote_public(quote: Quote) -> QuotePublic:
    """A quote with its credit."""
    return QuotePublic(
        id=quote.id,
        price_cents=quote.price_cents,
        goods_value_cents=quote.goods_value_cents,
        credit_cents=quote.credit_cents,
        due_cents=quote.due_cents,
        date=quote.date,
        note=quote.note,
        status=quote.status,
        decline_reason=quote.decline_reason,
        created_at=quote.created_at,
        decided_at=quote.decided_at,
    )


def good_public(good: Good, photo_ids: list[int]) -> GoodPublic:
    """An offered good and its assessment."""
    return GoodPublic(
        id=good.id,
        kind=GoodKind(good.kind),
        title=good.title,
        description=good.description,
        status=good.status,
        value_cents=good.value_cents,
        decline_reason=good.decline_reason,
        photo_urls=[media_url(m) for m in photo_ids],
    )


def request_public(session: Session, request: ServiceRequest, actor: Actor) -> RequestPublic:
    """A request as one of its people sees it, with the actions open to them."""
    client = session.get(User, request.client_id)
    worker = request.worker
    photos, good_photos = photos_of(session, request)
    quote = current_quote(request)
    review = review_of(session, request)
    actions = [a.value for a in lifecycle.allowed_actions(request.status, actor)]
    if review is not None and "rate" in actions:
        actions.remove("rate")
    return RequestPublic(
        id=request.id,
        status=request.status,
        service=service_ref(request.category),
        description=request.description,
        date_kind=request.date_kind,
        exact_date=request.exact_date,
        window_start=request.window_start,
        window_end=request.window_end,
        time_of_day=request.time_of_day,
        area=request.area,
        client=PersonRef(id=request.client_id, name=client.name if client else ""),
        worker=(
            WorkerRef(id=worker.id, display_name=worker.display_name, kind=WorkerKind(worker.kind))
            if worker
            else None
        ),
        scheduled_date=request.scheduled_date,
        photo_urls=[media_url(m) for m in photos],
        goods=[good_public(g, good_photos.get(g.id, [])) for g in request.goods],
        quote=quote_public(quote) if quote else None,
        review=review_public(review, show_reason=actor is Actor.ADMIN) if review else None,
        created_at=request.created_at,
        updated_at=request.updated_at,
        actions=actions,
    )


def candidate_public(candidate: RankedCandidate) -> CandidatePublic:
    """A ranked worker with every factor explained."""
    return CandidatePublic(
        worker_id=candidate.worker_id,
        display_name=candidate.name,
        kind=candidate.kind,
        rank=candidate.rank,
        total=candidate.total,
        eligible=candidate.eligible,
        factors=[
            FactorPublic(
                name=f.name,
                score=f.score,
                weight=f.weight,
                reason=f.reason,
                note=f.explain(),
                detail=dict(f.detail),
            )
            for f in candidate.factors
        ],
    )
