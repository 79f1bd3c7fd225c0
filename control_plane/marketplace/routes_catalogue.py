"""API: the catalogue, worker profiles, search, photos, reviews' moderation and the stock.

Reading the catalogue, searching and worker pages are public (a client looks before logging
in); everything else names the roles it admits and checks the object it touches.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Response, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy import select

from ..api.deps import CurrentUser, SessionDep
from ..models import Role, User
from . import catalogue, photos, reviews, stock, workers
from .context import MarketDep
from .deps import MarketAdmin, OptionalUser
from .errors import Forbidden, Invalid, NotFound
from .jobs import is_admin
from .models import Category, WorkerKind
from .schemas import (
    CategoryCreate,
    CategoryPublic,
    CategoryTree,
    CategoryUpdate,
    MediaPublic,
    ReviewHide,
    ReviewPublic,
    SearchHit,
    SearchResults,
    StockCreate,
    StockPublic,
    StockUpdate,
    WorkerCreate,
    WorkerDetail,
    WorkerPublic,
    WorkerUpdate,
)
from .search import WorkerQuery, search_workers
from .views import category_public, category_tree, media_url, review_public, worker_public

router = APIRouter(prefix="/market", tags=["marketplace"])

EXCERPT = 240


# --- catalogue ----------------------------------------------------------------------------


@router.get("/categories", response_model=list[CategoryTree])
def list_categories(
    session: SessionDep, user: OptionalUser, include_inactive: bool = False
) -> list[CategoryTree]:
    """The catalogue: categories and their services (public; inactive ones for admins)."""
    show_all = include_inactive and user is not None and is_admin(user)
    return [
        category_tree(c, include_inactive=show_all)
        for c in catalogue.list_categories(session, include_inactive=show_all)
    ]


@router.post("/categories", status_code=status.HTTP_201_CREATED, response_model=CategoryPublic)
def create_category(body: CategoryCreate, session: SessionDep, user: MarketAdmin) -> CategoryPublic:
    """Add a category, or a service to a category (``parent_id``)."""
    category = catalogue.create_category(session, **body.model_dump(), actor=user)
    return category_public(category)


@router.patch("/categories/{category_id}", response_model=CategoryPublic)
def update_category(
    category_id: int, body: CategoryUpdate, session: SessionDep, user: MarketAdmin
) -> CategoryPublic:
    """Rename, describe, reorder or (de)activate a category or service."""
    category = catalogue.get_category(session, category_id, field="category")
    catalogue.update_category(session, category, **body.model_dump(exclude_unset=True), actor=user)
    return category_public(category)


# --- workers ------------------------------------------------------------------------------


def _may_edit(user: User, worker_user_id: int) -> bool:
    return is_admin(user) or user.id == worker_user_id


@router.post("/workers", status_code=status.HTTP_201_CREATED, response_model=WorkerPublic)
def create_worker(body: WorkerCreate, session: SessionDep, user: CurrentUser) -> WorkerPublic:
    """Create a worker profile: administrators for anyone, a worker for themselves."""
    if body.user_id is not None and body.user_id != user.id:
        if not is_admin(user):
            raise Forbidden("user_id", "only administrators create profiles for others")
        owner = session.get(User, body.user_id)
        if owner is None:
            raise Invalid("user_id", f"no user with id {body.user_id}")
    elif user.role in (Role.WORKER.value,):
        owner = user
    else:
        raise Forbidden("user_id", "give the user_id of the worker this profile is for")
    worker = workers.create_worker(
        session,
        user=owner,
        kind=body.kind,
        display_name=body.display_name,
        description=body.description,
        skill_ids=body.skills,
        areas=body.areas,
        availability={str(d): [str(s) for s in v] for d, v in body.availability.items()},
        photo_id=body.photo_id,
        actor=user,
    )
    return worker_public(workers.load_workers(session, [worker.id])[worker.id])


@router.get("/workers/me", response_model=WorkerPublic)
def my_profile(session: SessionDep, user: CurrentUser) -> WorkerPublic:
    """Your own worker profile."""
    worker = workers.worker_of(session, user)
    if worker is None:
        raise NotFound("worker", "you have no worker profile")
    return worker_public(workers.load_workers(session, [worker.id])[worker.id])


@router.get("/workers/{worker_id}", response_model=WorkerDetail)
def get_worker(worker_id: int, session: SessionDep, user: OptionalUser) -> WorkerDetail:
    """A worker's public page: profile, average rating and the visible reviews."""
    worker = workers.load_workers(session, [worker_id]).get(worker_id)
    if worker is None or (
        not worker.active and (user is None or not _may_edit(user, worker.user_id))
    ):
        raise NotFound("worker", f"no worker with id {worker_id}")
    return WorkerDetail(
        **worker_public(worker).model_dump(),
        reviews=[review_public(r) for r in reviews.visible_reviews(session, worker.id)],
    )


@router.patch("/workers/{worker_id}", response_model=WorkerPublic)
def update_worker(
    worker_id: int, body: WorkerUpdate, session: SessionDep, user: CurrentUser
) -> WorkerPublic:
    """Change a profile: its worker or an administrator."""
    worker = workers.get_worker(session, worker_id, field="worker")
    if not _may_edit(user, worker.user_id):
        raise Forbidden("worker", "this is not your profile")
    fields = body.model_dump(exclude_unset=True)
    workers.update_worker(
        session,
        worker,
        actor=user,
        kind=fields.get("kind"),
        display_name=fields.get("display_name"),
        description=fields.get("description"),
        skill_ids=fields.get("skills"),
        areas=fields.get("areas"),
        availability=fields.get("availability"),
        photo_id=fields.get("photo_id"),
        active=fields.get("active"),
    )
    return worker_public(workers.load_workers(session, [worker.id])[worker.id])


# --- search -------------------------------------------------------------------------------


def _excerpt(text: str) -> str:
    if len(text) <= EXCERPT:
        return text
    return text[:EXCERPT].rsplit(" ", 1)[0] + "…"


@router.get("/search", response_model=SearchResults)
def search(
    session: SessionDep,
    _user: OptionalUser,
    q: Annotated[str, Query(max_length=200)] = "",
    category: int | None = None,
    kind: Annotated[list[WorkerKind] | None, Query()] = None,
    area: Annotated[str, Query(max_length=120)] = "",
    sort: Literal["relevance", "rating"] = "relevance",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchResults:
    """Find workers by free text (Italian as typed), service category, profile and area."""
    category_ids: tuple[int, ...] = ()
    if category is not None:
        try:
            category_ids = catalogue.services_of(session, category)
        except NotFound as exc:
            raise Invalid("category", exc.reason) from exc
    results = search_workers(
        session,
        WorkerQuery(
            text=q,
            category_ids=category_ids,
            kinds=tuple(k.value for k in kind or ()),
            area=area,
            sort=sort,
            limit=limit,
            offset=offset,
        ),
    )
    found = workers.cards(session, [h.worker_id for h in results.hits])
    items = []
    for hit in results.hits:
        card = found[hit.worker_id]
        items.append(
            SearchHit(
                id=card.id,
                kind=WorkerKind(card.kind),
                display_name=card.display_name,
                excerpt=_excerpt(card.description),
                services=[name for name, _ in card.services],
                areas=list(card.areas),
                rating_average=(
                    round(card.rating_sum / card.rating_count, 1) if card.rating_count else None
                ),
                rating_count=card.rating_count,
                photo_url=media_url(card.photo_id) if card.photo_id else None,
                score=round(hit.score, 6),
            )
        )
    service_ids = catalogue.search_services(session, q) if q.strip() and offset == 0 else []
    services = (
        {c.id: c for c in session.scalars(select(Category).where(Category.id.in_(service_ids)))}
        if service_ids
        else {}
    )
    return SearchResults(
        query=q,
        total=results.total,
        limit=limit,
        offset=offset,
        items=items,
        services=[category_public(services[i]) for i in service_ids if i in services],
    )


# --- photos -------------------------------------------------------------------------------


@router.post("/media", status_code=status.HTTP_201_CREATED, response_model=MediaPublic)
def upload_media(
    file: Annotated[UploadFile, File(description="a JPEG, PNG or WebP photo")],
    session: SessionDep,
    market: MarketDep,
    user: CurrentUser,
) -> MediaPublic:
    """Upload a photo to use in a request, an offered good or a profile."""
    # Read one byte past the limit: enough to know it is too big without reading it all.
    data = file.file.read(market.store.max_bytes + 1)
    with photos.written_files(market.store) as written:
        media = photos.upload(
            session, market.store, owner=user, data=data, field="file", written=written
        )
        session.commit()
    return MediaPublic(
        id=media.id, content_type=media.content_type, size=media.size, url=media_url(media.id)
    )


@router.get("/media/{media_id}", response_class=FileResponse)
def get_media(
    media_id: int, session: SessionDep, market: MarketDep, user: OptionalUser
) -> Response:
    """A photo: profile photos for anyone, others for the people of their request."""
    media = photos.get_media(session, media_id)
    if not photos.can_view(session, user, media):
        if user is None:
            raise Forbidden("media", "log in to see this photo")
        raise Forbidden("media", "this photo is not yours to see")
    path = market.store.path(media.path)
    if not path.is_file():
        raise NotFound("media", f"the file of photo {media_id} is missing")
    public = media.attached_to == "worker"
    return FileResponse(
        path,
        media_type=media.content_type,
        headers={
            "cache-control": "public, max-age=3600" if public else "private, no-store",
            "x-content-type-options": "nosniff",
        },
    )


# --- reviews ------------------------------------------------------------------------------


@router.post("/reviews/{review_id}/hide", response_model=ReviewPublic)
def hide_review(
    review_id: int, body: ReviewHide, session: SessionDep, user: MarketAdmin
) -> ReviewPublic:
    """Hide an abusive review with a reason (or show it again); the average follows."""
    review = reviews.get_review(session, review_id)
    reviews.set_hidden(session, review, hidden=body.hidden, reason=body.reason, actor=user)
    return review_public(review, show_reason=True)


# --- stock --------------------------------------------------------------------------------


def _stock_public(item: stock.StockItem) -> StockPublic:
    return StockPublic(
        id=item.id,
        source=item.source,
        good_id=item.good_id,
        workshop_ref=item.workshop_ref,
        kind=item.kind,
        title=item.title,
        description=item.description,
        value_cents=item.value_cents,
        status=item.status,
        created_at=item.created_at,
    )


@router.get("/stock", response_model=list[StockPublic])
def list_stock(
    session: SessionDep,
    _user: MarketAdmin,
    status_: Annotated[stock.StockStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[StockPublic]:
    """The cooperative's stock, newest first."""
    items = stock.list_items(
        session, status=status_.value if status_ else None, limit=limit, offset=offset
    )
    return [_stock_public(i) for i in items]


@router.post("/stock", status_code=status.HTTP_201_CREATED, response_model=StockPublic)
def add_stock(body: StockCreate, session: SessionDep, user: MarketAdmin) -> StockPublic:
    """Offer an item in the stock: a refurbished PC from the workshop, a donation."""
    item = stock.add_item(
        session,
        source=body.source,
        kind=body.kind.value,
        title=body.title,
        description=body.description,
        value_cents=body.value_cents,
        workshop_ref=body.workshop_ref,
        actor=user,
    )
    return _stock_public(item)


@router.patch("/stock/{item_id}", response_model=StockPublic)
def update_stock(
    item_id: int, body: StockUpdate, session: SessionDep, user: MarketAdmin
) -> StockPublic:
    """Reserve, sell or dispose of a stock item."""
    item = stock.set_status(session, stock.get_item(session, item_id), body.status, actor=user)
    return _stock_public(item)
