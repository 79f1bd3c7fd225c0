"""The marketplace API's request and response bodies (pydantic), shared with the pages."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from .models import GoodKind, StockStatus, WorkerKind

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=120)]
OptionalName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Slot = Literal["morning", "afternoon", "evening"]
TimeOfDay = Literal["any", "morning", "afternoon", "evening"]
Cents = Annotated[int, Field(ge=0, le=10_000_000)]
PhotoIds = Annotated[list[int], Field(max_length=20)]


# --- catalogue ----------------------------------------------------------------------------


class CategoryCreate(BaseModel):
    name: Name
    name_en: OptionalName = ""
    parent_id: int | None = Field(default=None, description="set for a service in a category")
    description: LongText = ""
    position: int = Field(default=0, ge=0, le=10_000)


class CategoryUpdate(BaseModel):
    name: Name | None = None
    name_en: OptionalName | None = None
    description: LongText | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)
    active: bool | None = None


class CategoryPublic(BaseModel):
    id: int
    parent_id: int | None
    slug: str
    name: str
    name_en: str
    description: str
    position: int
    active: bool


class CategoryTree(CategoryPublic):
    services: list[CategoryPublic]


# --- workers ------------------------------------------------------------------------------


class _WorkerFields(BaseModel):
    @field_validator("areas", check_fields=False)
    @classmethod
    def _areas(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [a.strip() for a in value]
        for area in cleaned:
            if not 2 <= len(area) <= 120:
                raise ValueError("each area must be 2 to 120 characters")
        return cleaned


class WorkerCreate(_WorkerFields):
    user_id: int | None = Field(default=None, description="administrators only; else yourself")
    kind: WorkerKind
    display_name: Name
    description: LongText = ""
    skills: list[int] = Field(min_length=1, max_length=50, description="service ids")
    areas: list[str] = Field(min_length=1, max_length=20)
    availability: dict[Weekday, list[Slot]] = Field(default_factory=dict)
    photo_id: int | None = None


class WorkerUpdate(_WorkerFields):
    kind: WorkerKind | None = None
    display_name: Name | None = None
    description: LongText | None = None
    skills: list[int] | None = Field(default=None, min_length=1, max_length=50)
    areas: list[str] | None = Field(default=None, min_length=1, max_length=20)
    availability: dict[Weekday, list[Slot]] | None = None
    photo_id: int | None = None
    active: bool | None = None


class ServiceRef(BaseModel):
    id: int
    name: str
    name_en: str
    category_id: int | None
    category_name: str


class ReviewPublic(BaseModel):
    id: int
    request_id: int
    stars: int
    comment: str
    created_at: dt.datetime
    hidden: bool
    hidden_reason: str = ""


class WorkerPublic(BaseModel):
    id: int
    kind: WorkerKind
    display_name: str
    description: str
    services: list[ServiceRef]
    areas: list[str]
    availability: dict[str, list[str]]
    photo_url: str | None
    rating_average: float | None
    rating_count: int
    active: bool


class WorkerDetail(WorkerPublic):
    reviews: list[ReviewPublic]


# --- search -------------------------------------------------------------------------------


class SearchHit(BaseModel):
    id: int
    kind: WorkerKind
    display_name: str
    excerpt: str
    services: list[str]
    areas: list[str]
    rating_average: float | None
    rating_count: int
    photo_url: str | None
    score: float


class SearchResults(BaseModel):
    query: str
    total: int
    limit: int
    offset: int
    items: list[SearchHit]
    services: list[CategoryPublic]


# --- media --------------------------------------------------------------------------------


class MediaPublic(BaseModel):
    id: int
    content_type: str
    size: int
    url: str


# --- requests -----------------------------------------------------------------------------


class GoodCreate(BaseModel):
    kind: GoodKind
    title: Name
    description: LongText = ""
    photo_ids: PhotoIds = Field(default_factory=list)


class RequestCreate(BaseModel):
    category_id: int = Field(description="the service (a subcategory)")
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=10, max_length=4000)
    ]
    # Which dates go with which kind, and that they are not past, is checked by the service
    # (it knows the cooperative's "today") so the message names the date field.
    date_kind: Literal["exact", "window"]
    exact_date: dt.date | None = None
    window_start: dt.date | None = None
    window_end: dt.date | None = None
    time_of_day: TimeOfDay = "any"
    area: Name
    photo_ids: PhotoIds = Field(default_factory=list)
    goods: list[GoodCreate] = Field(default_factory=list, max_length=10)


class PersonRef(BaseModel):
    id: int
    name: str


class WorkerRef(BaseModel):
    id: int
    display_name: str
    kind: WorkerKind


class GoodPublic(BaseModel):
    id: int
    kind: GoodKind
    title: str
    description: str
    status: str
    value_cents: int | None
    decline_reason: str
    photo_urls: list[str]


class QuotePublic(BaseModel):
    id: int
    price_cents: int
    goods_value_cents: int
    credit_cents: int
    due_cents: int
    date: dt.date
    note: str
    status: str
    decline_reason: str
    created_at: dt.datetime
    decided_at: dt.datetime | None


class RequestPublic(BaseModel):
    id: int
    status: str
    service: ServiceRef
    description: str
    date_kind: str
    exact_date: dt.date | None
    window_start: dt.date | None
    window_end: dt.date | None
    time_of_day: str
    area: str
    client: PersonRef
    worker: WorkerRef | None
    scheduled_date: dt.date | None
    photo_urls: list[str]
    goods: list[GoodPublic]
    quote: QuotePublic | None
    review: ReviewPublic | None
    created_at: dt.datetime
    updated_at: dt.datetime
    actions: list[str] = Field(description="what you may do now")


class RequestPage(BaseModel):
    items: list[RequestPublic]
    total: int
    limit: int
    offset: int


class AssignBody(BaseModel):
    worker_id: int


class AssessmentIn(BaseModel):
    good_id: int
    accepted: bool
    value_cents: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    reason: Reason = ""


class AssessBody(BaseModel):
    assessments: list[AssessmentIn] = Field(min_length=1, max_length=20)


class QuoteCreate(BaseModel):
    price_cents: Cents
    date: dt.date
    note: LongText = ""
    assessments: list[AssessmentIn] = Field(default_factory=list, max_length=20)


class ReasonBody(BaseModel):
    reason: Reason = ""


class ReviewCreate(BaseModel):
    stars: int = Field(ge=1, le=5)
    comment: LongText = ""


class ReviewHide(BaseModel):
    hidden: bool = True
    reason: Reason = ""


class FactorPublic(BaseModel):
    name: str
    score: float
    weight: float
    reason: str
    note: str
    detail: dict[str, Any]


class CandidatePublic(BaseModel):
    worker_id: int
    display_name: str
    kind: str
    rank: int
    total: float
    eligible: bool
    factors: list[FactorPublic]


# --- stock --------------------------------------------------------------------------------


class StockCreate(BaseModel):
    source: Literal["workshop", "donation"]
    kind: GoodKind
    title: Name
    description: LongText = ""
    value_cents: Cents = 0
    workshop_ref: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] = ""


class StockUpdate(BaseModel):
    status: StockStatus


class StockPublic(BaseModel):
    id: int
    source: str
    good_id: int | None
    workshop_ref: str
    kind: str
    title: str
    description: str
    value_cents: int
    status: str
    created_at: dt.datetime
