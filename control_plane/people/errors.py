"""What was wrong with a request about people, field by field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One wrong field: ``reason`` for programs (English), ``code`` picks the console's words."""

    field: str
    reason: str
    code: str = ""
    status: int = 422  # 409: the value is fine, but something stored is in the way
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        """The message key of the console (the field, unless a code says more)."""
        return self.code or self.field


class InputError(ValueError):
    """One or more fields are wrong; nothing has been changed."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems

    @classmethod
    def single(cls, field: str, reason: str, **kwargs: Any) -> InputError:
        """An error about one field."""
        return cls([Problem(field, reason, **kwargs)])

    @property
    def status(self) -> int:
        """The problems' HTTP status when they agree (404, 409), else 422."""
        statuses = {p.status for p in self.problems}
        return statuses.pop() if len(statuses) == 1 else 422


class Problems:
    """Collects the problems of a whole form, so every wrong field is named at once."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(
        self, field: str, reason: str, *, code: str = "", status: int = 422, **params: Any
    ) -> None:
        """Note a problem (only the first one per field is kept)."""
        if any(p.field == field for p in self.items):
            return
        self.items.append(Problem(field, reason, code, status, dict(params)))

    def has(self, field: str) -> bool:
        """True when ``field`` already has a problem."""
        return any(p.field == field for p in self.items)

    def raise_if_any(self) -> None:
        """Raise :class:`InputError` if anything was noted."""
        if self.items:
            raise InputError(list(self.items))
