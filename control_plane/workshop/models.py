"""Workshop tables: donations, machines and their journey, diagnostics, erasures, work.

Quantities are stored as integers (grams, minutes) so that SQLite and PostgreSQL give back
exactly what was stored; the service turns them into kilograms and hours.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow


class Donation(Base):
    """Who gave what and when, with their consent to erase and reuse."""

    __tablename__ = "workshop_donations"

    id: Mapped[int] = mapped_column(primary_key=True)
    donor: Mapped[str] = mapped_column(String(200))
    donor_contact: Mapped[str] = mapped_column(String(200), default="")
    received_on: Mapped[dt.date] = mapped_column(Date)
    consent_erase_reuse: Mapped[bool] = mapped_column(default=False)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    machines: Mapped[list[Machine]] = relationship(
        back_populates="donation", order_by="Machine.asset_tag"
    )

    @property
    def reference(self) -> str:
        """The batch reference printed on labels and erasure summaries: "D-2026-000042"."""
        return f"D-{self.received_on.year}-{self.id:06d}"


class TagCounter(Base):
    """The last asset-tag sequence handed out per prefix and intake year."""

    __tablename__ = "workshop_tag_counters"

    prefix: Mapped[str] = mapped_column(String(4), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_sequence: Mapped[int] = mapped_column(Integer, default=0)


class Machine(Base):
    """One donated item, from intake to its end; ``state`` is a lifecycle.MachineState."""

    __tablename__ = "workshop_machines"
    __table_args__ = (Index("ix_workshop_machines_state", "state", "asset_tag"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_tag: Mapped[str] = mapped_column(String(24), unique=True)
    donation_id: Mapped[int] = mapped_column(
        ForeignKey("workshop_donations.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    manufacturer: Mapped[str] = mapped_column(String(100), default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    serial_number: Mapped[str] = mapped_column(String(100), default="", index=True)
    weight_g: Mapped[int | None] = mapped_column(Integer, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20))
    state_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # From the latest diagnostics report; disk_serials is None until one is uploaded.
    diagnostics_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disk_serials: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    telecare_blockers: Mapped[list[str]] = mapped_column(JSON, default=list)
    inventory: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    # Deployment: the beneficiary, and the fleet device id the PC enrolls as. The device
    # row only exists once the PC has enrolled, hence no foreign key on device_id.
    beneficiary_id: Mapped[int | None] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="SET NULL"), nullable=True, index=True
    )
    device_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    device_linked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    donation: Mapped[Donation] = relationship(back_populates="machines")
    transitions: Mapped[list[MachineTransition]] = relationship(
        back_populates="machine", order_by="MachineTransition.id"
    )
    erasures: Mapped[list[Erasure]] = relationship(back_populates="machine", order_by="Erasure.id")

    @property
    def title(self) -> str:
        """Manufacturer and model, for labels and lists."""
        return " ".join(p for p in (self.manufacturer, self.model) if p)


class MachineTransition(Base):
    """One step of a machine's journey: who, when, from, to, why. Never updated."""

    __tablename__ = "workshop_transitions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("workshop_machines.id", ondelete="CASCADE"), index=True
    )
    from_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_state: Mapped[str] = mapped_column(String(20), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)

    machine: Mapped[Machine] = relationship(back_populates="transitions")


class DiagnosticsReport(Base):
    """A diagnostics report as uploaded, kept whole: the machine holds its summary."""

    __tablename__ = "workshop_diagnostics"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("workshop_machines.id", ondelete="CASCADE"), index=True
    )
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    uploaded_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    tool_version: Mapped[str] = mapped_column(String(64), default="")
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class Erasure(Base):
    """The erasure of one disk of a machine: one line of its erasure certificate."""

    __tablename__ = "workshop_erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("workshop_machines.id", ondelete="CASCADE"), index=True
    )
    disk_serial: Mapped[str] = mapped_column(String(100))
    disk_model: Mapped[str] = mapped_column(String(200), default="")
    method: Mapped[str] = mapped_column(String(32))
    verification: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    passes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tool: Mapped[str] = mapped_column(String(100), default="")
    verification_detail: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    machine: Mapped[Machine] = relationship(back_populates="erasures")


class WorkOrder(Base):
    """A task for a trainee, on a machine or on the workshop, supervised by a lead."""

    __tablename__ = "workshop_work_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    machine_id: Mapped[int | None] = mapped_column(
        ForeignKey("workshop_machines.id", ondelete="SET NULL"), nullable=True, index=True
    )
    assignee_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    supervisor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), index=True)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    due_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    review_notes: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    machine: Mapped[Machine | None] = relationship()
    entries: Mapped[list[WorkLog]] = relationship(
        back_populates="work_order", order_by="WorkLog.id", cascade="all, delete-orphan"
    )


class WorkLog(Base):
    """Time one person spent on a work order on one day, and the skills it exercised."""

    __tablename__ = "workshop_hours"
    __table_args__ = (Index("ix_workshop_hours_person_day", "person_id", "worked_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    work_order_id: Mapped[int] = mapped_column(
        ForeignKey("workshop_work_orders.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    worked_on: Mapped[dt.date] = mapped_column(Date, index=True)
    minutes: Mapped[int] = mapped_column(Integer)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    work_order: Mapped[WorkOrder] = relationship(back_populates="entries")
