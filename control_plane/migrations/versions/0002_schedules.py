"""schedules: appointments, exceptions, schedule publications, wake records, wake profiles

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.db

revision = "0002"
down_revision = "0001"
branch_labels = ("schedules",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("beneficiary_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("start_local", sa.DateTime(), nullable=False),
        sa.Column("duration_min", sa.Integer(), nullable=False),
        sa.Column("rrule", sa.String(length=500), nullable=True),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["beneficiaries.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["previous_id"], ["appointments.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_appointments_beneficiary_id"), "appointments", ["beneficiary_id"], unique=False
    )
    op.create_table(
        "appointment_caregivers",
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("appointment_id", "user_id"),
    )
    op.create_index(
        op.f("ix_appointment_caregivers_user_id"),
        "appointment_caregivers",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "schedule_exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("beneficiary_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["beneficiaries.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_schedule_exceptions_beneficiary_id"),
        "schedule_exceptions",
        ["beneficiary_id"],
        unique=False,
    )
    op.create_table(
        "schedule_publications",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("beneficiary_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("horizon_end", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("wake_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["beneficiaries.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "wake_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("beneficiary_id", sa.Integer(), nullable=True),
        sa.Column("start_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lead_s", sa.Integer(), nullable=False),
        sa.Column("appointment_ids", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("online_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("called_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("call_checked", sa.Boolean(), nullable=False),
        sa.Column("no_call", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["beneficiaries.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "start_at"),
    )
    op.create_index(
        op.f("ix_wake_records_beneficiary_id"), "wake_records", ["beneficiary_id"], unique=False
    )
    op.create_index(
        "ix_wake_records_outcome", "wake_records", ["outcome", "call_checked"], unique=False
    )
    op.create_table(
        "device_wake_profiles",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=True),
        sa.Column("wakes_from_off", sa.Boolean(), nullable=True),
        sa.Column("commission_result", sa.String(length=16), nullable=True),
        sa.Column("commissioned_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("commission_detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    op.drop_table("device_wake_profiles")
    op.drop_index("ix_wake_records_outcome", table_name="wake_records")
    op.drop_index(op.f("ix_wake_records_beneficiary_id"), table_name="wake_records")
    op.drop_table("wake_records")
    op.drop_table("schedule_publications")
    op.drop_index(op.f("ix_schedule_exceptions_beneficiary_id"), table_name="schedule_exceptions")
    op.drop_table("schedule_exceptions")
    op.drop_index(op.f("ix_appointment_caregivers_user_id"), table_name="appointment_caregivers")
    op.drop_table("appointment_caregivers")
    op.drop_index(op.f("ix_appointments_beneficiary_id"), table_name="appointments")
    op.drop_table("appointments")
