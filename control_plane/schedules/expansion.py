"""Appointments to wake windows: RFC 5545 recurrence in the beneficiary's time zone. Pure.

An appointment is a series: a first local wall-clock start, a duration, and optionally an
RRULE. The rule is expanded on *naive* local times and each occurrence is only then placed in
the time zone, so "every Monday at 10:00 Europe/Rome" stays at 10:00 on both sides of a DST
change (its UTC time moves by an hour instead). A local time that does not exist (the hour
skipped in spring) moves forward by the gap; one that happens twice (autumn) is the first.
The edge's fallback planner (``edge.wake.planner.fallback_wakes``) follows the same rule.

Nothing here reads a clock or a database: the publication layer (``schedules.service``)
passes in the series, the exceptions and the range to expand.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

__all__ = [
    "MAX_DURATION",
    "Occurrence",
    "RecurrenceError",
    "Series",
    "Skip",
    "Window",
    "expand",
    "first_on_or_after",
    "localize",
    "merge",
    "normalize_rrule",
    "occurrences",
    "parse_rrule",
    "zone",
]

# The edge refuses windows longer than a day (edge.wake.service.MAX_WINDOW_S).
MAX_DURATION = dt.timedelta(hours=12)
# Several wakes a day are fine ("10:00 and 17:00"); a rule that yields dozens is a mistake,
# and would overflow the schedule's 2000 wakes long before the horizon.
MAX_PER_DAY = 8
# A rule must occur at least once this soon after its start (29 February is every 4 years):
# a rule that never occurs would otherwise be walked to the year 9999 at every expansion.
FIRST_OCCURRENCE_WITHIN = dt.timedelta(days=5 * 366)
# COUNT rules are walked this far at most; a COUNT whose occurrences do not fit is cut here.
MAX_COUNT = 2000
COUNT_REACH = dt.timedelta(days=50 * 366)

_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_KNOWN_PARTS = frozenset(
    {
        "FREQ",
        "INTERVAL",
        "COUNT",
        "UNTIL",
        "BYDAY",
        "BYMONTHDAY",
        "BYYEARDAY",
        "BYWEEKNO",
        "BYMONTH",
        "BYSETPOS",
        "BYHOUR",
        "BYMINUTE",
        "WKST",
    }
)
_UTC_UNTIL = re.compile(r"^(\d{8})T(\d{6})Z$")


class RecurrenceError(ValueError):
    """An appointment's recurrence or time is not usable; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Series:
    """One appointment as the expansion sees it.

    ``start`` is the naive local wall-clock time of the first occurrence (the rule's
    DTSTART); ``until`` is the last local day (inclusive) the series applies, which is how
    an edit "from a date on" ends the old series the day before the new one starts.
    """

    id: str
    start: dt.datetime
    duration: dt.timedelta
    rrule: str | None = None
    until: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """No appointments (or only ``appointment_id``'s) on these local days: a holiday, a stay."""

    first_day: dt.date
    last_day: dt.date
    appointment_id: str | None = None

    def covers(self, occurrence: Occurrence) -> bool:
        """True when ``occurrence`` falls on a skipped day (and is of the skipped series)."""
        if self.appointment_id is not None and self.appointment_id != occurrence.appointment_id:
            return False
        return self.first_day <= occurrence.local_start.date() <= self.last_day


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One concrete appointment: local wall-clock start and its UTC window."""

    appointment_id: str
    local_start: dt.datetime  # naive, in the series' time zone
    start: dt.datetime  # aware UTC
    end: dt.datetime  # aware UTC


@dataclass(frozen=True, slots=True)
class Window:
    """One wake: the PC is up from ``start`` to ``end`` (UTC) for these appointments."""

    start: dt.datetime
    end: dt.datetime
    appointment_ids: tuple[str, ...]


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA zone ``name``, or RecurrenceError naming ``field``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RecurrenceError(field, f"unknown time zone {name!r}") from exc


def localize(local: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The UTC instant of naive local time ``local`` (spring gap: forward; autumn: first)."""
    # fold=0 is zoneinfo's default and what we want: in the skipped hour it applies the
    # offset from before the change (02:30 becomes 03:30 summer time), in the repeated hour
    # it picks the first occurrence.
    return local.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)


def _to_local(instant: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    if instant.tzinfo is None:
        raise ValueError("naive datetime where an aware UTC one is needed")
    return instant.astimezone(tz).replace(tzinfo=None)


def _split(text: str, field: str) -> dict[str, str]:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body:
        raise RecurrenceError(field, "empty rule")
    if "\n" in body or "\r" in body:
        raise RecurrenceError(field, "one RRULE line only (DTSTART comes from start)")
    parts: dict[str, str] = {}
    for item in body.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip().upper()
        if not sep or not value.strip():
            raise RecurrenceError(field, f"{item!r} is not KEY=VALUE")
        if key not in _KNOWN_PARTS:
            raise RecurrenceError(field, f"{key} is not supported here")
        if key in parts:
            raise RecurrenceError(field, f"{key} given twice")
        parts[key] = value.strip().upper()
    return parts


def _join(parts: dict[str, str]) -> str:
    order = ["FREQ", *sorted(k for k in parts if k != "FREQ")]
    return ";".join(f"{key}={parts[key]}" for key in order)


def normalize_rrule(text: str, tz: dt.tzinfo, field: str = "rrule") -> str:
    """The canonical ``KEY=VALUE;...`` form of an RRULE value, or RecurrenceError.

    Accepts an optional ``RRULE:`` prefix; refuses sub-daily frequencies, DTSTART inside
    the rule, unknown parts and more than ``MAX_PER_DAY`` times a day. A UTC ``UNTIL``
    (RFC 5545 wants one when DTSTART has a time zone) becomes the local time it denotes; a
    date-only ``UNTIL`` includes that whole day, as people mean it.
    """
    parts = _split(text, field)
    freq = parts.get("FREQ")
    if freq is None:
        raise RecurrenceError(field, "FREQ is required (DAILY, WEEKLY, MONTHLY or YEARLY)")
    if freq not in _FREQUENCIES:
        raise RecurrenceError(
            field, f"FREQ={freq} is too frequent or unknown: use DAILY, WEEKLY, MONTHLY, YEARLY"
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError(field, "COUNT and UNTIL cannot both be given")
    if "COUNT" in parts:
        if not parts["COUNT"].isdigit() or not 1 <= int(parts["COUNT"]) <= MAX_COUNT:
            raise RecurrenceError(field, f"COUNT must be 1..{MAX_COUNT}, got {parts['COUNT']}")
    per_day = len(parts.get("BYHOUR", "x").split(",")) * len(parts.get("BYMINUTE", "x").split(","))
    if per_day > MAX_PER_DAY:
        raise RecurrenceError(field, f"{per_day} times a day is too many (at most {MAX_PER_DAY})")
    until = parts.get("UNTIL")
    if until is not None:
        try:
            if _UTC_UNTIL.match(until):
                instant = dt.datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
                parts["UNTIL"] = _to_local(instant, tz).strftime("%Y%m%dT%H%M%S")
            elif len(until) == 8:
                day = dt.datetime.strptime(until, "%Y%m%d")
                parts["UNTIL"] = day.strftime("%Y%m%dT235959")
            else:
                dt.datetime.strptime(until, "%Y%m%dT%H%M%S")
        except ValueError:
            raise RecurrenceError(field, f"UNTIL={until} is not a date or date-time") from None
    return _join(parts)


def parse_rrule(text: str, start: dt.datetime, field: str = "rrule") -> rrule:
    """The dateutil rule for a normalized RRULE value, checked to occur; naive local ``start``."""
    if start.tzinfo is not None:
        raise RecurrenceError("start", "give the local time without a UTC offset")
    rule = _rule(text, start, field)
    # dateutil walks a rule that never matches up to the year 9999 (seconds of CPU). The
    # Gregorian calendar repeats every 400 years (weekdays, leap days, month lengths), so
    # the same rule started 400*k years later matches on the same pattern and the walk to
    # 9999 is at most four centuries: a bounded check of the first five years.
    parts = _split(text, field)
    until = parts.pop("UNTIL", None)
    parts.pop("COUNT", None)
    shift = 400 * ((dt.MAXYEAR - 6 - start.year) // 400)
    probe_start = start.replace(year=start.year + shift)
    first = _rule(_join(parts), probe_start, field).after(probe_start, inc=True)
    if first is None or first - probe_start > FIRST_OCCURRENCE_WITHIN:
        raise RecurrenceError(field, "the rule never occurs (in the five years after start)")
    first = first.replace(year=first.year - shift)
    if until is not None and first > dt.datetime.strptime(until, "%Y%m%dT%H%M%S"):
        raise RecurrenceError(field, f"UNTIL is before the first occurrence ({first:%Y-%m-%d})")
    return rule


def _rule(text: str, start: dt.datetime, field: str) -> rrule:
    try:
        rule = rrulestr(text, dtstart=start)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise RecurrenceError(field, f"not a valid RRULE: {exc}") from None
    if not isinstance(rule, rrule):  # rrulestr builds an rruleset only for multi-line input
        raise RecurrenceError(field, "one RRULE only")
    return rule


@functools.lru_cache(maxsize=4096)
def _counted(text: str, start: dt.datetime) -> tuple[dt.datetime, ...]:
    # A COUNT rule is finite: all of it, once.
    return tuple(_rule(text, start, "rrule"))


def _local_times(
    text: str, start: dt.datetime, lo: dt.datetime, hi: dt.datetime
) -> list[dt.datetime]:
    """Naive local occurrences of rule ``text`` from ``start``, in ``[lo, hi]``."""
    parts = _split(text, "rrule")
    if "COUNT" in parts:
        return [t for t in _counted(text, start) if lo <= t <= hi]
    until = parts.get("UNTIL")
    bound = hi
    if until is not None:
        bound = min(bound, dt.datetime.strptime(until, "%Y%m%dT%H%M%S"))
    if bound < start or bound < lo:
        return []
    # An UNTIL at ``hi`` stops the walk at the first occurrence after it; without one,
    # dateutil's ``between`` would go on looking for the end of an endless rule.
    parts["UNTIL"] = bound.strftime("%Y%m%dT%H%M%S")
    return list(_rule(_join(parts), start, "rrule").xafter(lo, inc=True))


def _local_starts(series: Series, lo: dt.datetime, hi: dt.datetime) -> list[dt.datetime]:
    # Naive local times in [lo, hi]; the caller widened the range for DST and durations.
    if series.rrule is None:
        return [series.start] if lo <= series.start <= hi else []
    return _local_times(series.rrule, series.start, lo, hi)


def first_on_or_after(series: Series, day: dt.date) -> dt.datetime | None:
    """The first naive local start of ``series`` on or after local ``day``, or None."""
    lo = dt.datetime.combine(day, dt.time())
    if series.rrule is None:
        return series.start if series.start >= lo else None
    hi = lo + FIRST_OCCURRENCE_WITHIN
    for local in _local_times(series.rrule, series.start, lo, hi):
        if series.until is None or local.date() <= series.until:
            return local
        return None
    return None


def occurrences(
    series: Iterable[Series],
    tz: dt.tzinfo,
    start: dt.datetime,
    end: dt.datetime,
    skips: Sequence[Skip] = (),
) -> list[Occurrence]:
    """Every occurrence overlapping ``[start, end)`` (aware datetimes), sorted by start."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    out: list[Occurrence] = []
    for s in series:
        if s.duration <= dt.timedelta(0):
            raise RecurrenceError("duration", f"must be positive, got {s.duration}")
        # A day either side covers any UTC offset change; the duration covers occurrences
        # that began before ``start`` and are still running.
        lo = _to_local(start, tz) - s.duration - dt.timedelta(days=1)
        hi = _to_local(end, tz) + dt.timedelta(days=1)
        for local in _local_starts(s, lo, hi):
            if s.until is not None and local.date() > s.until:
                continue
            begin = localize(local, tz)
            occ = Occurrence(s.id, local, begin, begin + s.duration)
            if occ.end > start and occ.start < end and not any(k.covers(occ) for k in skips):
                out.append(occ)
    out.sort(key=lambda o: (o.start, o.end, o.appointment_id))
    return out


def merge(occs: Iterable[Occurrence], *, gap: dt.timedelta = dt.timedelta(0)) -> list[Window]:
    """Overlapping occurrences (or ones less than ``gap`` apart) become one wake window."""
    windows: list[Window] = []
    for occ in sorted(occs, key=lambda o: (o.start, o.end)):
        if windows and occ.start <= windows[-1].end + gap:
            last = windows[-1]
            ids = last.appointment_ids
            if occ.appointment_id not in ids:
                ids = (*ids, occ.appointment_id)
            windows[-1] = Window(last.start, max(last.end, occ.end), ids)
        else:
            windows.append(Window(occ.start, occ.end, (occ.appointment_id,)))
    return windows


def expand(
    series: Iterable[Series],
    tz: dt.tzinfo,
    start: dt.datetime,
    end: dt.datetime,
    skips: Sequence[Skip] = (),
    *,
    gap: dt.timedelta = dt.timedelta(0),
) -> list[Window]:
    """The wake windows for ``series`` over ``[start, end)``: expanded, skipped, merged."""
    return merge(occurrences(series, tz, start, end, skips), gap=gap)
