"""The marketplace's tables: catalogue, workers, requests with goods and quotes, reviews, stock.

Every table starts with ``market_``. Money is in euro cents (integers). Dates people choose
(an exact day, a window) are plain dates in the cooperative's time zone; moments are UTC.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow


class WorkerKind(StrEnum):
    """The three worker profiles of Factotum."""

    VOLUNTEER = "volunteer"
    FACTOTUM = "factotum"
    ARTISAN = "artisan"


class GoodKind(StrEnum):
    """What a client may offer in exchange."""

    FURNITURE = "furniture"
    CLOTHES = "clothes"
    APPLIANCES = "appliances"
    ELECTRONICS = "electronics"
    BOOKS = "books"
    OTHER = "other"


class GoodStatus(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class QuoteStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    SUPERSEDED = "superseded"


class StockSource(StrEnum):
    BARTER = "barter"
    WORKSHOP = "workshop"
    DONATION = "donation"


class StockStatus(StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"
    DISPOSED = "disposed"


class Category(Base):
    """A category of services (no parent) or a service within one (a subcategory)."""

    __tablename__ = "market_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("market_categories.id", ondelete="RESTRICT"), index=True, nullable=True
    )
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120))  # Italian, shown first
    name_en: Mapped[str] = mapped_column(String(120), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    parent: Mapped[Category | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Category]] = relationship(back_populates="parent")


class Media(Base):
    """An uploaded photo; the file lives under the media directory at ``path``."""

    __tablename__ = "market_media"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, nullable=True
    )
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255), unique=True)
    # "" until attached: "worker" (a public profile photo), "request" or "good" (private).
    attached_to: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WorkerProfile(Base):
    """A person who does jobs: a volunteer, a factotum or an artisan."""

    __tablename__ = "market_workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    display_name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    # {"mon": ["morning", "afternoon"], ...}: when the worker usually takes jobs.
    availability: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    photo_id: Mapped[int | None] = mapped_column(
        ForeignKey("market_media.id", ondelete="SET NULL"), nullable=True
    )
    active: Mapped[bool] = mapped_column(default=True, index=True)
    # Kept up to date with the visible reviews, so search and ranking never aggregate them.
    rating_sum: Mapped[int] = mapped_column(default=0)
    rating_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    skills: Mapped[list[WorkerSkill]] = relationship(
        back_populates="worker", cascade="all, delete-orphan"
    )
    areas: Mapped[list[WorkerArea]] = relationship(
        back_populates="worker", cascade="all, delete-orphan", order_by="WorkerArea.id"
    )


class WorkerSkill(Base):
    """A service (subcategory) a worker offers."""

    __tablename__ = "market_worker_skills"

    worker_id: Mapped[int] = mapped_column(
        ForeignKey("market_workers.id", ondelete="CASCADE"), primary_key=True
    )
    category_id: Mapped[int] = mapped_column(
        ForeignKey("market_categories.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    worker: Mapped[WorkerProfile] = relationship(back_populates="skills")
    category: Mapped[Category] = relationship()


class WorkerArea(Base):
    """An area a worker serves, as written and as a comparable key."""

    __tablename__ = "market_worker_areas"
    __table_args__ = (UniqueConstraint("worker_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(
        ForeignKey("market_workers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    key: Mapped[str] = mapped_column(String(120), index=True)

    worker: Mapped[WorkerProfile] = relationship(back_populates="areas")


class ServiceRequest(Base):
    """A client's quote request, and the job it becomes."""

    __tablename__ = "market_requests"
    __table_args__ = (Index("ix_market_requests_worker_status", "worker_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    category_id: Mapped[int] = mapped_column(
        ForeignKey("market_categories.id", ondelete="RESTRICT"), index=True
    )
    description: Mapped[str] = mapped_column(Text)
    # "exact": on exact_date; "window": some day between window_start and window_end.
    date_kind: Mapped[str] = mapped_column(String(8))
    exact_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    window_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    window_end: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    time_of_day: Mapped[str] = mapped_column(String(12), default="any")
    area: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), index=True)
    worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("market_workers.id", ondelete="SET NULL"), nullable=True
    )
    scheduled_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    assigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_reason: Mapped[str] = mapped_column(Text, default="")

    category: Mapped[Category] = relationship()
    worker: Mapped[WorkerProfile | None] = relationship()
    goods: Mapped[list[Good]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="Good.id"
    )
    quotes: Mapped[list[Quote]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="Quote.id"
    )


class RequestPhoto(Base):
    __tablename__ = "market_request_photos"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("market_requests.id", ondelete="CASCADE"), primary_key=True
    )
    media_id: Mapped[int] = mapped_column(
        ForeignKey("market_media.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Good(Base):
    """Something a client offers in exchange, and how the cooperative assessed it."""

    __tablename__ = "market_goods"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("market_requests.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=GoodStatus.OFFERED.value)
    value_cents: Mapped[int | None] = mapped_column(Integer, nullable=True)
    decline_reason: Mapped[str] = mapped_column(Text, default="")
    assessed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    assessed_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )

    request: Mapped[ServiceRequest] = relationship(back_populates="goods")


class GoodPhoto(Base):
    __tablename__ = "market_good_photos"

    good_id: Mapped[int] = mapped_column(
        ForeignKey("market_goods.id", ondelete="CASCADE"), primary_key=True
    )
    media_id: Mapped[int] = mapped_column(
        ForeignKey("market_media.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Quote(Base):
    """A price for a job, with the value of the accepted goods credited against it."""

    __tablename__ = "market_quotes"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("market_requests.id", ondelete="CASCADE"), index=True
    )
    price_cents: Mapped[int]
    goods_value_cents: Mapped[int] = mapped_column(default=0)
    credit_cents: Mapped[int] = mapped_column(default=0)
    due_cents: Mapped[int]
    date: Mapped[dt.date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=QuoteStatus.PENDING.value)
    decline_reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    request: Mapped[ServiceRequest] = relationship(back_populates="quotes")


class Review(Base):
    """A client's rating of a finished job: one per job."""

    __tablename__ = "market_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique: the database refuses a second rating even if two arrive at once.
    request_id: Mapped[int] = mapped_column(
        ForeignKey("market_requests.id", ondelete="CASCADE"), unique=True
    )
    worker_id: Mapped[int] = mapped_column(
        ForeignKey("market_workers.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    stars: Mapped[int]
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    hidden: Mapped[bool] = mapped_column(default=False)
    hidden_reason: Mapped[str] = mapped_column(Text, default="")
    hidden_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    hidden_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StockItem(Base):
    """Something the cooperative holds and can offer: bartered goods, refurbished PCs."""

    __tablename__ = "market_stock"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    good_id: Mapped[int | None] = mapped_column(
        ForeignKey("market_goods.id", ondelete="SET NULL"), unique=True, nullable=True
    )
    # The workshop's asset tag of a refurbished PC offered here.
    workshop_ref: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    value_cents: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default=StockStatus.AVAILABLE.value, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Notification(Base):
    """An e-mail to send: rendered when the event happens, delivered by a periodic task."""

    __tablename__ = "market_notifications"
    __table_args__ = (Index("ix_market_notifications_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, nullable=True
    )
    to_email: Mapped[str] = mapped_column(String(254))
    lang: Mapped[str] = mapped_column(String(8))
    event: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SearchDoc(Base):
    """The normalised text of a searchable thing (``kind`` "worker" for now), one row each.

    SQLite mirrors ``body`` into the FTS5 table ``market_search_fts`` (external content,
    rowid = ``id``); PostgreSQL has a stored column
    ``market_search_tsv = to_tsvector('simple', body)`` with a GIN index. Both are created
    by the migration, not by this model.
    """

    __tablename__ = "market_search_docs"
    __table_args__ = (UniqueConstraint("kind", "ref_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    ref_id: Mapped[int]
    body: Mapped[str] = mapped_column(Text)
