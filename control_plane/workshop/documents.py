"""Building blocks shared by the workshop's PDFs: the issuing organisation, fonts, layout.

Every document is Italian first with English underneath. The text needs "Δ" and Italian
accents, so a Unicode TrueType font (DejaVu Sans, Debian's ``fonts-dejavu-core``) is embedded
when it can be found; otherwise the PDF falls back to the core Helvetica font and the text is
transliterated to Latin-1, so a missing font package degrades the look, never the content.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos

#: Where to look for DejaVu Sans; a module attribute so a test can point it elsewhere.
FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts/dejavu"),
)

_FONT_FILES = {
    "": "DejaVuSans.ttf",
    "B": "DejaVuSans-Bold.ttf",
    "I": "DejaVuSans-Oblique.ttf",
    "BI": "DejaVuSans-BoldOblique.ttf",
}

_UNICODE_FAMILY = "DejaVu"
_CORE_FAMILY = "Helvetica"

# Characters the documents use that Latin-1 lacks; everything else goes through NFKD.
_TRANSLITERATIONS = {
    "Δ": "D",
    "—": "-",
    "–": "-",
    "…": "...",
    "’": "'",
    "‘": "'",
    "“": '"',
    "”": '"',
    "€": "EUR",
    "→": "->",
    "≥": ">=",
    "≤": "<=",
    "•": "*",
    "✓": "OK",
    "✗": "X",
    "Ł": "L",
    "ł": "l",
    "Đ": "D",
    "đ": "d",
    "Œ": "OE",
    "œ": "oe",
}

GREY = 95
INK = 20


@dataclass(frozen=True, slots=True)
class Organization:
    """The cooperative that issues a document: shown in its header and on its signature."""

    name: str
    address: str = ""
    tax_code: str = ""
    contact: str = ""
    timezone: str = "Europe/Rome"

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("name: the organisation's name must not be empty")
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from exc


def find_unicode_fonts() -> dict[str, Path] | None:
    """DejaVu Sans files by fpdf style ("", "B", "I", "BI"), or None if the regular is missing."""
    for directory in FONT_DIRS:
        regular = directory / _FONT_FILES[""]
        if not regular.is_file():
            continue
        found: dict[str, Path] = {}
        for style, name in _FONT_FILES.items():
            path = directory / name
            # A missing bold or oblique is drawn with the regular face rather than failing.
            found[style] = path if path.is_file() else regular
        return found
    return None


def transliterate(text: str) -> str:
    """``text`` reduced to Latin-1 for the core fonts: "ΔiFronte" becomes "DiFronte"."""
    out: list[str] = []
    for char in text:
        if char in _TRANSLITERATIONS:
            out.append(_TRANSLITERATIONS[char])
            continue
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFKD", char)
            kept = decomposed.encode("latin-1", "ignore").decode("latin-1")
            out.append(kept if kept else "?")
    return "".join(out)


def format_time(moment: datetime, tz: ZoneInfo) -> str:
    """A moment as local date and time with the zone name, e.g. "05/03/2026 14:30 CET"."""
    local = moment.astimezone(tz)
    return f"{local:%d/%m/%Y %H:%M} {local.tzname() or ''}".rstrip()


def format_bytes(size: int | None) -> str:
    """A disk or memory size the way its label says it: decimal GB/TB; "—" if unknown."""
    if size is None:
        return "—"
    if size >= 10**12:
        return f"{size / 10**12:.1f} TB"
    if size >= 10**9:
        return f"{size / 10**9:.0f} GB"
    return f"{size / 10**6:.0f} MB"


class WorkshopPDF(FPDF):
    """An A4 document with the organisation's header, page numbers and bilingual helpers."""

    def __init__(
        self,
        *,
        org: Organization,
        title_it: str,
        title_en: str,
        created_at: datetime,
        header: bool = True,
        landscape: bool = False,
    ) -> None:
        super().__init__(
            orientation="landscape" if landscape else "portrait", unit="mm", format="A4"
        )
        self.org = org
        self.tz = ZoneInfo(org.timezone)
        self.title_it = title_it
        self.title_en = title_en
        self._with_header = header
        fonts = find_unicode_fonts()
        self.unicode_text = fonts is not None
        if fonts is not None:
            for style, path in fonts.items():
                self.add_font(_UNICODE_FAMILY, style=style, fname=path)
            self.family = _UNICODE_FAMILY
        else:
            self.family = _CORE_FAMILY
        # Fixed metadata so the same input gives the same document, byte for byte.
        self.set_creation_date(created_at)
        self.set_creator("ΔiFronte" if self.unicode_text else "DiFronte")
        self.set_author(self.t(org.name))
        self.set_title(self.t(f"{title_it} / {title_en}"))
        self.set_lang("it")
        self.set_margins(18, 18, 18)
        self.set_auto_page_break(auto=True, margin=20)
        self.set_text_color(INK)

    def t(self, text: str) -> str:
        """``text`` as this document's font can draw it."""
        return text if self.unicode_text else transliterate(text)

    def font(self, size: float, style: str = "") -> None:
        """Switch to the document's family at ``size`` points."""
        self.set_font(self.family, style=style, size=size)

    def header(self) -> None:
        """Organisation name and document title on every page."""
        if not self._with_header:
            return
        self.font(9, "B")
        self.set_text_color(INK)
        self.cell(0, 5, self.t(self.org.name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        details = " · ".join(
            p for p in (self.org.address, self.org.tax_code, self.org.contact) if p
        )
        if details:
            self.font(8)
            self.set_text_color(GREY)
            self.cell(0, 4, self.t(details), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(180)
        self.line(self.l_margin, self.get_y() + 1, self.w - self.r_margin, self.get_y() + 1)
        self.set_text_color(INK)
        self.ln(5)

    def footer(self) -> None:
        """Page numbers in both languages."""
        if not self._with_header:
            return
        self.set_y(-14)
        self.font(8)
        self.set_text_color(GREY)
        text = f"Pagina {self.page_no()} di {{nb}} · Page {self.page_no()} of {{nb}}"
        self.cell(0, 5, self.t(text), align="C")
        self.set_text_color(INK)

    def _lines(self, width: float, height: float, text: str) -> None:
        # Left-aligned: fpdf's default justification stretches short bilingual lines badly.
        self.multi_cell(width, height, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def keep_space(self, height: float) -> None:
        """Start a new page unless ``height`` millimetres are left on this one."""
        if self.get_y() + height > self.page_break_trigger:
            self.add_page()

    def heading(self, text_it: str, text_en: str, size: float = 16) -> None:
        """A title: Italian in bold, English in grey italic underneath."""
        self.font(size, "B")
        self._lines(0, size * 0.45, self.t(text_it))
        self.font(size * 0.7, "I")
        self.set_text_color(GREY)
        self._lines(0, size * 0.35, self.t(text_en))
        self.set_text_color(INK)
        self.ln(3)

    def paragraph(self, text_it: str, text_en: str, size: float = 10) -> None:
        """A paragraph in Italian followed by its English translation in grey italic."""
        self.font(size)
        self._lines(0, size * 0.5, self.t(text_it))
        self.font(size - 1, "I")
        self.set_text_color(GREY)
        self._lines(0, size * 0.45, self.t(text_en))
        self.set_text_color(INK)
        self.ln(2)

    def field(self, label_it: str, label_en: str, value: str, label_width: float = 58) -> None:
        """One "label: value" line, the label in Italian over English, the value on the right."""
        self.keep_space(12)
        top = self.get_y()
        left = self.l_margin
        self.font(10)
        self._lines(label_width, 5, self.t(label_it))
        self.font(8, "I")
        self.set_text_color(GREY)
        self._lines(label_width, 4, self.t(label_en))
        self.set_text_color(INK)
        label_bottom = self.get_y()
        self.set_xy(left + label_width, top)
        self.font(10, "B")
        self._lines(0, 5, self.t(value or "—"))
        self.set_y(max(label_bottom, self.get_y()) + 1.5)

    def signature_block(self, role_it: str, role_en: str, name: str = "") -> None:
        """A line to sign on, with the role in both languages and the name if known."""
        self.keep_space(28)
        self.ln(10)
        x = self.l_margin
        y = self.get_y()
        self.set_draw_color(INK)
        self.line(x, y, x + 80, y)
        self.ln(1.5)
        self.font(9)
        label = f"{role_it} / {role_en}" + (f": {name}" if name else "")
        self.cell(80, 5, self.t(label), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def to_bytes(self) -> bytes:
        """The finished PDF."""
        return bytes(self.output())
