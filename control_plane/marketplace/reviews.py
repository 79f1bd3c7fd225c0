"""Ratings: once per finished job, by that job's client; administrators hide abuse."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..db import utcnow
from ..models import User
from . import lifecycle
from .errors import Conflict, Forbidden, Invalid, NotFound
from .jobs import actor_for
from .lifecycle import Action, Actor
from .models import Review, ServiceRequest, WorkerProfile
from .notify import Notifier
from .workers import recompute_rating


def review_of(session: Session, request: ServiceRequest) -> Review | None:
    """The review of ``request``, if it was rated."""
    return session.scalar(select(Review).where(Review.request_id == request.id))


def rate(
    session: Session,
    notifier: Notifier,
    request: ServiceRequest,
    *,
    user: User,
    stars: int,
    comment: str = "",
) -> Review:
    """The job's client rates it 1-5 stars with a comment; a second rating is refused."""
    if actor_for(session, user, request) is not Actor.CLIENT:
        raise Forbidden("request", "only the client of this job may rate it")
    try:
        lifecycle.check(request.status, Action.RATE, Actor.CLIENT)
    except lifecycle.TransitionError:
        raise Conflict("status", "a job can be rated only once it is done") from None
    if not 1 <= stars <= 5:
        raise Invalid("stars", "must be from 1 to 5")
    if review_of(session, request) is not None:
        raise Conflict("request", "this job has already been rated")
    worker = session.get(WorkerProfile, request.worker_id) if request.worker_id else None
    if worker is None:
        raise Conflict("request", "this job has no worker to rate")
    review = Review(
        request_id=request.id,
        worker_id=worker.id,
        client_id=user.id,
        stars=stars,
        comment=comment.strip(),
    )
    session.add(review)
    try:
        # Two ratings racing each other meet the unique constraint here; the caller's
        # transaction is then rolled back whole, so nothing of this attempt is kept.
        session.flush()
    except IntegrityError:
        raise Conflict("request", "this job has already been rated") from None
    recompute_rating(session, worker)
    audit.record(
        session,
        action="market.review.create",
        object_type="market_review",
        object_id=review.id,
        actor=user,
        data={"request_id": request.id, "stars": stars},
    )
    notifier.tell_worker(session, worker, "review_received", request, review=review)
    return review


def get_review(session: Session, review_id: int) -> Review:
    """The review with ``review_id``; :class:`NotFound` if none."""
    review = session.get(Review, review_id)
    if review is None:
        raise NotFound("review", f"no review with id {review_id}")
    return review


def set_hidden(
    session: Session, review: Review, *, hidden: bool, reason: str = "", actor: User
) -> Review:
    """Hide an abusive review (a reason is required) or show it again; averages follow."""
    if hidden and not reason.strip():
        raise Invalid("reason", "say why the review is hidden")
    review.hidden = hidden
    review.hidden_reason = reason.strip() if hidden else ""
    review.hidden_by = actor.id if hidden else None
    review.hidden_at = utcnow() if hidden else None
    session.flush()
    worker = session.get(WorkerProfile, review.worker_id)
    assert worker is not None
    recompute_rating(session, worker)
    audit.record(
        session,
        action="market.review.hide" if hidden else "market.review.show",
        object_type="market_review",
        object_id=review.id,
        actor=actor,
        data={"reason": review.hidden_reason},
    )
    return review


def visible_reviews(session: Session, worker_id: int, *, limit: int = 50) -> list[Review]:
    """A worker's reviews that are not hidden, newest first."""
    return list(
        session.scalars(
            select(Review)
            .where(Review.worker_id == worker_id, Review.hidden.is_(False))
            .order_by(Review.created_at.desc(), Review.id.desc())
            .limit(limit)
        )
    )
