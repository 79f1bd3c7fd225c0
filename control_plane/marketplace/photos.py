"""Photos in the database: upload, who may see one, and cleaning up abandoned uploads."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..db import transaction
from ..models import User
from .errors import Invalid, NotFound
from .jobs import actor_for, is_admin, request_of_media
from .lifecycle import Actor
from .media import MediaError, MediaStore
from .models import Media

log = logging.getLogger(__name__)


@contextmanager
def written_files(store: MediaStore) -> Iterator[list[str]]:
    """Collect the files written inside the block; remove them if the block fails.

    Files are not part of the database transaction: without this, a form that fails after
    its photos were written would leave them behind.
    """
    written: list[str] = []
    try:
        yield written
    except BaseException:
        for rel in written:
            store.delete(rel)
        raise


def upload(
    session: Session, store: MediaStore, *, owner: User, data: bytes, field: str, written: list[str]
) -> Media:
    """Store one photo for ``owner``; its path is added to ``written`` (see written_files)."""
    try:
        stored = store.save(data, field=field)
    except MediaError as exc:
        raise Invalid(field, str(exc).split(": ", 1)[-1]) from exc
    written.append(stored.path)
    media = Media(
        owner_id=owner.id,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
        path=stored.path,
    )
    session.add(media)
    session.flush()
    return media


def get_media(session: Session, media_id: int) -> Media:
    """The photo with ``media_id``; :class:`NotFound` if none."""
    media = session.get(Media, media_id)
    if media is None:
        raise NotFound("media", f"no photo with id {media_id}")
    return media


def can_view(session: Session, user: User | None, media: Media) -> bool:
    """Profile photos are public; others are for their owner, the job's people and admins."""
    if media.attached_to == "worker":
        return True
    if user is None:
        return False
    if media.owner_id == user.id or is_admin(user):
        return True
    request = request_of_media(session, media.id)
    return request is not None and actor_for(session, user, request) is not Actor.OTHER


def purge_orphans(
    factory: sessionmaker[Session], store: MediaStore, now: dt.datetime, max_age: dt.timedelta
) -> int:
    """Delete uploads never attached to anything and older than ``max_age``."""
    with transaction(factory) as session:
        rows = list(
            session.scalars(
                select(Media).where(Media.attached_to == "", Media.created_at < now - max_age)
            )
        )
        for media in rows:
            session.delete(media)
        paths = [m.path for m in rows]
    # Files go after the rows are gone: a crash in between leaves a file, never a dead row.
    for rel in paths:
        store.delete(rel)
    if paths:
        log.info("deleted %d abandoned photo uploads", len(paths))
    return len(paths)
