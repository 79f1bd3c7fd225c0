"""The catalogue: categories of services and the services (subcategories) within them."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased, selectinload

from .. import audit
from ..models import User
from .errors import Conflict, Invalid, NotFound
from .models import Category, WorkerProfile, WorkerSkill
from .text import area_key, index_text, query_terms


def slugify(name: str) -> str:
    """A URL-friendly version of ``name`` ("Piccole riparazioni" -> "piccole-riparazioni")."""
    return area_key(name).replace(" ", "-")[:70] or "categoria"


def _unique_slug(session: Session, base: str) -> str:
    slug, n = base, 1
    while session.scalar(select(Category.id).where(Category.slug == slug)) is not None:
        n += 1
        slug = f"{base}-{n}"
    return slug


def service_body(category: Category) -> str:
    """The searchable text of a category or service: its names, description and parent's names."""
    parent = category.parent
    return index_text(
        category.name,
        category.name_en,
        category.description,
        parent.name if parent else "",
        parent.name_en if parent else "",
    )


def get_category(session: Session, category_id: int, *, field: str = "category_id") -> Category:
    """The category with ``category_id``; :class:`NotFound` naming ``field`` if none."""
    category = session.get(Category, category_id)
    if category is None:
        raise NotFound(field, f"no category with id {category_id}")
    return category


def get_service(session: Session, service_id: int, *, field: str = "category_id") -> Category:
    """An active service (a subcategory); :class:`Invalid` naming ``field`` otherwise."""
    category = session.get(Category, service_id)
    if category is None or not category.active:
        raise Invalid(field, f"no active service with id {service_id}")
    if category.parent_id is None:
        raise Invalid(field, f"{category.name!r} is a category: choose one of its services")
    return category


def _check_name(session: Session, name: str, parent_id: int | None, exclude: int | None) -> None:
    query = select(Category.id).where(
        func.lower(Category.name) == name.lower(),
        Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id,
    )
    if exclude is not None:
        query = query.where(Category.id != exclude)
    if session.scalar(query) is not None:
        raise Conflict("name", f"{name!r} already exists here")


def create_category(
    session: Session,
    *,
    name: str,
    name_en: str = "",
    parent_id: int | None = None,
    description: str = "",
    position: int = 0,
    actor: User | None = None,
) -> Category:
    """Add a category (no parent) or a service within a category."""
    parent = None
    if parent_id is not None:
        parent = session.get(Category, parent_id)
        if parent is None:
            raise Invalid("parent_id", f"no category with id {parent_id}")
        if parent.parent_id is not None:
            raise Invalid("parent_id", "services cannot contain services: choose a category")
    _check_name(session, name, parent_id, None)
    category = Category(
        parent=parent,
        slug=_unique_slug(session, slugify(name)),
        name=name,
        name_en=name_en,
        description=description,
        position=position,
    )
    session.add(category)
    session.flush()
    audit.record(
        session,
        action="market.category.create",
        object_type="market_category",
        object_id=category.id,
        actor=actor,
        data={"name": name, "parent_id": parent_id},
    )
    return category


def update_category(
    session: Session,
    category: Category,
    *,
    name: str | None = None,
    name_en: str | None = None,
    description: str | None = None,
    position: int | None = None,
    active: bool | None = None,
    actor: User | None = None,
) -> Category:
    """Rename, describe, reorder or (de)activate; the search follows the new names."""
    changes: dict[str, object] = {}
    if name is not None and name != category.name:
        _check_name(session, name, category.parent_id, category.id)
        category.name = changes["name"] = name
    if name_en is not None and name_en != category.name_en:
        category.name_en = changes["name_en"] = name_en
    if description is not None and description != category.description:
        category.description = description
        changes["description"] = True
    if position is not None and position != category.position:
        category.position = changes["position"] = position
    if active is not None and active != category.active:
        category.active = changes["active"] = active
    if not changes:
        return category
    session.flush()
    _reindex_after_rename(session, category)
    audit.record(
        session,
        action="market.category.update",
        object_type="market_category",
        object_id=category.id,
        actor=actor,
        data=changes,
    )
    return category


def _reindex_after_rename(session: Session, category: Category) -> None:
    # Workers' documents carry the names of what they offer and of its category.
    from .workers import reindex_worker  # workers imports this module

    ids = [category.id, *(c.id for c in category.children)]
    workers = session.scalars(
        select(WorkerProfile)
        .where(
            WorkerProfile.id.in_(
                select(WorkerSkill.worker_id).where(WorkerSkill.category_id.in_(ids))
            )
        )
        .options(selectinload(WorkerProfile.skills), selectinload(WorkerProfile.areas))
    )
    for worker in workers:
        reindex_worker(session, worker)


def list_categories(session: Session, *, include_inactive: bool = False) -> list[Category]:
    """The top-level categories in display order, their services loaded."""
    query = (
        select(Category)
        .where(Category.parent_id.is_(None))
        .options(selectinload(Category.children))
        .order_by(Category.position, Category.name)
    )
    if not include_inactive:
        query = query.where(Category.active.is_(True))
    return list(session.scalars(query))


@lru_cache(maxsize=4096)
def _name_tokens(*texts: str) -> tuple[str, ...]:
    # Names change rarely and are few: normalise each version once.
    return tuple(index_text(*texts).split())


def search_services(session: Session, text_query: str, *, limit: int = 10) -> list[int]:
    """Ids of active categories and services matching ``text_query``, best first.

    The catalogue is small, so it is matched here with the same normalisation and prefix
    rule as the workers' full-text search, the same on every database.
    """
    terms = query_terms(text_query)
    if not terms:
        return []
    parent = aliased(Category)
    rows = session.execute(
        select(
            Category.id,
            Category.parent_id,
            Category.position,
            Category.name,
            Category.name_en,
            Category.description,
            func.coalesce(parent.name, ""),
            func.coalesce(parent.name_en, ""),
        )
        .outerjoin(parent, parent.id == Category.parent_id)
        .where(Category.active.is_(True))
    )
    scored = []
    for cid, parent_id, position, *texts in rows:
        tokens = _name_tokens(*texts)
        hits = [sum(1 for t in tokens if t.startswith(term.variants)) for term in terms]
        if all(hits):
            # More matching words first, services before categories, then display order.
            scored.append((-sum(hits), parent_id is None, position, cid))
    return [entry[-1] for entry in sorted(scored)[:limit]]


def services_of(session: Session, category_id: int) -> tuple[int, ...]:
    """The ids a category filter means: a service itself, or every service of a category."""
    category = get_category(session, category_id, field="category")
    if category.parent_id is not None:
        return (category.id,)
    children = session.scalars(select(Category.id).where(Category.parent_id == category.id))
    return (category.id, *children)
