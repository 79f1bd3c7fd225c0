"""Impact figures from a hand-built history, and their CSV and PDF exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from control_plane.workshop.documents import Organization
from control_plane.workshop.impact import (
    HoursEntry,
    ImpactFigures,
    compute_impact,
    impact_csv,
    impact_pdf,
)
from control_plane.workshop.lifecycle import MachineState, TransitionRecord
from tests.workshop.pdf_helpers import pdf_text, reader

S = MachineState
START, END = date(2026, 1, 1), date(2026, 3, 31)
ORG = Organization(name="Cooperativa ΔiFronte")
CREATED = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


def rec(
    tag: str, to: MachineState, at: datetime, frm: MachineState | None = None
) -> TransitionRecord:
    return TransitionRecord(asset_tag=tag, from_state=frm, to_state=to, actor="anna", at=at)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


HISTORY = [
    # M1: received before the period, deployed in it.
    rec("M1", S.RECEIVED, utc(2025, 12, 20, 9)),
    rec("M1", S.DEPLOYED, utc(2026, 2, 10, 9), S.READY),
    # M2: received, wiped, sent back to triage, wiped again (one machine, counted once), sold.
    rec("M2", S.RECEIVED, utc(2026, 1, 5, 9)),
    rec("M2", S.WIPED, utc(2026, 1, 10, 9), S.TRIAGED),
    rec("M2", S.TRIAGED, utc(2026, 1, 12, 9), S.TESTED),
    rec("M2", S.WIPED, utc(2026, 1, 14, 9), S.TRIAGED),
    rec("M2", S.SOLD, utc(2026, 3, 1, 9), S.READY),
    # M3: 23:30 UTC on 31 March is already 1 April in Rome (summer time): not in the period.
    rec("M3", S.RECEIVED, utc(2026, 3, 31, 23, 30)),
    # M4: received and recycled.
    rec("M4", S.RECEIVED, utc(2026, 2, 1, 9)),
    rec("M4", S.RECYCLED, utc(2026, 2, 20, 9), S.TRIAGED),
    # M5: deployed just after the period (local time): neither counted nor in service at the end.
    rec("M5", S.DEPLOYED, utc(2026, 3, 31, 22, 30), S.READY),
    # M6: deployed long before: not a figure of the period, but still in service.
    rec("M6", S.DEPLOYED, utc(2025, 11, 1, 9), S.READY),
    # M7: donated on, no weight recorded.
    rec("M7", S.DONATED_ON, utc(2026, 1, 15, 9), S.READY),
    # M8: 23:30 UTC on 31 December is 00:30 on 1 January in Rome: in the period.
    rec("M8", S.DEPLOYED, utc(2025, 12, 31, 23, 30), S.READY),
]

WEIGHTS = {"M1": 6.5, "M2": 7.3, "M3": 3.0, "M4": 9.0, "M5": 4.0, "M6": 5.0, "M8": 2.0}

HOURS = [
    HoursEntry("Luca", date(2026, 1, 10), 6.0, "M2"),
    HoursEntry("luca ", date(2026, 1, 11), 4.5),  # the same person, typed differently
    HoursEntry("Sara", date(2026, 3, 31), 3.0),
    HoursEntry("Sara", date(2026, 4, 1), 8.0),  # after the period
    HoursEntry("Ahmed", date(2025, 12, 31), 5.0),  # before the period
    HoursEntry("Ahmed", date(2026, 2, 2), 0.0),  # logged nothing: not counted as a worker
]


def figures() -> ImpactFigures:
    return compute_impact(START, END, HISTORY, HOURS, WEIGHTS)


def test_figures_count_only_the_period() -> None:
    f = figures()
    assert (f.period_start, f.period_end) == (START, END)
    assert f.received == 2  # M2, M4
    assert f.wiped == 1  # M2, twice
    assert f.deployed == 2  # M1, M8
    assert f.sold == 1  # M2
    assert f.donated_on == 1  # M7
    assert f.recycled == 1  # M4
    assert f.reused == 4
    assert f.in_service_at_end == 3  # M1, M6, M8


def test_kilograms_and_hours() -> None:
    f = figures()
    assert f.kg_kept_out_of_waste == pytest.approx(6.5 + 2.0 + 7.3)  # M1, M8, M2
    assert f.kg_recycled == pytest.approx(9.0)
    assert f.machines_without_weight == 1  # M7
    assert f.hours_worked == pytest.approx(13.5)
    assert f.people == 2


def test_days_follow_the_chosen_time_zone() -> None:
    f = compute_impact(START, END, HISTORY, HOURS, WEIGHTS, timezone="UTC")
    assert f.received == 3  # M3 now falls on 31 March
    assert f.deployed == 2  # M1, M5; M8 falls on 31 December
    assert f.in_service_at_end == 4


def test_an_empty_period() -> None:
    f = compute_impact(date(2030, 1, 1), date(2030, 1, 31), HISTORY, HOURS, WEIGHTS)
    assert (f.received, f.reused, f.recycled, f.hours_worked, f.people) == (0, 0, 0, 0.0, 0)
    assert isinstance(f.kg_kept_out_of_waste, float)
    assert f.in_service_at_end == 4  # M1, M5, M6, M8: deployed machines stay in service
    assert "Rapporto di impatto" in pdf_text(impact_pdf(f, ORG, created_at=CREATED))


def test_input_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="period_end"):
        compute_impact(END, START, HISTORY, HOURS, WEIGHTS)
    with pytest.raises(ValueError, match=r"weights_kg\[M1\]"):
        compute_impact(START, END, HISTORY, HOURS, {"M1": -1.0})
    with pytest.raises(ValueError, match=r"hours\[1\]\.hours"):
        compute_impact(START, END, HISTORY, [HOURS[0], HoursEntry("x", START, 25.0)], WEIGHTS)


def test_naive_transition_times_are_refused() -> None:
    naive = rec("M9", S.RECEIVED, datetime(2026, 1, 5, 9))
    with pytest.raises(ValueError, match=r"transitions\[1\]\.at"):
        compute_impact(START, END, [HISTORY[0], naive], HOURS, WEIGHTS)


def test_decimals_from_the_database() -> None:
    weights = {tag: Decimal(str(kg)) for tag, kg in WEIGHTS.items()}
    hours = [HoursEntry(h.person, h.worked_on, Decimal(str(h.hours))) for h in HOURS]
    f = compute_impact(START, END, HISTORY, hours, weights)
    assert f == figures()
    assert isinstance(f.kg_kept_out_of_waste, float) and isinstance(f.hours_worked, float)


def test_csv_export() -> None:
    text = impact_csv(figures())
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    by_metric = {row["metric"]: row for row in rows}
    assert by_metric["period_start"]["value"] == "2026-01-01"
    assert by_metric["period_end"]["value"] == "2026-03-31"
    assert by_metric["received"]["value"] == "2"
    assert by_metric["deployed"]["label_it"] == "Consegnate nelle case"
    assert by_metric["deployed"]["label_en"] == "Deployed in homes"
    assert by_metric["reused"]["value"] == "4"
    assert by_metric["hours_worked"] == {
        "metric": "hours_worked",
        "label_it": "Ore di lavoro",
        "label_en": "Hours of work",
        "value": "13.5",
        "unit": "h",
    }
    assert by_metric["kg_kept_out_of_waste"]["value"] == "15.8"
    assert by_metric["kg_recycled"]["value"] == "9"
    assert by_metric["machines_without_weight"]["value"] == "1"


def test_pdf_export() -> None:
    data = impact_pdf(figures(), ORG, created_at=CREATED)
    assert len(reader(data).pages) == 1
    text = " ".join(pdf_text(data).split())
    for expected in (
        "Rapporto di impatto",
        "Impact report",
        "Periodo: dal 01/01/2026 al 31/03/2026",
        "Macchine nel periodo",
        "Consegnate nelle case Deployed in homes 2",
        "Ore di lavoro Hours of work 13,5 h",
        "Kg sottratti ai rifiuti Kg kept out of waste 15,8 kg",
        "In servizio a fine periodo In service at the end 3",
        "I chili non comprendono le macchine senza peso registrato.",
    ):
        assert expected in text, expected
    assert impact_pdf(figures(), ORG, created_at=CREATED) == data


def test_pdf_chart_is_drawn() -> None:
    # The bars are filled rectangles in the page's content stream, one per non-zero count.
    page = reader(impact_pdf(figures(), ORG, created_at=CREATED)).pages[0]
    content = page.get_contents()
    assert content is not None
    stream = content.get_data().decode("latin-1")
    # received 2, deployed 2, sold 1, donated on 1, recycled 1: five bars
    assert stream.count(" re f") >= 5
