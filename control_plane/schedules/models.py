"""Tables of the wake-schedule feature: appointments, exceptions, publications, wakes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow

_BIGID = BigInteger().with_variant(Integer, "sqlite")


class Appointment(Base):
    """A recurring or one-off appointment between a beneficiary and their caregivers.

    ``start_local`` is naive on purpose: it is wall-clock time in the beneficiary's time
    zone, so a 10:00 appointment stays at 10:00 across DST changes (see ``expansion``).
    """

    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200), default="")
    start_local: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False))
    duration_min: Mapped[int] = mapped_column(Integer)
    rrule: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Last local day (inclusive) of the series: set when an edit takes effect from a date.
    until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    # The series this one continues after an edit "from a date on".
    previous_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="SET NULL"), nullable=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    caregivers: Mapped[list[AppointmentCaregiver]] = relationship(
        back_populates="appointment", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def caregiver_ids(self) -> list[int]:
        """The users who take part, sorted."""
        return sorted(c.user_id for c in self.caregivers)


class AppointmentCaregiver(Base):
    """A caregiver who calls at an appointment."""

    __tablename__ = "appointment_caregivers"

    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    appointment: Mapped[Appointment] = relationship(back_populates="caregivers")


class ScheduleException(Base):
    """Local days without appointments (all of the beneficiary's, or one series'): a holiday."""

    __tablename__ = "schedule_exceptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="CASCADE"), index=True
    )
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), nullable=True
    )
    first_day: Mapped[dt.date] = mapped_column(Date)
    last_day: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SchedulePublication(Base):
    """The schedule last put in a device's desired twin, and when."""

    __tablename__ = "schedule_publications"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    beneficiary_id: Mapped[int | None] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="SET NULL"), nullable=True
    )
    version: Mapped[int] = mapped_column(BigInteger)
    horizon_end: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    wake_count: Mapped[int] = mapped_column(Integer, default=0)


class WakeOutcome(StrEnum):
    """Whether the PC was up for a wake window."""

    PENDING = "pending"  # the window has not started (plus grace) yet
    WOKE = "woke"  # online by start + grace
    MISSED = "missed"  # not online by start + grace
    LATE = "late"  # missed, then came online before the window ended


class WakeRecord(Base):
    """One wake window a device was expected to be up for, and what happened."""

    __tablename__ = "wake_records"
    __table_args__ = (
        UniqueConstraint("device_id", "start_at"),
        Index("ix_wake_records_outcome", "outcome", "call_checked"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    beneficiary_id: Mapped[int | None] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="SET NULL"), index=True, nullable=True
    )
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    lead_s: Mapped[int] = mapped_column(Integer, default=0)
    appointment_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    outcome: Mapped[str] = mapped_column(String(16), default=WakeOutcome.PENDING.value)
    online_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    called_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set once the window (plus grace) is over and the call check has been made.
    call_checked: Mapped[bool] = mapped_column(default=False)
    no_call: Mapped[bool] = mapped_column(default=False)


class DeviceWakeProfile(Base):
    """How a board wakes: the power policy to publish and what commissioning found."""

    __tablename__ = "device_wake_profiles"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    # None: the control plane's default policy; else poweroff, suspend or stay.
    policy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # None until commissioned: does the RTC alarm bring the board back from power-off?
    wakes_from_off: Mapped[bool | None] = mapped_column(nullable=True)
    commission_result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    commissioned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    commission_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
