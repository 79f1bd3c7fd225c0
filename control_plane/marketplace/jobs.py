"""Quote requests and the jobs they become: create, assign, assess goods, quote, decide, finish.

Every function works in the caller's transaction and either does all of its work or raises
before writing anything that matters: the checks come first, the writes after.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from .. import audit
from ..db import utcnow
from ..models import Role, User
from . import lifecycle
from .catalogue import get_service
from .errors import Conflict, Forbidden, Invalid, NotFound
from .lifecycle import Action, Actor, RequestStatus
from .models import (
    Category,
    Good,
    GoodKind,
    GoodPhoto,
    GoodStatus,
    Media,
    Quote,
    QuoteStatus,
    RequestPhoto,
    ServiceRequest,
    WorkerProfile,
    WorkerSkill,
)
from .notify import Notifier
from .ranking import CandidateFacts, JobFacts, RankedCandidate, rank_candidates
from .stock import goods_to_stock
from .workers import get_worker, worker_of

# Days people choose are the cooperative's days, whatever the server's clock says.
LOCAL_TZ = ZoneInfo("Europe/Rome")
ADMIN_ROLES = frozenset({Role.ADMIN.value, Role.MARKET_ADMIN.value})
MAX_WINDOW_DAYS = 366


def today(now: dt.datetime | None = None) -> dt.date:
    """Today's date where the cooperative works."""
    return (now or utcnow()).astimezone(LOCAL_TZ).date()


@dataclass(frozen=True)
class GoodInput:
    """Something offered in exchange, as the client describes it."""

    kind: str
    title: str
    description: str = ""
    photo_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Assessment:
    """The cooperative's verdict on one offered good."""

    good_id: int
    accepted: bool
    value_cents: int | None = None
    reason: str = ""


def is_admin(user: User) -> bool:
    """True for marketplace (and system) administrators."""
    return user.role in ADMIN_ROLES


def actor_for(session: Session, user: User, request: ServiceRequest) -> Actor:
    """How ``user`` relates to ``request``."""
    if is_admin(user):
        return Actor.ADMIN
    if request.client_id == user.id:
        return Actor.CLIENT
    if request.worker_id is not None:
        worker = worker_of(session, user)
        if worker is not None and worker.id == request.worker_id:
            return Actor.WORKER
    return Actor.OTHER


def get_request(session: Session, request_id: int) -> ServiceRequest:
    """The request with ``request_id``; :class:`NotFound` if none."""
    request = session.get(ServiceRequest, request_id)
    if request is None:
        raise NotFound("request", f"no request with id {request_id}")
    return request


def request_for(session: Session, user: User, request_id: int) -> tuple[ServiceRequest, Actor]:
    """The request and ``user``'s part in it; :class:`Forbidden` if they have none."""
    request = get_request(session, request_id)
    actor = actor_for(session, user, request)
    if actor is Actor.OTHER:
        raise Forbidden("request", f"request {request_id} is not yours")
    return request, actor


def _take(request: ServiceRequest, action: Action, actor: Actor) -> RequestStatus:
    try:
        return lifecycle.check(request.status, action, actor)
    except lifecycle.NotAllowed as exc:
        raise Forbidden("request", str(exc)) from exc
    except lifecycle.TransitionError as exc:
        raise Conflict("status", str(exc).split(": ", 1)[-1]) from exc


def _record(
    session: Session, request: ServiceRequest, action: str, actor: User, **data: object
) -> None:
    audit.record(
        session,
        action=f"market.request.{action}",
        object_type="market_request",
        object_id=request.id,
        actor=actor,
        data=dict(data),
    )


def _photos(
    session: Session, owner: User, ids: Sequence[int], field: str, limit: int
) -> tuple[list[Media], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    found: list[Media] = []
    if len(ids) > limit:
        errors.append((field, f"at most {limit} photos"))
    for pid in dict.fromkeys(ids):
        media = session.get(Media, pid)
        if media is None or media.owner_id != owner.id:
            errors.append((field, f"no photo with id {pid} uploaded by you"))
        elif media.attached_to:
            errors.append((field, f"photo {pid} is already used"))
        else:
            found.append(media)
    return found, errors


def create_request(
    session: Session,
    notifier: Notifier,
    *,
    client: User,
    service_id: int,
    description: str,
    date_kind: str,
    exact_date: dt.date | None = None,
    window_start: dt.date | None = None,
    window_end: dt.date | None = None,
    time_of_day: str = "any",
    area: str,
    photo_ids: Sequence[int] = (),
    goods: Sequence[GoodInput] = (),
    max_photos: int = 6,
    now: dt.datetime | None = None,
) -> ServiceRequest:
    """A client asks for a quote; every problem with the input is reported at once."""
    if client.role not in (Role.CLIENT.value, *ADMIN_ROLES):
        raise Forbidden("request", f"only clients may ask for quotes (your role is {client.role})")
    errors: list[tuple[str, str]] = []
    service: Category | None = None
    try:
        service = get_service(session, service_id)
    except Invalid as exc:
        errors += exc.errors
    errors += date_errors(date_kind, exact_date, window_start, window_end, today(now))
    photos, photo_errors = _photos(session, client, photo_ids, "photo_ids", max_photos)
    errors += photo_errors
    good_photos: list[list[Media]] = []
    for i, offered in enumerate(goods):
        if offered.kind not in {k.value for k in GoodKind}:
            errors.append((f"goods.{i}.kind", f"{offered.kind!r} is not a kind of good"))
        found, photo_errors = _photos(
            session, client, offered.photo_ids, f"goods.{i}.photo_ids", max_photos
        )
        errors += photo_errors
        good_photos.append(found)
    used = [p.id for p in photos] + [p.id for ps in good_photos for p in ps]
    if len(used) != len(set(used)):
        errors.append(("photo_ids", "the same photo cannot be used twice"))
    problem = Invalid.collect(errors)
    if problem is not None:
        raise problem
    assert service is not None
    request = ServiceRequest(
        client_id=client.id,
        category=service,
        description=description,
        date_kind=date_kind,
        exact_date=exact_date if date_kind == "exact" else None,
        window_start=window_start if date_kind == "window" else None,
        window_end=window_end if date_kind == "window" else None,
        time_of_day=time_of_day,
        area=area,
        status=RequestStatus.NEW.value,
    )
    session.add(request)
    session.flush()
    for media in photos:
        media.attached_to = "request"
        session.add(RequestPhoto(request_id=request.id, media_id=media.id))
    for good_input, media_list in zip(goods, good_photos, strict=True):
        good = Good(
            request_id=request.id,
            kind=good_input.kind,
            title=good_input.title,
            description=good_input.description,
        )
        session.add(good)
        session.flush()
        for media in media_list:
            media.attached_to = "good"
            session.add(GoodPhoto(good_id=good.id, media_id=media.id))
    session.flush()
    _record(session, request, "create", client, service_id=service.id, goods=len(goods))
    notifier.tell(session, client, "request_received", request)
    return request


def date_errors(
    kind: str,
    exact: dt.date | None,
    start: dt.date | None,
    end: dt.date | None,
    current: dt.date,
) -> list[tuple[str, str]]:
    if kind == "exact":
        if exact is None:
            return [("exact_date", "choose a date")]
        if exact < current:
            return [("exact_date", "the date is in the past")]
        return []
    if kind != "window":
        return [("date_kind", "must be 'exact' or 'window'")]
    errors = []
    if start is None:
        errors.append(("window_start", "choose the first day"))
    if end is None:
        errors.append(("window_end", "choose the last day"))
    if start is not None and end is not None:
        if end < start:
            errors.append(("window_end", "the last day is before the first"))
        elif end < current:
            errors.append(("window_end", "the window is in the past"))
        elif (end - start).days > MAX_WINDOW_DAYS:
            errors.append(("window_end", f"a window is at most {MAX_WINDOW_DAYS} days"))
    return errors


def visible_requests(
    session: Session,
    user: User,
    *,
    status: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ServiceRequest], int]:
    """The requests ``user`` may see (all for admins, their own for clients, their jobs for
    workers), newest first, with the total."""
    query = select(ServiceRequest)
    if not is_admin(user):
        worker = worker_of(session, user)
        if user.role == Role.WORKER.value:
            query = query.where(ServiceRequest.worker_id == (worker.id if worker else -1))
        else:
            query = query.where(ServiceRequest.client_id == user.id)
    if status:
        query = query.where(ServiceRequest.status.in_(status))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(
            selectinload(ServiceRequest.category).selectinload(Category.parent),
            selectinload(ServiceRequest.goods),
            selectinload(ServiceRequest.quotes),
            selectinload(ServiceRequest.worker),
        )
        .order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


# --- assignment ---------------------------------------------------------------------------


def job_facts(request: ServiceRequest) -> JobFacts:
    """What the ranking needs to know about ``request``."""
    service = request.category
    parent = service.parent or service
    window = None
    if request.window_start is not None and request.window_end is not None:
        window = (request.window_start, request.window_end)
    return JobFacts(
        service_id=service.id,
        category_id=parent.id,
        service_name=service.name,
        category_name=parent.name,
        area=request.area,
        exact_date=request.exact_date,
        window=window,
        time_of_day=request.time_of_day,
    )


def candidates_for(session: Session, request: ServiceRequest) -> list[RankedCandidate]:
    """Active workers offering the service or its category, ranked for ``request``."""
    facts = job_facts(request)
    in_category = select(Category.id).where(
        (Category.parent_id == facts.category_id) | (Category.id == facts.category_id)
    )
    workers = list(
        session.scalars(
            select(WorkerProfile)
            .where(
                WorkerProfile.active.is_(True),
                WorkerProfile.id.in_(
                    select(WorkerSkill.worker_id).where(WorkerSkill.category_id.in_(in_category))
                ),
            )
            .options(
                selectinload(WorkerProfile.skills).selectinload(WorkerSkill.category),
                selectinload(WorkerProfile.areas),
            )
        )
    )
    ids = [w.id for w in workers]
    loads: dict[int, int] = {}
    if ids:
        loads = {
            wid: n
            for wid, n in session.execute(
                select(ServiceRequest.worker_id, func.count())
                .where(
                    ServiceRequest.worker_id.in_(ids),
                    ServiceRequest.status.in_([s.value for s in lifecycle.ACTIVE]),
                    ServiceRequest.id != request.id,
                )
                .group_by(ServiceRequest.worker_id)
            ).all()
            if wid is not None
        }
    facts_list = [
        CandidateFacts(
            worker_id=w.id,
            name=w.display_name,
            kind=w.kind,
            service_ids=frozenset(s.category_id for s in w.skills),
            category_ids=frozenset(s.category.parent_id or s.category_id for s in w.skills),
            areas=tuple(a.name for a in w.areas),
            availability=w.availability or {},
            rating_sum=w.rating_sum,
            rating_count=w.rating_count,
            active_jobs=loads.get(w.id, 0),
        )
        for w in workers
    ]
    return rank_candidates(facts, facts_list)


def assign(
    session: Session,
    notifier: Notifier,
    request: ServiceRequest,
    *,
    worker_id: int,
    user: User,
) -> ServiceRequest:
    """An administrator gives the job to a worker."""
    new_status = _take(request, Action.ASSIGN, actor_for(session, user, request))
    worker = get_worker(session, worker_id)
    if not worker.active:
        raise Invalid("worker_id", f"{worker.display_name} is not taking jobs")
    previous = request.worker_id
    request.worker = worker
    request.status = new_status.value
    request.assigned_at = request.updated_at = utcnow()
    session.flush()
    _record(session, request, "assign", user, worker_id=worker.id, previous=previous)
    notifier.tell_worker(session, worker, "job_assigned", request, worker=worker)
    notifier.tell(session, _client(session, request), "worker_assigned", request, worker=worker)
    return request


def _client(session: Session, request: ServiceRequest) -> User | None:
    return session.get(User, request.client_id)


# --- goods and quotes ---------------------------------------------------------------------

_ASSESSABLE = frozenset(
    {RequestStatus.NEW, RequestStatus.ASSIGNED, RequestStatus.QUOTED, RequestStatus.DECLINED}
)


def _assessment_errors(
    request: ServiceRequest, assessments: Sequence[Assessment]
) -> list[tuple[str, str]]:
    goods = {g.id for g in request.goods}
    errors: list[tuple[str, str]] = []
    seen: set[int] = set()
    for i, a in enumerate(assessments):
        if a.good_id not in goods:
            errors.append((f"assessments.{i}.good_id", f"good {a.good_id} is not in this request"))
        elif a.good_id in seen:
            errors.append((f"assessments.{i}.good_id", f"good {a.good_id} is assessed twice"))
        seen.add(a.good_id)
        if a.accepted and (a.value_cents is None or a.value_cents <= 0):
            errors.append((f"assessments.{i}.value_cents", "give the value of an accepted good"))
        if not a.accepted and not a.reason.strip():
            errors.append((f"assessments.{i}.reason", "say why the good is declined"))
    return errors


def _apply_assessments(
    request: ServiceRequest, assessments: Sequence[Assessment], user: User
) -> None:
    goods = {g.id: g for g in request.goods}
    now = utcnow()
    for a in assessments:
        good = goods[a.good_id]
        good.status = (GoodStatus.ACCEPTED if a.accepted else GoodStatus.DECLINED).value
        good.value_cents = a.value_cents if a.accepted else None
        good.decline_reason = "" if a.accepted else a.reason.strip()
        good.assessed_at = now
        good.assessed_by = user.id


def assess_goods(
    session: Session, request: ServiceRequest, assessments: Sequence[Assessment], *, user: User
) -> None:
    """An administrator accepts offered goods with a value, or declines them with a reason."""
    if actor_for(session, user, request) is not Actor.ADMIN:
        raise Forbidden("request", "only administrators assess goods")
    if RequestStatus(request.status) not in _ASSESSABLE:
        raise Conflict("status", f"goods cannot be reassessed once a request is {request.status}")
    problem = Invalid.collect(_assessment_errors(request, assessments))
    if problem is not None:
        raise problem
    _apply_assessments(request, assessments, user)
    session.flush()
    _record(session, request, "assess", user, goods=[a.good_id for a in assessments])


def current_quote(request: ServiceRequest) -> Quote | None:
    """The newest quote that was not replaced by another."""
    live = [q for q in request.quotes if q.status != QuoteStatus.SUPERSEDED.value]
    return live[-1] if live else None


def send_quote(
    session: Session,
    notifier: Notifier,
    request: ServiceRequest,
    *,
    price_cents: int,
    date: dt.date,
    note: str = "",
    assessments: Sequence[Assessment] = (),
    user: User,
    now: dt.datetime | None = None,
) -> Quote:
    """An administrator quotes a price and a date; accepted goods are credited against it."""
    new_status = _take(request, Action.QUOTE, actor_for(session, user, request))
    errors = _assessment_errors(request, assessments)
    if price_cents < 0:
        errors.append(("price_cents", "must not be negative"))
    if date < today(now):
        errors.append(("date", "the date is in the past"))
    assessed = {a.good_id for a in assessments}
    pending = [
        g.title
        for g in request.goods
        if g.status == GoodStatus.OFFERED.value and g.id not in assessed
    ]
    if pending:
        errors.append(("assessments", f"assess every offered good first: {', '.join(pending)}"))
    problem = Invalid.collect(errors)
    if problem is not None:
        raise problem
    _apply_assessments(request, assessments, user)
    for old in request.quotes:
        if old.status == QuoteStatus.PENDING.value:
            old.status = QuoteStatus.SUPERSEDED.value
    goods_value = sum(
        g.value_cents or 0 for g in request.goods if g.status == GoodStatus.ACCEPTED.value
    )
    # Goods worth more than the job pay for all of it; the cooperative pays no change.
    credit = min(goods_value, price_cents)
    quote = Quote(
        price_cents=price_cents,
        goods_value_cents=goods_value,
        credit_cents=credit,
        due_cents=price_cents - credit,
        date=date,
        note=note,
        created_by=user.id,
    )
    request.quotes.append(quote)
    request.status = new_status.value
    request.updated_at = utcnow()
    session.flush()
    _record(session, request, "quote", user, quote_id=quote.id, price_cents=price_cents)
    notifier.tell(session, _client(session, request), "quote_sent", request, quote=quote)
    return quote


def accept_quote(
    session: Session, notifier: Notifier, request: ServiceRequest, *, user: User
) -> Quote:
    """The client accepts the quote: the job is scheduled on the quote's date."""
    new_status = _take(request, Action.ACCEPT, actor_for(session, user, request))
    quote = current_quote(request)
    assert quote is not None and quote.status == QuoteStatus.PENDING.value
    quote.status = QuoteStatus.ACCEPTED.value
    quote.decided_at = utcnow()
    request.status = new_status.value
    request.scheduled_date = quote.date
    request.updated_at = quote.decided_at
    session.flush()
    _record(session, request, "accept", user, quote_id=quote.id)
    notifier.tell_worker(session, request.worker, "quote_accepted", request, quote=quote)
    notifier.tell(session, user, "job_scheduled", request, quote=quote)
    return quote


def decline_quote(
    session: Session, notifier: Notifier, request: ServiceRequest, *, user: User, reason: str = ""
) -> Quote:
    """The client declines the quote; the administrators may quote again or close."""
    new_status = _take(request, Action.DECLINE, actor_for(session, user, request))
    quote = current_quote(request)
    assert quote is not None and quote.status == QuoteStatus.PENDING.value
    quote.status = QuoteStatus.DECLINED.value
    quote.decline_reason = reason.strip()
    quote.decided_at = utcnow()
    request.status = new_status.value
    request.updated_at = quote.decided_at
    session.flush()
    _record(session, request, "decline", user, quote_id=quote.id)
    notifier.tell_worker(session, request.worker, "quote_declined", request, quote=quote)
    return quote


def complete(
    session: Session, notifier: Notifier, request: ServiceRequest, *, user: User
) -> ServiceRequest:
    """The worker (or an administrator) marks the job done; bartered goods enter the stock."""
    new_status = _take(request, Action.COMPLETE, actor_for(session, user, request))
    request.status = new_status.value
    request.done_at = request.updated_at = utcnow()
    # The worker brings the goods back when the job is done: now the cooperative has them.
    items = goods_to_stock(session, request)
    session.flush()
    _record(session, request, "complete", user, stock_items=[i.id for i in items])
    notifier.tell(session, _client(session, request), "job_done", request)
    return request


def close(
    session: Session, notifier: Notifier, request: ServiceRequest, *, user: User
) -> ServiceRequest:
    """An administrator closes a finished (or declined) job."""
    new_status = _take(request, Action.CLOSE, actor_for(session, user, request))
    request.status = new_status.value
    request.closed_at = request.updated_at = utcnow()
    session.flush()
    _record(session, request, "close", user)
    notifier.tell(session, _client(session, request), "job_closed", request)
    notifier.tell_worker(session, request.worker, "job_closed", request)
    return request


def cancel(
    session: Session, notifier: Notifier, request: ServiceRequest, *, user: User, reason: str = ""
) -> ServiceRequest:
    """The client (or an administrator) cancels before the job is scheduled."""
    new_status = _take(request, Action.CANCEL, actor_for(session, user, request))
    for quote in request.quotes:
        if quote.status == QuoteStatus.PENDING.value:
            quote.status = QuoteStatus.SUPERSEDED.value
    request.status = new_status.value
    request.cancel_reason = reason.strip()
    request.closed_at = request.updated_at = utcnow()
    session.flush()
    _record(session, request, "cancel", user)
    notifier.tell_worker(session, request.worker, "job_canceled", request)
    return request


def photos_of(session: Session, request: ServiceRequest) -> tuple[list[int], dict[int, list[int]]]:
    """Media ids of the request's photos, and of each good's photos."""
    own = list(
        session.scalars(
            select(RequestPhoto.media_id)
            .where(RequestPhoto.request_id == request.id)
            .order_by(RequestPhoto.media_id)
        )
    )
    per_good: dict[int, list[int]] = {g.id: [] for g in request.goods}
    if per_good:
        for good_id, media_id in session.execute(
            select(GoodPhoto.good_id, GoodPhoto.media_id)
            .where(GoodPhoto.good_id.in_(per_good))
            .order_by(GoodPhoto.media_id)
        ).all():
            per_good[good_id].append(media_id)
    return own, per_good


def request_of_media(session: Session, media_id: int) -> ServiceRequest | None:
    """The request a private photo belongs to (directly or through a good)."""
    rid = session.scalar(select(RequestPhoto.request_id).where(RequestPhoto.media_id == media_id))
    if rid is None:
        rid = session.scalar(
            select(Good.request_id)
            .join(GoodPhoto, GoodPhoto.good_id == Good.id)
            .where(GoodPhoto.media_id == media_id)
        )
    return session.get(ServiceRequest, rid) if rid is not None else None
