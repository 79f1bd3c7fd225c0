"""Tables of the jobs feature: jobs, their executions and history, saved device queries,
and what devices upload for a job (diagnostics reports, log bundles)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_BIGID = BigInteger().with_variant(Integer, "sqlite")


class Job(Base):
    """A remote operation rolled out to a set of devices."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    operation: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The targets as asked for (devices, groups, filter, saved query): kept for the record;
    # the resolved devices are the executions.
    targets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rollout: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    abort: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    timeout_s: Mapped[int] = mapped_column(Integer, default=600)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    maintenance_window: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="IN_PROGRESS", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobExecution(Base):
    """One job on one device. ``execution_id`` is what the device sees; a retry gets a new
    one, because the device handles each execution id exactly once."""

    __tablename__ = "job_executions"
    __table_args__ = (
        UniqueConstraint("job_id", "device_id"),
        Index("ix_job_executions_device_status", "device_id", "status"),
        Index("ix_job_executions_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="QUEUED")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped on every change the control plane makes; sent to the device in jobs/notify.
    version: Mapped[int] = mapped_column(Integer, default=1)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    progress: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Released = notified to the device; the rollout rate counts these.
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobExecutionEvent(Base):
    """Every state change of an execution, and every refused report, in order."""

    __tablename__ = "job_execution_events"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    execution_pk: Mapped[int] = mapped_column(
        ForeignKey("job_executions.id", ondelete="CASCADE"), index=True
    )
    execution_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source: Mapped[str] = mapped_column(String(16))  # "device", "control-plane", "user:<id>"
    status: Mapped[str] = mapped_column(String(16))
    accepted: Mapped[bool] = mapped_column(default=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    progress: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")


class DeviceQuery(Base):
    """A saved device filter, usable as a job target by name."""

    __tablename__ = "device_queries"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DiagnosticsReport(Base):
    """A hardware diagnostics report a device uploaded (the workshop reads these)."""

    __tablename__ = "diagnostics_reports"
    __table_args__ = (Index("ix_diagnostics_device_received", "device_id", "received_at"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    execution_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    generated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class LogBundle(Base):
    """Logs a device collected and uploaded (gzip-compressed text, size-capped)."""

    __tablename__ = "device_log_bundles"
    __table_args__ = (Index("ix_log_bundles_device_received", "device_id", "received_at"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    execution_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    size: Mapped[int] = mapped_column(BigInteger)  # compressed bytes stored
    content: Mapped[bytes] = mapped_column(LargeBinary)
