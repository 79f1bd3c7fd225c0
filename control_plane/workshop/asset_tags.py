"""Asset tags for donated machines and the printable labels that carry them.

A tag is ``PREFIX-YEAR-SEQUENCE`` ("DF-2026-000123"): the year of intake and a sequence
number the database hands out per year, so a tag is short enough to read out on the phone
and never reused. Each label has the tag in large type and a QR code that opens the
machine's page in the console.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import segno
from fpdf.enums import MethodReturnValue, XPos, YPos

from control_plane.workshop.documents import Organization, WorkshopPDF

DEFAULT_PREFIX = "DF"
_SEQUENCE_DIGITS = 6
_TAG_RE = re.compile(r"^([A-Z]{2,4})-(\d{4})-(\d{6,})$")
_PREFIX_RE = re.compile(r"^[A-Z]{2,4}$")


@dataclass(frozen=True, slots=True, order=True)
class AssetTag:
    """A parsed asset tag; ``str(tag)`` gives the printed form."""

    prefix: str
    year: int
    sequence: int

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(f"prefix: expected 2-4 capital letters, got {self.prefix!r}")
        if not 2000 <= self.year <= 9999:
            raise ValueError(f"year: expected a four-digit year from 2000, got {self.year}")
        if self.sequence < 1:
            raise ValueError(f"sequence: must be 1 or more, got {self.sequence}")

    def __str__(self) -> str:
        return f"{self.prefix}-{self.year:04d}-{self.sequence:0{_SEQUENCE_DIGITS}d}"


def format_asset_tag(year: int, sequence: int, prefix: str = DEFAULT_PREFIX) -> str:
    """The tag for the ``sequence``-th machine received in ``year``: "DF-2026-000123"."""
    return str(AssetTag(prefix=prefix, year=year, sequence=sequence))


def parse_asset_tag(text: str) -> AssetTag:
    """Parse a tag as printed or typed (spaces and lower case forgiven); ValueError if not one."""
    match = _TAG_RE.match(text.strip().upper())
    if match is None:
        raise ValueError(f"asset_tag: {text!r} is not a tag like 'DF-2026-000123'")
    prefix, year, sequence = match.groups()
    return AssetTag(prefix=prefix, year=int(year), sequence=int(sequence))


def asset_tags(
    year: int, first_sequence: int, count: int, prefix: str = DEFAULT_PREFIX
) -> list[str]:
    """``count`` consecutive tags from ``first_sequence``: one per machine on a pallet."""
    if count < 0:
        raise ValueError(f"count: must not be negative, got {count}")
    return [format_asset_tag(year, first_sequence + i, prefix) for i in range(count)]


def machine_url(base_url: str, tag: str) -> str:
    """The console page of the machine with ``tag``, which its label's QR code opens."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url: expected an http(s) address, got {base_url!r}")
    parsed = parse_asset_tag(tag)
    return f"{base_url.rstrip('/')}/workshop/machines/{parsed}"


@dataclass(frozen=True, slots=True)
class LabelItem:
    """What one label shows besides the QR code."""

    tag: str
    title: str = ""  # e.g. "Lenovo ThinkCentre M700"
    serial_number: str = ""


@dataclass(frozen=True, slots=True)
class LabelSheet:
    """Geometry of a sheet of adhesive labels, in millimetres (default: A4, 3 × 8 of 70 × 37)."""

    columns: int = 3
    rows: int = 8
    label_width: float = 70.0
    label_height: float = 37.0
    margin_left: float = 0.0
    margin_top: float = 0.5
    gap_x: float = 0.0
    gap_y: float = 0.0
    padding: float = 2.5
    page_width: float = 210.0
    page_height: float = 297.0

    def __post_init__(self) -> None:
        if self.columns < 1 or self.rows < 1:
            raise ValueError("columns/rows: a sheet needs at least one label")
        used_w = self.margin_left + self.columns * self.label_width
        used_w += (self.columns - 1) * self.gap_x
        used_h = self.margin_top + self.rows * self.label_height + (self.rows - 1) * self.gap_y
        if used_w > self.page_width + 0.01 or used_h > self.page_height + 0.01:
            raise ValueError("label_width/label_height: the labels do not fit on the page")
        if self.label_height - 2 * self.padding < 15:
            raise ValueError("label_height: too small for a QR code a phone can read")

    @property
    def per_page(self) -> int:
        """How many labels fit on one sheet."""
        return self.columns * self.rows


def qr_png(url: str) -> bytes:
    """A QR code for ``url`` as PNG, with the standard four-module quiet zone."""
    # Level M survives a scuffed label; the quiet zone is part of the image so a
    # neighbouring label's print can't crowd the code.
    code = segno.make(url, error="m", micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()


def _fit_font_size(pdf: WorkshopPDF, text: str, width: float, start: float, style: str) -> float:
    size = start
    while size > 5:
        pdf.font(size, style)
        if pdf.get_string_width(text) <= width:
            break
        size -= 0.5
    return size


def _truncate(pdf: WorkshopPDF, text: str, width: float) -> str:
    if pdf.get_string_width(text) <= width:
        return text
    ellipsis = pdf.t("…")
    while text and pdf.get_string_width(text + ellipsis) > width:
        text = text[:-1]
    return text + ellipsis


def _wrap(pdf: WorkshopPDF, text: str, width: float, max_lines: int) -> list[str]:
    result = pdf.multi_cell(width, 3.5, text, dry_run=True, output=MethodReturnValue.LINES)
    # With output=LINES fpdf returns just the list of lines; its annotation is the union.
    assert isinstance(result, list)
    lines = [str(line) for line in result]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _truncate(pdf, lines[-1] + pdf.t(" …"), width)
    return lines


def _draw_label(
    pdf: WorkshopPDF, sheet: LabelSheet, x: float, y: float, item: LabelItem, url: str
) -> None:
    side = sheet.label_height - 2 * sheet.padding
    pdf.image(io.BytesIO(qr_png(url)), x=x + sheet.padding, y=y + sheet.padding, w=side, h=side)
    pdf.link(x + sheet.padding, y + sheet.padding, side, side, url)
    text_x = x + sheet.padding + side + 2
    text_w = x + sheet.label_width - sheet.padding - text_x
    tag = pdf.t(str(parse_asset_tag(item.tag)))

    pdf.set_xy(text_x, y + sheet.padding + 1)
    size = _fit_font_size(pdf, tag, text_w, 11, "B")
    pdf.cell(text_w, size * 0.45, tag, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.ln(1.5)
    pdf.font(7.5)
    if item.title:
        pdf.set_x(text_x)
        for line in _wrap(pdf, pdf.t(item.title), text_w, max_lines=2):
            pdf.set_x(text_x)
            pdf.cell(text_w, 3.5, line, new_x=XPos.LEFT, new_y=YPos.NEXT)
    if item.serial_number:
        pdf.set_x(text_x)
        serial = _truncate(pdf, pdf.t(f"S/N {item.serial_number}"), text_w)
        pdf.cell(text_w, 3.5, serial, new_x=XPos.LEFT, new_y=YPos.NEXT)

    pdf.set_xy(text_x, y + sheet.label_height - sheet.padding - 3.5)
    pdf.font(6)
    pdf.set_text_color(90)
    pdf.cell(text_w, 3, _truncate(pdf, pdf.t(pdf.org.name), text_w))
    pdf.set_text_color(20)


def label_pdf(
    items: Sequence[LabelItem | str],
    base_url: str,
    *,
    org: Organization | None = None,
    sheet: LabelSheet | None = None,
    created_at: datetime | None = None,
) -> bytes:
    """Printable labels, one per item, each with its tag and a QR code to its console page."""
    if not items:
        raise ValueError("items: no labels to print")
    sheet = sheet or LabelSheet()
    org = org or Organization(name="ΔiFronte")
    labels = [LabelItem(tag=i) if isinstance(i, str) else i for i in items]
    # Validate everything before drawing, so a bad tag in the middle of a pallet names itself.
    urls: list[str] = []
    for index, label in enumerate(labels):
        try:
            urls.append(machine_url(base_url, label.tag))
        except ValueError as exc:
            if str(exc).startswith("base_url"):
                raise
            raise ValueError(f"items[{index}].tag: {exc}") from exc

    pdf = WorkshopPDF(
        org=org,
        title_it="Etichette",
        title_en="Labels",
        created_at=created_at or datetime.now(UTC),
        header=False,
    )
    # Labels are placed by coordinates; an automatic break would split one across sheets.
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(0, 0, 0)
    for index, (label, url) in enumerate(zip(labels, urls, strict=True)):
        slot = index % sheet.per_page
        if slot == 0:
            pdf.add_page(format=(sheet.page_width, sheet.page_height))
        row, column = divmod(slot, sheet.columns)
        x = sheet.margin_left + column * (sheet.label_width + sheet.gap_x)
        y = sheet.margin_top + row * (sheet.label_height + sheet.gap_y)
        _draw_label(pdf, sheet, x, y, label, url)
    return pdf.to_bytes()
