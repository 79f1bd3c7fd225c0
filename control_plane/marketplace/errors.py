"""The marketplace's errors: each names the field (or the thing) it is about.

Service functions raise these; the API turns them into problem+json (with an ``errors``
list like a validation error) and the pages show each message next to its field.
"""

from __future__ import annotations

from collections.abc import Iterable


class MarketError(Exception):
    """Base class; ``status`` is the HTTP status it maps to."""

    status = 400

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    @property
    def errors(self) -> list[tuple[str, str]]:
        """Every (field, reason) pair carried by this error."""
        return [(self.field, self.reason)]


class Invalid(MarketError):
    """Bad input; may carry several fields at once so a form shows every problem."""

    status = 422

    def __init__(self, field: str, reason: str, *more: tuple[str, str]) -> None:
        super().__init__(field, reason)
        self._errors = [(field, reason), *more]

    @property
    def errors(self) -> list[tuple[str, str]]:
        """Every (field, reason) pair."""
        return list(self._errors)

    def __str__(self) -> str:
        return "; ".join(f"{f}: {r}" for f, r in self._errors)

    @classmethod
    def collect(cls, errors: Iterable[tuple[str, str]]) -> Invalid | None:
        """One error carrying all of ``errors``, or None when there are none."""
        found = list(errors)
        if not found:
            return None
        first, *rest = found
        return cls(first[0], first[1], *rest)


class NotFound(MarketError):
    status = 404


class Forbidden(MarketError):
    status = 403


class Conflict(MarketError):
    status = 409
