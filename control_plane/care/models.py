"""Tables of the calls-and-care feature: calls, outcomes, escalations, contact sheets."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow


class CallStatus(StrEnum):
    """Where a call is; the first three are "active" and hold the device's call lock."""

    SETUP = "setup"  # offer sent, the device has not answered or rung yet
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"  # it took place and was hung up
    FAILED = "failed"  # it never connected: offline, busy, unanswered, error


ACTIVE_STATUSES = (CallStatus.SETUP.value, CallStatus.RINGING.value, CallStatus.CONNECTED.value)


class EndReason(StrEnum):
    """Why a call ended, in one word (the plain message is derived from it)."""

    HANGUP_CALLER = "hangup_caller"
    HANGUP_DEVICE = "hangup_device"
    OFFLINE = "offline"
    BUSY = "busy"
    TIMEOUT = "timeout"  # rang, nobody answered
    NO_RESPONSE = "no_response"  # the device never reacted to the offer
    DROPPED = "dropped"  # a connection went away mid-call
    DECLINED = "declined"
    MEDIA = "media"  # camera, microphone or codec failure on the PC
    ERROR = "error"


class Call(Base):
    """One call attempt from a caregiver's browser to a beneficiary's PC."""

    __tablename__ = "care_calls"
    __table_args__ = (Index("ix_care_calls_beneficiary_started", "beneficiary_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session: Mapped[str] = mapped_column(String(64), unique=True)
    beneficiary_id: Mapped[int] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), index=True, nullable=True
    )
    caller_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.SETUP.value, index=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    end_message: Mapped[str] = mapped_column(Text, default="")
    auto_answered: Mapped[bool | None] = mapped_column(nullable=True)
    # The control-plane instance holding the browser's WebSocket (for operators).
    replica: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    connected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The latest quality figures from each end (RTT, loss, bitrates, resolution, frames).
    stats_browser: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stats_device: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    outcome: Mapped[Outcome | None] = relationship(back_populates="call", uselist=False)


class CallLock(Base):
    """At most one active call per device, across every control-plane replica.

    The row exists while a call is active; a replica that died leaves a row whose heartbeat
    goes stale, and the next call takes it over.
    """

    __tablename__ = "care_call_locks"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    call_id: Mapped[int] = mapped_column(ForeignKey("care_calls.id", ondelete="CASCADE"))
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutcomeKind(StrEnum):
    WELL = "well"  # all well: the next appointment stands
    PROBLEM = "problem"


class Outcome(Base):
    """What the caregiver found, after a call or a missed one."""

    __tablename__ = "care_outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("care_calls.id", ondelete="SET NULL"), unique=True, nullable=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    missed: Mapped[bool] = mapped_column(default=False)  # the call could not take place
    recorded_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    call: Mapped[Call | None] = relationship(back_populates="outcome")
    escalations: Mapped[list[Escalation]] = relationship(back_populates="outcome")


class Target(StrEnum):
    """Who an escalation goes to."""

    SPECIALIST = "specialist"  # the cooperatives' specialist services (may be paid)
    SOCIAL = "social"  # social services
    EMERGENCY = "emergency"
    FAMILY = "family"  # family or other caregivers


class ContactKind(StrEnum):
    """An entry of a beneficiary's contact sheet."""

    FAMILY = "family"
    CAREGIVER = "caregiver"  # another caregiver or a neighbour
    SOCIAL_WORKER = "social_worker"
    SPECIALIST = "specialist"
    EMERGENCY = "emergency"
    DOCTOR = "doctor"


# Which contacts an escalation to each target draws on.
TARGET_CONTACTS: dict[str, tuple[str, ...]] = {
    Target.SPECIALIST.value: (ContactKind.SPECIALIST.value,),
    Target.SOCIAL.value: (ContactKind.SOCIAL_WORKER.value,),
    Target.EMERGENCY.value: (ContactKind.EMERGENCY.value, ContactKind.DOCTOR.value),
    Target.FAMILY.value: (ContactKind.FAMILY.value, ContactKind.CAREGIVER.value),
}


class Contact(Base):
    """One person or service on a beneficiary's contact sheet."""

    __tablename__ = "care_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(200), default="")
    relation: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    webhook_url: Mapped[str] = mapped_column(String(500), default="")
    paid: Mapped[bool] = mapped_column(default=False)  # a service with a cost
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EscalationStatus(StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    CLOSED = "closed"


class Escalation(Base):
    """A problem handed to someone who can act on it, followed until it is closed."""

    __tablename__ = "care_escalations"
    __table_args__ = (Index("ix_care_escalations_status_urgent", "status", "urgent"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="CASCADE"), index=True
    )
    outcome_id: Mapped[int | None] = mapped_column(
        ForeignKey("care_outcomes.id", ondelete="SET NULL"), index=True, nullable=True
    )
    target: Mapped[str] = mapped_column(String(16))
    urgent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=EscalationStatus.OPEN.value)
    summary: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, nullable=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    taken_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    outcome: Mapped[Outcome | None] = relationship(back_populates="escalations")
    events: Mapped[list[EscalationEvent]] = relationship(
        back_populates="escalation", order_by="EscalationEvent.id", cascade="all, delete-orphan"
    )


class EscalationEvent(Base):
    """One line of an escalation's timeline: created, note, taken, notified, closed..."""

    __tablename__ = "care_escalation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(
        ForeignKey("care_escalations.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    text: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    escalation: Mapped[Escalation] = relationship(back_populates="events")
