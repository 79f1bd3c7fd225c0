"""Intake of a donation: check it, read a pallet's manifest, give every item its asset tag."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from control_plane.workshop.asset_tags import DEFAULT_PREFIX, format_asset_tag


class IntakeError(ValueError):
    """A donation the workshop can't accept as given; ``field`` names what to fix."""

    def __init__(self, field: str, message_it: str, message_en: str) -> None:
        super().__init__(f"{field}: {message_en}")
        self.field = field
        self.message_it = message_it
        self.message_en = message_en


class ItemKind(StrEnum):
    """What sort of equipment a donated item is."""

    DESKTOP = "desktop"
    LAPTOP = "laptop"
    ALL_IN_ONE = "all_in_one"
    MONITOR = "monitor"
    WEBCAM = "webcam"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class DonatedItem:
    """One piece of equipment as written down at the door."""

    kind: ItemKind
    manufacturer: str = ""
    model: str = ""
    serial_number: str = ""
    weight_kg: float | None = None
    notes: str = ""


@dataclass(frozen=True, slots=True)
class Donation:
    """Who gave what, when, and whether they agreed to have it erased and reused."""

    donor: str
    received_on: date
    consent_erase_reuse: bool
    items: tuple[DonatedItem, ...]
    donor_contact: str = ""


@dataclass(frozen=True, slots=True)
class TaggedItem:
    """A donated item with the asset tag it will carry for the rest of its life."""

    asset_tag: str
    item: DonatedItem


def validate_donation(donation: Donation) -> None:
    """Raise :class:`IntakeError` naming the field if the donation can't be accepted."""
    if not donation.donor.strip():
        raise IntakeError("donor", "Indicare il donatore.", "Say who the donor is.")
    if not donation.consent_erase_reuse:
        # Without consent the workshop may neither erase the donor's data nor pass the
        # machine on, so it must not enter the workshop at all.
        raise IntakeError(
            "consent_erase_reuse",
            "Serve il consenso del donatore alla cancellazione dei dati e al riuso.",
            "The donor's consent to erase the data and reuse the equipment is required.",
        )
    if not donation.items:
        raise IntakeError(
            "items", "La donazione non contiene oggetti.", "The donation has no items."
        )
    seen: dict[str, int] = {}
    for index, item in enumerate(donation.items):
        prefix = f"items[{index}]"
        if item.weight_kg is not None and not (
            math.isfinite(item.weight_kg) and 0 < item.weight_kg <= 200
        ):
            raise IntakeError(
                f"{prefix}.weight_kg",
                f"Peso non valido: {item.weight_kg} kg.",
                f"Invalid weight: {item.weight_kg} kg.",
            )
        serial = item.serial_number.strip().upper()
        if serial:
            if serial in seen:
                raise IntakeError(
                    f"{prefix}.serial_number",
                    f"Numero di serie {serial} ripetuto (già all'oggetto {seen[serial]}).",
                    f"Serial number {serial} repeated (already on item {seen[serial]}).",
                )
            seen[serial] = index


def plan_intake(
    donation: Donation, *, next_sequence: int, prefix: str = DEFAULT_PREFIX
) -> list[TaggedItem]:
    """Validate the donation and tag its items from ``next_sequence`` in its intake year."""
    validate_donation(donation)
    year = donation.received_on.year
    return [
        TaggedItem(asset_tag=format_asset_tag(year, next_sequence + i, prefix), item=item)
        for i, item in enumerate(donation.items)
    ]


_MANIFEST_COLUMNS = ("kind", "manufacturer", "model", "serial_number", "weight_kg", "quantity")


def _parse_kind(raw: str, where: str) -> ItemKind:
    value = raw.strip().lower().replace("-", "_").replace(" ", "_") or ItemKind.OTHER.value
    try:
        return ItemKind(value)
    except ValueError:
        options = ", ".join(k.value for k in ItemKind)
        raise IntakeError(
            where,
            f"Tipo «{raw}» sconosciuto; tipi possibili: {options}.",
            f"Unknown kind '{raw}'; possible kinds: {options}.",
        ) from None


def _parse_number(raw: str, where: str, *, integer: bool) -> float | None:
    text = raw.strip().replace(",", ".")  # Italian spreadsheets write 4,5
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0 or (integer and not number.is_integer()):
        kind_it, kind_en = (
            ("un intero positivo", "a positive integer")
            if integer
            else (
                "un numero positivo",
                "a positive number",
            )
        )
        raise IntakeError(where, f"«{raw}» non è {kind_it}.", f"'{raw}' is not {kind_en}.")
    return number


def parse_manifest_csv(text: str) -> list[DonatedItem]:
    """Read a pallet's manifest (CSV with a header row) into items; ``quantity`` repeats a row.

    Columns, all optional but ``kind``: kind, manufacturer, model, serial_number,
    weight_kg, quantity. Comma or semicolon separated (Italian spreadsheets use ";").
    """
    sample = text[:2048]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "kind" not in header:
        raise IntakeError(
            "manifest.kind",
            "Il file deve avere una colonna «kind».",
            "The file must have a 'kind' column.",
        )
    unknown = [h for h in header if h and h not in _MANIFEST_COLUMNS]
    if unknown:
        raise IntakeError(
            f"manifest.{unknown[0]}",
            f"Colonna sconosciuta «{unknown[0]}».",
            f"Unknown column '{unknown[0]}'.",
        )
    reader.fieldnames = header
    items: list[DonatedItem] = []
    for line, row in enumerate(reader, start=2):  # line 1 is the header
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(values.values()):
            continue
        where = f"manifest line {line}"
        quantity = _parse_number(values.get("quantity", ""), f"{where}.quantity", integer=True)
        count = int(quantity or 1)
        if count > 1 and values.get("serial_number"):
            raise IntakeError(
                f"{where}.quantity",
                "Una riga con numero di serie descrive un solo oggetto (quantity 1).",
                "A row with a serial number describes one item only (quantity 1).",
            )
        item = DonatedItem(
            kind=_parse_kind(values.get("kind", ""), f"{where}.kind"),
            manufacturer=values.get("manufacturer", ""),
            model=values.get("model", ""),
            serial_number=values.get("serial_number", ""),
            weight_kg=_parse_number(
                values.get("weight_kg", ""), f"{where}.weight_kg", integer=False
            ),
        )
        items.extend([item] * count)
    return items
