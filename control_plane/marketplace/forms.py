"""The console forms' plain-words side: labels, money as people write it, messages per field.

Errors come from pydantic or from the service as ``(field, reason)`` pairs in English; the
pages show, next to each field, a sentence from here in the reader's language.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from pydantic import ValidationError

from .mail import format_date, format_money
from .ranking import N_

STATUS_LABELS = {
    "new": N_("New"),
    "assigned": N_("Assigned"),
    "quoted": N_("Quote sent"),
    "declined": N_("Quote declined"),
    "scheduled": N_("Scheduled"),
    "done": N_("Done"),
    "closed": N_("Closed"),
    "canceled": N_("Canceled"),
}
KIND_LABELS = {
    "volunteer": N_("Volunteer"),
    "factotum": N_("Factotum"),
    "artisan": N_("Artisan"),
}
GOOD_LABELS = {
    "furniture": N_("Furniture"),
    "clothes": N_("Clothes"),
    "appliances": N_("Appliances"),
    "electronics": N_("Electronics"),
    "books": N_("Books"),
    "other": N_("Other"),
}
GOOD_STATUS_LABELS = {
    "offered": N_("To be assessed"),
    "accepted": N_("Accepted"),
    "declined": N_("Not accepted"),
}
TIME_LABELS = {
    "any": N_("Any time"),
    "morning": N_("Morning"),
    "afternoon": N_("Afternoon"),
    "evening": N_("Evening"),
}
# "When" choices of the request form; the windows start today.
WHEN_CHOICES = {
    "exact": N_("On a specific day"),
    "week": N_("In the next week"),
    "two_weeks": N_("In the next two weeks"),
    "month": N_("In the next month"),
    "range": N_("Between two dates"),
}
WHEN_DAYS = {"week": 7, "two_weeks": 14, "month": 30}

# The sentence shown next to a field with a problem.
FIELD_MESSAGES = {
    "category_id": N_("Choose the service you need."),
    "description": N_("Describe the job in at least 10 characters."),
    "when": N_("Choose when the job should be done."),
    "exact_date": N_("Choose a day, from today on."),
    "window_start": N_("Choose the first day, from today on."),
    "window_end": N_("Choose a last day from today on, not before the first."),
    "time_of_day": N_("Choose a time of day."),
    "area": N_("Write your area or neighbourhood (2 to 120 characters)."),
    "photos": N_("Photos must be JPEG, PNG or WebP pictures, at most %(mb)s MB each."),
    "good_title": N_("Give a short name to the good you offer (2 to 120 characters)."),
    "good_kind": N_("Choose what kind of good it is."),
    "good_description": N_("At most 2000 characters."),
    "good_photo": N_("Photos must be JPEG, PNG or WebP pictures, at most %(mb)s MB each."),
    "worker_id": N_("Choose a worker."),
    "price": N_("Write the price in euros, for example 120 or 85,50."),
    "date": N_("Choose a day, from today on."),
    "note": N_("At most 2000 characters."),
    "value": N_("Give the value in euros of each accepted good."),
    "reason": N_("Say why, in a few words."),
    "assessments": N_("Accept or decline every good offered."),
    "good": N_("Accept or decline this good."),
    "stars": N_("Choose from 1 to 5 stars."),
    "comment": N_("At most 2000 characters."),
    "status": N_("This is not possible now: the request has changed. Reload the page."),
    "request": N_("You cannot do this on this request."),
}


def form_field(api_field: str) -> str:
    """The form field an API error is about ("goods.1.title" -> "good_title_1")."""
    parts = api_field.split(".")
    if parts[0] == "goods" and len(parts) >= 3 and parts[1].isdigit():
        name = {"photo_ids": "photo", "title": "title", "kind": "kind"}.get(parts[2], parts[2])
        return f"good_{name}_{parts[1]}"
    if parts[0] == "assessments" and len(parts) >= 3 and parts[1].isdigit():
        return {"value_cents": "value", "reason": "reason"}.get(parts[2], "assessments")
    return {
        "photo_ids": "photos",
        "file": "photos",
        "price_cents": "price",
        "date_kind": "when",
    }.get(parts[0], parts[0])


def message_key(field: str) -> str:
    """The FIELD_MESSAGES key for a form field ("good_title_1" -> "good_title")."""
    base = re.sub(r"_\d+$", "", field)
    return base if base in FIELD_MESSAGES else "request"


def errors_by_field(errors: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{form field: message key}`` for ``(api field, reason)`` pairs (first one wins)."""
    out: dict[str, str] = {}
    for api_field, _reason in errors:
        for part in api_field.split(", "):
            field = form_field(part)
            out.setdefault(field, message_key(field))
    return out


def validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """A pydantic error as ``(api field, reason)`` pairs."""
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]


_MONEY = re.compile(r"^\s*(\d{1,3}(?:[.\s]\d{3})+|\d+)(?:[,.](\d{1,2}))?\s*€?\s*$")


def parse_euros(text: str) -> int | None:
    """Cents from what people write ("120", "85,50", "1.234,50", "85.5 €"); None if unclear."""
    match = _MONEY.match(text.replace("€", "").strip() + "") if text else None
    if match is None:
        return None
    whole = int(re.sub(r"[.\s]", "", match.group(1)))
    decimals = (match.group(2) or "0").ljust(2, "0")
    return whole * 100 + int(decimals)


def parse_date(text: str) -> dt.date | None:
    """A date from an ``<input type=date>`` (ISO), None if empty or wrong."""
    try:
        return dt.date.fromisoformat(text.strip()) if text and text.strip() else None
    except ValueError:
        return None


def window_for(choice: str, today: dt.date) -> tuple[dt.date, dt.date] | None:
    """The dates of a "within ..." choice, starting today."""
    days = WHEN_DAYS.get(choice)
    return None if days is None else (today, today + dt.timedelta(days=days))


class Formats:
    """Money, dates and labels for templates, in one language."""

    def __init__(self, lang: str, translate: object) -> None:
        self.lang = lang
        self._ = translate

    def money(self, cents: int | None) -> str:
        """Euro cents in the reader's notation."""
        return "" if cents is None else format_money(cents, self.lang)

    def euros(self, cents: int | None) -> str:
        """Cents as a form value people can edit ("85,50" / "85.50")."""
        if cents is None:
            return ""
        text = f"{cents // 100}.{cents % 100:02d}"
        return text.replace(".", ",") if self.lang == "it" else text

    def day(self, value: dt.date | None) -> str:
        """A day in words."""
        return format_date(value, self.lang)

    def label(self, table: dict[str, str], key: str) -> str:
        """The translated label of ``key`` in one of the tables above."""
        msgid = table.get(key)
        return self._(msgid) if msgid else key  # type: ignore[operator]

    def name(self, thing: object) -> str:
        """A category's (or service's) name in the reader's language."""
        english = getattr(thing, "name_en", "")
        return english if self.lang == "en" and english else str(getattr(thing, "name", ""))
