"""The workshop's printed matter from the database: labels and the impact report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Settings
from ..db import utcnow
from .asset_tags import LabelItem, label_pdf
from .config import WorkshopConfig
from .errors import WorkshopError
from .impact import HoursEntry, ImpactFigures, compute_impact, impact_pdf
from .lifecycle import MachineState, TransitionRecord
from .models import Machine, MachineTransition, WorkLog, WorkOrder

# Longer than this is a typo (a year 20226), not a report anyone wants to wait for.
MAX_PERIOD_DAYS = 366 * 10


def labels_for(machines: Sequence[Machine], settings: Settings, config: WorkshopConfig) -> bytes:
    """A sheet of labels, one per machine, each with a QR code to its console page."""
    if not machines:
        raise WorkshopError(
            409, "machines", "there are no machines to label", "non ci sono macchine da etichettare"
        )
    items = [
        LabelItem(tag=m.asset_tag, title=m.title, serial_number=m.serial_number) for m in machines
    ]
    try:
        return label_pdf(items, settings.public_url, org=config.organization)
    except ValueError as exc:  # only a misconfigured public_url can get here
        raise WorkshopError(500, "public_url", str(exc)) from exc


def check_period(start: dt.date, end: dt.date) -> None:
    """Refuse a period that ends before it starts or is absurdly long."""
    if end < start:
        raise WorkshopError(
            422, "end", "the period ends before it starts", "il periodo finisce prima di iniziare"
        )
    if (end - start).days > MAX_PERIOD_DAYS:
        raise WorkshopError(
            422,
            "start",
            "the period is longer than ten years",
            "il periodo supera i dieci anni",
        )


def impact_for(
    session: Session, config: WorkshopConfig, *, start: dt.date, end: dt.date
) -> ImpactFigures:
    """The impact figures between ``start`` and ``end`` (both included, workshop calendar)."""
    check_period(start, end)
    # Everything up to the end of the last day in the workshop's zone; compute_impact then
    # places each record on its local day.
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=config.tz)
    rows = session.execute(
        select(MachineTransition, Machine.asset_tag)
        .join(Machine, Machine.id == MachineTransition.machine_id)
        .where(MachineTransition.at < until)
        .order_by(MachineTransition.id)
    ).all()
    transitions = [
        TransitionRecord(
            asset_tag=tag,
            from_state=None if t.from_state is None else MachineState(t.from_state),
            to_state=MachineState(t.to_state),
            actor=t.actor,
            at=t.at,
            notes=t.notes,
        )
        for t, tag in rows
    ]
    hours = [
        HoursEntry(
            person=str(entry.person_id),
            worked_on=entry.worked_on,
            hours=entry.minutes / 60,
            asset_tag=tag,
        )
        for entry, tag in session.execute(
            select(WorkLog, Machine.asset_tag)
            .join(WorkOrder, WorkOrder.id == WorkLog.work_order_id)
            .outerjoin(Machine, Machine.id == WorkOrder.machine_id)
            .where(WorkLog.worked_on >= start, WorkLog.worked_on <= end)
        ).all()
    ]
    tags = {t.asset_tag for t in transitions}
    weights = {
        tag: grams / 1000
        for tag, grams in session.execute(
            select(Machine.asset_tag, Machine.weight_g).where(Machine.weight_g.is_not(None))
        ).all()
        if tag in tags and grams is not None
    }
    return compute_impact(start, end, transitions, hours, weights, timezone=config.timezone)


def impact_pdf_for(
    figures: ImpactFigures, config: WorkshopConfig, *, now: dt.datetime | None = None
) -> bytes:
    """The impact report as a PDF with the organisation's header."""
    return impact_pdf(figures, config.organization, created_at=now or utcnow())
