"""Service-level helpers of the workshop's database tests: times, people, machines."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from control_plane.config import Settings
from control_plane.models import User
from control_plane.workshop import records, service
from control_plane.workshop.config import WorkshopConfig
from control_plane.workshop.intake import DonatedItem, Donation, ItemKind
from control_plane.workshop.models import Machine
from tests.workshop.workshop_support import Person, good_report

ROME = ZoneInfo("Europe/Rome")
CONFIG = WorkshopConfig()


def at(day: str, hour: int = 10) -> dt.datetime:
    """``hour`` o'clock on ``day`` in Rome."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=ROME)


def user_of(session: Session, person: Person) -> User:
    """The test person's row in ``session``."""
    user = session.get(User, person.id)
    assert user is not None
    return user


def donate(
    session: Session, lead: User, *weights: float | None, day: str = "2026-03-02"
) -> list[Machine]:
    """Receive a donation of laptops weighing ``weights`` on ``day``; its machines."""
    spec = Donation(
        donor="Parrocchia San Marco",
        received_on=dt.date.fromisoformat(day),
        consent_erase_reuse=True,
        items=tuple(
            DonatedItem(kind=ItemKind.LAPTOP, serial_number=f"SN-{day}-{i}", weight_kg=w)
            for i, w in enumerate(weights)
        ),
    )
    donation = service.receive_donation(session, CONFIG, spec=spec, user=lead, now=at(day, 9))
    return list(donation.machines)


def to_ready(session: Session, settings: Settings, machine: Machine, user: User, day: str) -> None:
    """Take a received machine through diagnostics and erasure to ready on ``day``."""
    now = at(day)
    service.change_state(
        session, settings, CONFIG, machine=machine, to="triaged", user=user, now=now
    )
    report = good_report(serial=machine.serial_number, disk_serial=f"D-{machine.asset_tag}")
    records.record_diagnostics(session, machine=machine, report=report, user=user, now=now)
    service.change_state(session, settings, CONFIG, machine=machine, to="wiped", user=user, now=now)
    records.record_erasure(
        session,
        machine=machine,
        user=user,
        disk_serial=f"D-{machine.asset_tag}",
        method="nvme_format",
        verification="passed",
        started_at=now - dt.timedelta(hours=1),
        finished_at=now,
        now=now,
    )
    for state in ("tested", "imaged", "quality_checked", "ready"):
        service.change_state(
            session, settings, CONFIG, machine=machine, to=state, user=user, now=now
        )
