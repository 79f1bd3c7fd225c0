"""Which worker suits a request best: a pure scoring function with a reason for every factor.

Five factors, each scored 0..1 and weighted: the skill (the exact service, or only the same
category), the area served, availability on the requested day(s) and time of day, the rating
(a Bayesian average, so one five-star review does not beat forty good ones) and the current
load. The administrator sees each factor's score and reason, and decides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .text import area_served

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SLOTS = ("morning", "afternoon", "evening")
TIMES_OF_DAY = ("any", *SLOTS)
# A long window is judged on its first weeks: nobody plans a small job months ahead.
MAX_WINDOW_DAYS = 28


def N_(msgid: str) -> str:  # gettext's "mark only" name: the extraction looks for it
    """Mark ``msgid`` for translation; pages translate it when they show the reason."""
    return msgid


# Each reason code with its English text (a gettext msgid); %(name)s come from ``detail``.
REASONS: dict[str, str] = {
    "skill.exact": N_("offers %(service)s"),
    "skill.category": N_("offers other services in %(category)s"),
    "skill.none": N_("does not offer this service"),
    "area.served": N_("serves %(area)s"),
    "area.not_served": N_("does not serve %(area)s"),
    "area.unknown": N_("no area given"),
    "availability.day": N_("usually available on %(date)s"),
    "availability.not_day": N_("usually not available on %(date)s"),
    "availability.window": N_("available on %(days)s of %(total)s days in the window"),
    "availability.none": N_("not available in the window"),
    "availability.unknown": N_("has not said when they are available"),
    "rating.rated": N_("rated %(average)s from %(count)s reviews"),
    "rating.unrated": N_("no reviews yet"),
    "load.active": N_("%(count)s jobs in progress"),
}


@dataclass(frozen=True)
class Weights:
    """How much each factor counts; they need not add up to one (totals are normalised)."""

    # The service matters most: a carpenter next door cannot fix the sink.
    skill: float = 0.40
    area: float = 0.25
    availability: float = 0.15
    rating: float = 0.12
    load: float = 0.08

    def __post_init__(self) -> None:
        values = (self.skill, self.area, self.availability, self.rating, self.load)
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ValueError("weights: must be non-negative and not all zero")


DEFAULT_WEIGHTS = Weights()


@dataclass(frozen=True)
class JobFacts:
    """What the ranking needs to know about a request."""

    service_id: int
    category_id: int  # the service's parent category
    service_name: str
    category_name: str
    area: str
    exact_date: dt.date | None = None
    window: tuple[dt.date, dt.date] | None = None
    time_of_day: str = "any"

    def __post_init__(self) -> None:
        if self.time_of_day not in TIMES_OF_DAY:
            raise ValueError(f"time_of_day: must be one of {', '.join(TIMES_OF_DAY)}")
        if self.window is not None and self.window[0] > self.window[1]:
            raise ValueError("window: the start is after the end")


@dataclass(frozen=True)
class CandidateFacts:
    """What the ranking needs to know about a worker."""

    worker_id: int
    name: str
    kind: str
    service_ids: frozenset[int]
    category_ids: frozenset[int]  # parents of the services offered
    areas: tuple[str, ...]
    availability: Mapping[str, Iterable[str]] = field(default_factory=dict)
    rating_sum: int = 0
    rating_count: int = 0
    active_jobs: int = 0


@dataclass(frozen=True)
class Factor:
    """One factor of a candidate's score: ``contribution = weight * score``."""

    name: str
    score: float
    weight: float
    reason: str
    detail: Mapping[str, Any]

    @property
    def contribution(self) -> float:
        """What this factor adds to the total (before normalisation)."""
        return self.weight * self.score

    def explain(self, translate: Any = None) -> str:
        """The reason in words, through ``translate`` (a gettext function) if given."""
        msgid = REASONS[self.reason]
        text = translate(msgid) if translate is not None else msgid
        return str(text % dict(self.detail))


@dataclass(frozen=True)
class RankedCandidate:
    """A worker with their total score (0..1), rank (1 = best) and the factors behind it."""

    worker_id: int
    name: str
    kind: str
    rank: int
    total: float
    eligible: bool  # offers the service or at least its category
    factors: tuple[Factor, ...]


def _skill(job: JobFacts, c: CandidateFacts) -> tuple[float, str, dict[str, Any]]:
    if job.service_id in c.service_ids:
        return 1.0, "skill.exact", {"service": job.service_name}
    if job.category_id in c.category_ids:
        return 0.25, "skill.category", {"category": job.category_name}
    return 0.0, "skill.none", {"service": job.service_name}


def _area(job: JobFacts, c: CandidateFacts) -> tuple[float, str, dict[str, Any]]:
    if not job.area.strip():
        return 0.5, "area.unknown", {}
    if any(area_served(a, job.area) for a in c.areas):
        return 1.0, "area.served", {"area": job.area}
    return 0.0, "area.not_served", {"area": job.area}


def _free_on(day: dt.date, time_of_day: str, availability: Mapping[str, Iterable[str]]) -> bool:
    slots = set(availability.get(WEEKDAYS[day.weekday()], ()))
    return bool(slots) if time_of_day == "any" else time_of_day in slots


def _availability(job: JobFacts, c: CandidateFacts) -> tuple[float, str, dict[str, Any]]:
    if not any(c.availability.get(d) for d in WEEKDAYS):
        return 0.5, "availability.unknown", {}
    if job.exact_date is not None:
        date = job.exact_date.isoformat()
        if _free_on(job.exact_date, job.time_of_day, c.availability):
            return 1.0, "availability.day", {"date": date}
        return 0.0, "availability.not_day", {"date": date}
    if job.window is not None:
        start, end = job.window
        total = min((end - start).days + 1, MAX_WINDOW_DAYS)
        days = [start + dt.timedelta(days=i) for i in range(total)]
        free = sum(_free_on(d, job.time_of_day, c.availability) for d in days)
        if free == 0:
            return 0.0, "availability.none", {"total": total}
        # One free day is enough to do the job; more days make it easier to fit in.
        return 0.5 + 0.5 * free / total, "availability.window", {"days": free, "total": total}
    return 0.5, "availability.unknown", {}


def bayesian_rating(
    rating_sum: int, rating_count: int, *, prior_mean: float = 3.5, prior_weight: float = 3.0
) -> float:
    """The average rating pulled towards ``prior_mean`` while there are few reviews (1..5)."""
    return (rating_sum + prior_mean * prior_weight) / (rating_count + prior_weight)


def _rating(c: CandidateFacts) -> tuple[float, str, dict[str, Any]]:
    score = (bayesian_rating(c.rating_sum, c.rating_count) - 1.0) / 4.0
    if c.rating_count == 0:
        return score, "rating.unrated", {}
    average = round(c.rating_sum / c.rating_count, 1)
    return score, "rating.rated", {"average": average, "count": c.rating_count}


def _load(c: CandidateFacts, max_load: int) -> tuple[float, str, dict[str, Any]]:
    score = max(0.0, 1.0 - c.active_jobs / max_load)
    return score, "load.active", {"count": c.active_jobs}


def rank_candidates(
    job: JobFacts,
    candidates: Iterable[CandidateFacts],
    *,
    weights: Weights = DEFAULT_WEIGHTS,
    max_load: int = 5,
) -> list[RankedCandidate]:
    """Every candidate scored and sorted best first (ties by worker id, so it is stable).

    Candidates who offer neither the service nor its category are kept, marked not eligible
    and sorted after every eligible one: the administrator may still choose them.
    """
    if max_load < 1:
        raise ValueError("max_load: must be at least 1")
    total_weight = (
        weights.skill + weights.area + weights.availability + weights.rating + weights.load
    )
    scored: list[tuple[bool, float, CandidateFacts, tuple[Factor, ...]]] = []
    for c in candidates:
        parts = (
            ("skill", weights.skill, _skill(job, c)),
            ("area", weights.area, _area(job, c)),
            ("availability", weights.availability, _availability(job, c)),
            ("rating", weights.rating, _rating(c)),
            ("load", weights.load, _load(c, max_load)),
        )
        factors = tuple(
            Factor(name, round(score, 4), weight, reason, detail)
            for name, weight, (score, reason, detail) in parts
        )
        total = sum(f.contribution for f in factors) / total_weight
        eligible = factors[0].score > 0
        scored.append((eligible, round(total, 4), c, factors))
    scored.sort(key=lambda s: (not s[0], -s[1], s[2].worker_id))
    return [
        RankedCandidate(c.worker_id, c.name, c.kind, i, total, eligible, factors)
        for i, (eligible, total, c, factors) in enumerate(scored, start=1)
    ]
