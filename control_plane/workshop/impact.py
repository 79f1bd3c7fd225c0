"""The workshop's impact over a period: machines saved, work created, waste avoided.

Figures come from the lifecycle's transition records, the hours trainees logged and the
machines' weights. A machine counts once per figure even if a rework took it through a
state twice. "Kept out of waste" is the weight of the machines that found a second life
(deployed, sold or donated on); recycled weight is reported apart, since recycling is
proper disposal, not reuse.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from fpdf.fonts import FontFace

from control_plane.workshop.documents import Organization, WorkshopPDF
from control_plane.workshop.lifecycle import REUSE_STATES, MachineState, TransitionRecord


@dataclass(frozen=True, slots=True)
class HoursEntry:
    """Hours one person logged on one day (on a work order, optionally a machine)."""

    person: str
    worked_on: date
    hours: float | Decimal
    asset_tag: str | None = None


@dataclass(frozen=True, slots=True)
class ImpactFigures:
    """What the workshop achieved between two dates, both included."""

    period_start: date
    period_end: date
    received: int
    wiped: int
    deployed: int
    sold: int
    donated_on: int
    recycled: int
    hours_worked: float
    people: int
    kg_kept_out_of_waste: float
    kg_recycled: float
    machines_without_weight: int
    in_service_at_end: int

    @property
    def reused(self) -> int:
        """Machines given a second life: deployed, sold or donated on."""
        return self.deployed + self.sold + self.donated_on


# (attribute, Italian, English, unit): one list so the CSV, the PDF and the chart agree.
_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("received", "Macchine ricevute", "Machines received", "n"),
    ("wiped", "Macchine cancellate in modo sicuro", "Machines securely wiped", "n"),
    ("reused", "Macchine riusate", "Machines reused", "n"),
    ("deployed", "Consegnate nelle case", "Deployed in homes", "n"),
    ("sold", "Vendute", "Sold", "n"),
    ("donated_on", "Donate ad altri enti", "Donated on", "n"),
    ("recycled", "Avviate al riciclo", "Recycled", "n"),
    ("in_service_at_end", "In servizio a fine periodo", "In service at the end", "n"),
    ("hours_worked", "Ore di lavoro", "Hours of work", "h"),
    ("people", "Persone che hanno lavorato", "People who worked", "n"),
    ("kg_kept_out_of_waste", "Kg sottratti ai rifiuti", "Kg kept out of waste", "kg"),
    ("kg_recycled", "Kg riciclati", "Kg recycled", "kg"),
    ("machines_without_weight", "Macchine senza peso registrato", "Machines without weight", "n"),
)

_CHART: tuple[tuple[str, str, str], ...] = (
    ("received", "Ricevute", "Received"),
    ("deployed", "Nelle case", "In homes"),
    ("sold", "Vendute", "Sold"),
    ("donated_on", "Donate", "Donated on"),
    ("recycled", "Riciclate", "Recycled"),
)

_BOLD = FontFace(emphasis="BOLD")

_BAR_COLOURS = ((31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189), (127, 127, 127))


def _checked_weights(weights_kg: Mapping[str, float | Decimal]) -> dict[str, float]:
    # float() because database Numeric columns arrive as Decimal, which won't add to float.
    out: dict[str, float] = {}
    for tag, kg in weights_kg.items():
        value = float(kg)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weights_kg[{tag}]: must be a non-negative number, got {kg}")
        out[tag] = value
    return out


def _hours_in(entries: Sequence[HoursEntry], start: date, end: date) -> tuple[float, int]:
    total = 0.0
    people: set[str] = set()
    for index, entry in enumerate(entries):
        hours = float(entry.hours)
        if not (math.isfinite(hours) and 0 <= hours <= 24):
            raise ValueError(f"hours[{index}].hours: must be between 0 and 24, got {entry.hours}")
        if start <= entry.worked_on <= end:
            total += hours
            if hours > 0:
                people.add(entry.person.strip().casefold())
    return round(total, 2), len(people)


def compute_impact(
    period_start: date,
    period_end: date,
    transitions: Sequence[TransitionRecord],
    hours: Sequence[HoursEntry],
    weights_kg: Mapping[str, float | Decimal],
    *,
    timezone: str = "Europe/Rome",
) -> ImpactFigures:
    """The impact figures for the period, days counted in ``timezone``."""
    if period_end < period_start:
        raise ValueError("period_end: is before period_start")
    weights = _checked_weights(weights_kg)
    tz = ZoneInfo(timezone)

    in_period: dict[MachineState, set[str]] = {state: set() for state in MachineState}
    deployed_by_end: set[str] = set()
    for index, record in enumerate(transitions):
        if record.at.utcoffset() is None:
            # astimezone() would silently take the server's zone for a naive time.
            raise ValueError(f"transitions[{index}].at: must carry a time zone")
        # A day belongs to the cooperative's calendar: a deployment at 00:30 in Rome on
        # 1 April is an April figure even though it is still March in UTC.
        day = record.at.astimezone(tz).date()
        if day > period_end:
            continue
        if record.to_state is MachineState.DEPLOYED:
            deployed_by_end.add(record.asset_tag)
        if day >= period_start:
            in_period[record.to_state].add(record.asset_tag)

    reused: set[str] = set()
    for state in REUSE_STATES:
        reused |= in_period[state]
    recycled = in_period[MachineState.RECYCLED]
    missing = {tag for tag in reused | recycled if tag not in weights}
    total_hours, people = _hours_in(hours, period_start, period_end)
    return ImpactFigures(
        period_start=period_start,
        period_end=period_end,
        received=len(in_period[MachineState.RECEIVED]),
        wiped=len(in_period[MachineState.WIPED]),
        deployed=len(in_period[MachineState.DEPLOYED]),
        sold=len(in_period[MachineState.SOLD]),
        donated_on=len(in_period[MachineState.DONATED_ON]),
        recycled=len(recycled),
        hours_worked=total_hours,
        people=people,
        kg_kept_out_of_waste=round(math.fsum(weights.get(t, 0.0) for t in reused), 2),
        kg_recycled=round(math.fsum(weights.get(t, 0.0) for t in recycled), 2),
        machines_without_weight=len(missing),
        in_service_at_end=len(deployed_by_end),
    )


def _value(figures: ImpactFigures, attribute: str) -> float:
    value: float = getattr(figures, attribute)
    return value


def _plain(value: float, unit: str) -> str:
    # Machine-readable: a dot for decimals, no thousands separator.
    return str(int(value)) if unit == "n" else f"{value:.2f}".rstrip("0").rstrip(".")


def _italian(value: float, unit: str) -> str:
    if unit == "n":
        return f"{int(value):,}".replace(",", ".")
    return f"{value:.1f}".replace(".", ",") + f" {unit}"


def impact_csv(figures: ImpactFigures) -> str:
    """The figures as CSV: metric, label_it, label_en, value, unit (a row per figure)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("metric", "label_it", "label_en", "value", "unit"))
    writer.writerow(
        ("period_start", "Inizio periodo", "Period start", figures.period_start.isoformat(), "")
    )
    writer.writerow(
        ("period_end", "Fine periodo", "Period end", figures.period_end.isoformat(), "")
    )
    for attribute, label_it, label_en, unit in _METRICS:
        value = _value(figures, attribute)
        writer.writerow((attribute, label_it, label_en, _plain(value, unit), unit))
    return out.getvalue()


def _bar_chart(pdf: WorkshopPDF, figures: ImpactFigures) -> None:
    pdf.keep_space(80)
    pdf.heading("Macchine nel periodo", "Machines in the period", size=12)
    left = pdf.l_margin + 4
    width = pdf.w - pdf.l_margin - pdf.r_margin - 8
    height = 42.0
    top = pdf.get_y() + 6  # room for the value printed over the tallest bar
    base = top + height
    values = [int(_value(figures, attribute)) for attribute, _, _ in _CHART]
    peak = max(values) or 1  # an empty period still draws an axis, not a division by zero
    slot = width / len(values)
    bar = slot * 0.6
    pdf.set_draw_color(120)
    pdf.line(left, base, left + width, base)
    for index, (value, (_, label_it, label_en)) in enumerate(zip(values, _CHART, strict=True)):
        x = left + index * slot + (slot - bar) / 2
        bar_height = height * value / peak
        pdf.set_fill_color(*_BAR_COLOURS[index % len(_BAR_COLOURS)])
        if bar_height > 0:
            pdf.rect(x, base - bar_height, bar, bar_height, style="F")
        pdf.font(10, "B")
        pdf.set_xy(x, base - bar_height - 5.5)
        pdf.cell(bar, 5, str(value), align="C")
        pdf.font(9)
        pdf.set_xy(left + index * slot, base + 1.5)
        pdf.cell(slot, 4.5, pdf.t(label_it), align="C")
        pdf.font(8, "I")
        pdf.set_text_color(95)
        pdf.set_xy(left + index * slot, base + 6)
        pdf.cell(slot, 4, pdf.t(label_en), align="C")
        pdf.set_text_color(20)
    pdf.set_fill_color(255)
    pdf.set_xy(pdf.l_margin, base + 14)


def impact_pdf(
    figures: ImpactFigures, org: Organization, *, created_at: datetime | None = None
) -> bytes:
    """The impact report as a PDF: the figures in both languages and a bar chart."""
    pdf = WorkshopPDF(
        org=org,
        title_it="Rapporto di impatto",
        title_en="Impact report",
        created_at=created_at or datetime.now(UTC),
    )
    pdf.add_page()
    pdf.heading("Rapporto di impatto", "Impact report")
    start = f"{figures.period_start:%d/%m/%Y}"
    end = f"{figures.period_end:%d/%m/%Y}"
    pdf.paragraph(f"Periodo: dal {start} al {end}", f"Period: from {start} to {end}", size=11)
    pdf.ln(2)
    # The picture first: most readers look at the bars and stop there.
    _bar_chart(pdf, figures)
    pdf.heading("Dati", "Figures", size=12)
    pdf.font(10)
    with pdf.table(
        col_widths=(3, 1),
        text_align=("LEFT", "RIGHT"),
        borders_layout="HORIZONTAL_LINES",
        first_row_as_headings=False,
        cell_fill_mode="NONE",
        line_height=4.0,
        padding=(0.6, 2),
    ) as table:
        for attribute, label_it, label_en, unit in _METRICS:
            if attribute == "machines_without_weight" and not figures.machines_without_weight:
                continue  # a caveat worth a row only when it applies
            row = table.row()
            row.cell(pdf.t(f"{label_it}\n{label_en}"))
            row.cell(pdf.t(_italian(_value(figures, attribute), unit)), style=_BOLD)
    if figures.machines_without_weight:
        pdf.ln(2)
        pdf.paragraph(
            "I chili non comprendono le macchine senza peso registrato.",
            "The kilograms leave out the machines with no weight recorded.",
            size=9,
        )
    return pdf.to_bytes()
