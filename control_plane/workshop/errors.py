"""One error type for everything the workshop refuses, in Italian and English.

The pure core raises its own errors (:class:`IntakeError`, :class:`TransitionError`,
:class:`ReportError`, ``ValueError("field: reason")``); the service turns each into a
:class:`WorkshopError` with the HTTP status, the field to fix and both languages, so the API
answers problem+json and the console shows the message next to the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .intake import IntakeError
from .inventory import ReportError
from .lifecycle import TransitionError

# Transition refusals caused by what the request left out (422) rather than by the
# machine's state or records (409).
_PARAMETER_CODES = frozenset(
    {
        "actor_required",
        "time_not_aware",
        "beneficiary_required",
        "buyer_required",
        "recipient_required",
        "recycler_required",
        "recycling_certificate_required",
        "notes_required",
    }
)

# The request field each parameter refusal is about, for the form to mark.
_CODE_FIELDS = {
    "beneficiary_required": "beneficiary_id",
    "telecare_blockers": "beneficiary_id",
    "buyer_required": "buyer",
    "recipient_required": "recipient",
    "recycler_required": "recycler",
    "recycling_certificate_required": "recycling_certificate_ref",
    "notes_required": "notes",
    "diagnostics_missing": "to",
    "certificate_missing": "to",
    "not_allowed": "to",
    "same_state": "to",
    "terminal_state": "to",
}


class WorkshopError(Exception):
    """A refused request: HTTP ``status``, the ``field`` to fix, the reason in both languages."""

    def __init__(
        self,
        status: int,
        field: str,
        message_en: str,
        message_it: str | None = None,
        *,
        code: str = "invalid",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{field}: {message_en}")
        self.status = status
        self.field = field
        self.message_en = message_en
        self.message_it = message_it or message_en
        self.code = code
        self.details: Mapping[str, Any] = MappingProxyType(dict(details or {}))

    def message(self, language: str) -> str:
        """The reason in ``language`` ("it" or "en"); Italian for anything else."""
        return self.message_en if language.startswith("en") else self.message_it

    @property
    def detail(self) -> str:
        """The English "field: reason" line of problem+json."""
        return f"{self.field}: {self.message_en}"


def not_found(field: str, what_en: str, what_it: str) -> WorkshopError:
    """A 404 naming what was looked for."""
    return WorkshopError(404, field, what_en, what_it, code="not_found")


def forbidden(field: str, message_en: str, message_it: str) -> WorkshopError:
    """A 403 saying what this person may not do."""
    return WorkshopError(403, field, message_en, message_it, code="forbidden")


def from_transition(exc: TransitionError) -> WorkshopError:
    """A lifecycle refusal as a WorkshopError (409 for the machine's state, 422 for input)."""
    status = 422 if exc.code in _PARAMETER_CODES else 409
    return WorkshopError(
        status,
        _CODE_FIELDS.get(exc.code, "to"),
        exc.message_en,
        exc.message_it,
        code=exc.code,
        details=exc.details,
    )


def from_intake(exc: IntakeError) -> WorkshopError:
    """An intake refusal as a 422 naming the donation's field."""
    return WorkshopError(422, exc.field, exc.message_en, exc.message_it, code="intake")


def from_report(exc: ReportError) -> WorkshopError:
    """A malformed diagnostics report as a 422 naming the value's path."""
    reason = str(exc).split(": ", 1)[-1]
    return WorkshopError(
        422,
        exc.field,
        reason,
        f"rapporto di diagnostica non valido: {reason}",
        code="report_invalid",
    )


def from_value_error(exc: ValueError, *, prefix: str = "") -> WorkshopError:
    """A core ``ValueError("field: reason")`` as a 422 naming ``prefix`` + field."""
    text = str(exc)
    field, sep, reason = text.partition(": ")
    if not sep:
        field, reason = "body", text
    return WorkshopError(422, f"{prefix}{field}", reason, f"valore non valido: {reason}")


# Italian for the pydantic error types a form can produce.
_PYDANTIC_IT = {
    "missing": "obbligatorio",
    "string_too_short": "obbligatorio",
    "string_too_long": "testo troppo lungo",
    "greater_than": "deve essere maggiore di zero",
    "greater_than_equal": "valore troppo piccolo",
    "less_than_equal": "valore troppo grande",
    "less_than": "valore troppo grande",
    "float_parsing": "deve essere un numero",
    "int_parsing": "deve essere un numero intero",
    "date_from_datetime_parsing": "data non valida",
    "date_parsing": "data non valida",
    "enum": "valore non previsto",
    "literal_error": "valore non previsto",
    "too_long": "troppi elementi",
}


def from_validation(errors: list[Any]) -> WorkshopError:
    """The first error of a pydantic ``ValidationError.errors()`` as a 422 naming its field."""
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid", "type": ""}
    field = ""
    for part in first.get("loc", ()):
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    reason = str(first.get("msg", "invalid"))
    return WorkshopError(
        422,
        field or "body",
        reason,
        _PYDANTIC_IT.get(str(first.get("type", "")), f"valore non valido ({reason})"),
    )
