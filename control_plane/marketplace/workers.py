"""Worker profiles: who they are, what they offer, where and when; ratings kept current."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, selectinload

from .. import audit
from ..db import utcnow
from ..models import Role, User
from . import search
from .catalogue import get_service
from .errors import Conflict, Invalid, NotFound
from .models import Category, Media, Review, WorkerArea, WorkerKind, WorkerProfile, WorkerSkill
from .ranking import SLOTS, WEEKDAYS
from .text import area_key, index_text

# Words people use for each profile, so "artigiano" or "volontaria" finds them.
KIND_WORDS: dict[str, str] = {
    WorkerKind.VOLUNTEER.value: "volontario volontaria volunteer",
    WorkerKind.FACTOTUM.value: "factotum tuttofare handyman",
    WorkerKind.ARTISAN.value: "artigiano artigiana artisan",
}


def worker_body(worker: WorkerProfile) -> str:
    """The searchable text of a worker: name, profile, description, services and areas."""
    services: list[str] = []
    for skill in worker.skills:
        category = skill.category
        services += [category.name, category.name_en]
        if category.parent is not None:
            services += [category.parent.name, category.parent.name_en]
    return index_text(
        worker.display_name,
        KIND_WORDS.get(worker.kind, worker.kind),
        worker.description,
        services,
        [a.name for a in worker.areas],
    )


def reindex_worker(session: Session, worker: WorkerProfile) -> None:
    """Bring the worker's search document up to date (inactive workers leave the search)."""
    if worker.active:
        search.put_doc(session, search.WORKER, worker.id, worker_body(worker))
    else:
        search.drop_doc(session, search.WORKER, worker.id)


def get_worker(session: Session, worker_id: int, *, field: str = "worker_id") -> WorkerProfile:
    """The worker with ``worker_id``; :class:`NotFound` naming ``field`` if none."""
    worker = session.get(WorkerProfile, worker_id)
    if worker is None:
        raise NotFound(field, f"no worker with id {worker_id}")
    return worker


def worker_of(session: Session, user: User) -> WorkerProfile | None:
    """The profile of ``user``, if they have one."""
    return session.scalar(select(WorkerProfile).where(WorkerProfile.user_id == user.id))


def _skills(session: Session, skill_ids: Sequence[int]) -> list[Category]:
    services = []
    for sid in dict.fromkeys(skill_ids):
        services.append(get_service(session, sid, field="skills"))
    if not services:
        raise Invalid("skills", "choose at least one service")
    return services


def _areas(areas: Iterable[str]) -> list[WorkerArea]:
    out: dict[str, WorkerArea] = {}
    for name in areas:
        key = area_key(name)
        if not key:
            raise Invalid("areas", f"{name!r} is not an area name")
        out.setdefault(key, WorkerArea(name=name.strip(), key=key[:120]))
    if not out:
        raise Invalid("areas", "give at least one area")
    return list(out.values())


def clean_availability(availability: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """``{"mon": ["morning"], ...}`` checked and in a stable order."""
    out: dict[str, list[str]] = {}
    for day, slots in availability.items():
        if day not in WEEKDAYS:
            raise Invalid("availability", f"{day!r} is not one of {', '.join(WEEKDAYS)}")
        wanted = set(slots)
        unknown = wanted - set(SLOTS)
        if unknown:
            raise Invalid(
                "availability", f"{sorted(unknown)[0]!r} is not one of {', '.join(SLOTS)}"
            )
        if wanted:
            out[day] = [s for s in SLOTS if s in wanted]
    return {d: out[d] for d in WEEKDAYS if d in out}


def _photo(session: Session, photo_id: int | None, owners: set[int]) -> Media | None:
    if photo_id is None:
        return None
    media = session.get(Media, photo_id)
    if media is None or media.owner_id not in owners:
        raise Invalid("photo_id", f"no photo with id {photo_id} uploaded by you or the worker")
    if media.attached_to not in ("", "worker"):
        raise Invalid("photo_id", f"photo {photo_id} is already used elsewhere")
    media.attached_to = "worker"
    return media


def create_worker(
    session: Session,
    *,
    user: User,
    kind: str,
    display_name: str,
    description: str = "",
    skill_ids: Sequence[int],
    areas: Iterable[str],
    availability: Mapping[str, Iterable[str]] | None = None,
    photo_id: int | None = None,
    actor: User,
) -> WorkerProfile:
    """Create the profile of ``user`` (who must have the worker role)."""
    if user.role != Role.WORKER.value:
        raise Invalid("user_id", f"{user.email} is not a worker (role {user.role})")
    if worker_of(session, user) is not None:
        raise Conflict("user_id", f"{user.email} already has a worker profile")
    worker = WorkerProfile(
        user_id=user.id,
        kind=WorkerKind(kind).value,
        display_name=display_name,
        description=description,
        availability=clean_availability(availability or {}),
    )
    worker.skills = [WorkerSkill(category=c) for c in _skills(session, skill_ids)]
    worker.areas = _areas(areas)
    photo = _photo(session, photo_id, {user.id, actor.id})
    worker.photo_id = photo.id if photo else None
    session.add(worker)
    session.flush()
    reindex_worker(session, worker)
    audit.record(
        session,
        action="market.worker.create",
        object_type="market_worker",
        object_id=worker.id,
        actor=actor,
        data={"user_id": user.id, "kind": worker.kind},
    )
    return worker


def update_worker(
    session: Session,
    worker: WorkerProfile,
    *,
    actor: User,
    kind: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    skill_ids: Sequence[int] | None = None,
    areas: Iterable[str] | None = None,
    availability: Mapping[str, Iterable[str]] | None = None,
    photo_id: int | None = None,
    active: bool | None = None,
) -> WorkerProfile:
    """Change a profile; only the fields given change."""
    changed: list[str] = []
    if kind is not None:
        worker.kind = WorkerKind(kind).value
        changed.append("kind")
    if display_name is not None:
        worker.display_name = display_name
        changed.append("display_name")
    if description is not None:
        worker.description = description
        changed.append("description")
    if skill_ids is not None:
        wanted = {c.id: c for c in _skills(session, skill_ids)}
        # A hidden service can be neither chosen nor shown on a form: whoever offered it keeps
        # it, for when it is shown again, instead of losing it to the next save.
        worker.skills = [
            s for s in worker.skills if s.category_id in wanted or not s.category.active
        ]
        have = {s.category_id for s in worker.skills}
        worker.skills += [WorkerSkill(category=c) for cid, c in wanted.items() if cid not in have]
        changed.append("skills")
    if areas is not None:
        new = {a.key: a for a in _areas(areas)}
        worker.areas = [a for a in worker.areas if a.key in new]
        kept = {a.key for a in worker.areas}
        worker.areas += [a for k, a in new.items() if k not in kept]
        changed.append("areas")
    if availability is not None:
        worker.availability = clean_availability(availability)
        changed.append("availability")
    if photo_id is not None:
        photo = _photo(session, photo_id, {worker.user_id, actor.id})
        worker.photo_id = photo.id if photo else None
        changed.append("photo")
    if active is not None:
        worker.active = active
        changed.append("active")
    if not changed:
        return worker
    worker.updated_at = utcnow()
    session.flush()
    reindex_worker(session, worker)
    audit.record(
        session,
        action="market.worker.update",
        object_type="market_worker",
        object_id=worker.id,
        actor=actor,
        data={"fields": changed},
    )
    return worker


def recompute_rating(session: Session, worker: WorkerProfile) -> None:
    """Set the worker's rating from their visible reviews."""
    total, count = session.execute(
        select(func.coalesce(func.sum(Review.stars), 0), func.count(Review.id)).where(
            Review.worker_id == worker.id, Review.hidden.is_(False)
        )
    ).one()
    worker.rating_sum = int(total)
    worker.rating_count = int(count)


def all_worker_ids(session: Session) -> list[int]:
    """Every profile, by name (the administrators' list)."""
    return list(
        session.scalars(
            select(WorkerProfile.id).order_by(WorkerProfile.display_name, WorkerProfile.id)
        )
    )


def accounts_without_profile(session: Session) -> list[User]:
    """Active people with the worker role who have no profile yet."""
    has_profile = exists().where(WorkerProfile.user_id == User.id)
    return list(
        session.scalars(
            select(User)
            .where(User.role == Role.WORKER.value, User.is_active.is_(True), ~has_profile)
            .order_by(User.name, User.id)
        )
    )


def load_workers(session: Session, ids: Sequence[int]) -> dict[int, WorkerProfile]:
    """Workers by id with their services and areas loaded in a few queries."""
    if not ids:
        return {}
    rows = session.scalars(
        select(WorkerProfile)
        .where(WorkerProfile.id.in_(ids))
        .options(
            selectinload(WorkerProfile.skills)
            .selectinload(WorkerSkill.category)
            .selectinload(Category.parent),
            selectinload(WorkerProfile.areas),
        )
    )
    return {w.id: w for w in rows}


@dataclass(frozen=True)
class Card:
    """What a search result shows of a worker, read without building ORM objects."""

    id: int
    kind: str
    display_name: str
    description: str
    photo_id: int | None
    rating_sum: int
    rating_count: int
    services: tuple[tuple[str, str], ...]  # (Italian name, English name)
    areas: tuple[str, ...]


def cards(session: Session, ids: Sequence[int]) -> dict[int, Card]:
    """Search-result cards for ``ids`` in one plain query (the search's hot path: one round
    trip, no ORM objects). A worker has a few services and areas, so the joined rows stay
    few (at most services x areas per worker)."""
    if not ids:
        return {}
    rows = session.execute(
        select(
            WorkerProfile.id,
            WorkerProfile.kind,
            WorkerProfile.display_name,
            WorkerProfile.description,
            WorkerProfile.photo_id,
            WorkerProfile.rating_sum,
            WorkerProfile.rating_count,
            Category.parent_id,
            Category.position,
            Category.name,
            Category.name_en,
            WorkerArea.id,
            WorkerArea.name,
        )
        .outerjoin(WorkerSkill, WorkerSkill.worker_id == WorkerProfile.id)
        .outerjoin(Category, Category.id == WorkerSkill.category_id)
        .outerjoin(WorkerArea, WorkerArea.worker_id == WorkerProfile.id)
        .where(WorkerProfile.id.in_(ids))
    ).all()
    heads: dict[int, tuple[str, str, str, int | None, int, int]] = {}
    services: dict[int, set[tuple[int, int, str, str]]] = {}
    areas: dict[int, dict[int, str]] = {}
    for (
        wid,
        kind,
        name,
        text,
        photo,
        rsum,
        rcount,
        parent,
        pos,
        sname,
        sname_en,
        aid,
        aname,
    ) in rows:
        heads[wid] = (kind, name, text, photo, rsum, rcount)
        if sname is not None:
            services.setdefault(wid, set()).add((parent or 0, pos, sname, sname_en))
        if aid is not None:
            areas.setdefault(wid, {})[aid] = aname
    return {
        wid: Card(
            wid,
            *head,
            tuple((s[2], s[3]) for s in sorted(services.get(wid, ()))),
            tuple(areas.get(wid, {})[k] for k in sorted(areas.get(wid, {}))),
        )
        for wid, head in heads.items()
    }


def reindex_all(session: Session) -> int:
    """Rewrite every search document (after a bulk load or a change of normalisation)."""
    count = 0
    ids = list(session.scalars(select(WorkerProfile.id).order_by(WorkerProfile.id)))
    for start in range(0, len(ids), 500):
        for worker in load_workers(session, ids[start : start + 500]).values():
            reindex_worker(session, worker)
            count += 1
    return count
