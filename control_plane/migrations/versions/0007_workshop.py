"""workshop: donations, machines and their journey, diagnostics, erasures, work orders

Revision ID: 0007
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.db

revision = "0007"
down_revision = "0001"
branch_labels = ("workshop",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workshop_tag_counters",
        sa.Column("prefix", sa.String(length=4), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "year"),
    )
    op.create_table(
        "workshop_donations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("donor", sa.String(length=200), nullable=False),
        sa.Column("donor_contact", sa.String(length=200), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("consent_erase_reuse", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "workshop_machines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_tag", sa.String(length=24), nullable=False),
        sa.Column("donation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("manufacturer", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("serial_number", sa.String(length=100), nullable=False),
        sa.Column("weight_g", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("state_changed_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.Column("created_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.Column("diagnostics_at", control_plane.db.UTCDateTime(), nullable=True),
        sa.Column("disk_serials", sa.JSON(), nullable=True),
        sa.Column("telecare_blockers", sa.JSON(), nullable=False),
        sa.Column("inventory", sa.JSON(), nullable=True),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("beneficiary_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("device_linked_at", control_plane.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["beneficiaries.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["donation_id"], ["workshop_donations.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("asset_tag"),
        sa.UniqueConstraint("device_id"),
    )
    op.create_index(
        op.f("ix_workshop_machines_beneficiary_id"),
        "workshop_machines",
        ["beneficiary_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_workshop_machines_donation_id"), "workshop_machines", ["donation_id"], unique=False
    )
    op.create_index(
        op.f("ix_workshop_machines_serial_number"),
        "workshop_machines",
        ["serial_number"],
        unique=False,
    )
    op.create_index(
        "ix_workshop_machines_state", "workshop_machines", ["state", "asset_tag"], unique=False
    )
    op.create_table(
        "workshop_diagnostics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("tool_version", sa.String(length=64), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["workshop_machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_workshop_diagnostics_machine_id"),
        "workshop_diagnostics",
        ["machine_id"],
        unique=False,
    )
    op.create_table(
        "workshop_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("disk_serial", sa.String(length=100), nullable=False),
        sa.Column("disk_model", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("verification", sa.String(length=16), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("started_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.Column("passes", sa.Integer(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("tool", sa.String(length=100), nullable=False),
        sa.Column("verification_detail", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("recorded_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["workshop_machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recorded_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_workshop_erasures_machine_id"), "workshop_erasures", ["machine_id"], unique=False
    )
    op.create_table(
        "workshop_transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=True),
        sa.Column("to_state", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("at", control_plane.db.UTCDateTime(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["machine_id"], ["workshop_machines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_workshop_transitions_at"), "workshop_transitions", ["at"], unique=False
    )
    op.create_index(
        op.f("ix_workshop_transitions_machine_id"),
        "workshop_transitions",
        ["machine_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_workshop_transitions_to_state"), "workshop_transitions", ["to_state"], unique=False
    )
    op.create_table(
        "workshop_work_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=False),
        sa.Column("supervisor_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.Column("completed_at", control_plane.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["assignee_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["machine_id"], ["workshop_machines.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["supervisor_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_workshop_work_orders_assignee_id"),
        "workshop_work_orders",
        ["assignee_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_workshop_work_orders_machine_id"),
        "workshop_work_orders",
        ["machine_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_workshop_work_orders_status"), "workshop_work_orders", ["status"], unique=False
    )
    op.create_table(
        "workshop_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("work_order_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("worked_on", sa.Date(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("recorded_at", control_plane.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["recorded_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["work_order_id"], ["workshop_work_orders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_workshop_hours_person_day", "workshop_hours", ["person_id", "worked_on"], unique=False
    )
    op.create_index(
        op.f("ix_workshop_hours_work_order_id"), "workshop_hours", ["work_order_id"], unique=False
    )
    op.create_index(
        op.f("ix_workshop_hours_worked_on"), "workshop_hours", ["worked_on"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_workshop_hours_worked_on"), table_name="workshop_hours")
    op.drop_index(op.f("ix_workshop_hours_work_order_id"), table_name="workshop_hours")
    op.drop_index("ix_workshop_hours_person_day", table_name="workshop_hours")
    op.drop_table("workshop_hours")
    op.drop_index(op.f("ix_workshop_work_orders_status"), table_name="workshop_work_orders")
    op.drop_index(op.f("ix_workshop_work_orders_machine_id"), table_name="workshop_work_orders")
    op.drop_index(op.f("ix_workshop_work_orders_assignee_id"), table_name="workshop_work_orders")
    op.drop_table("workshop_work_orders")
    op.drop_index(op.f("ix_workshop_transitions_to_state"), table_name="workshop_transitions")
    op.drop_index(op.f("ix_workshop_transitions_machine_id"), table_name="workshop_transitions")
    op.drop_index(op.f("ix_workshop_transitions_at"), table_name="workshop_transitions")
    op.drop_table("workshop_transitions")
    op.drop_index(op.f("ix_workshop_erasures_machine_id"), table_name="workshop_erasures")
    op.drop_table("workshop_erasures")
    op.drop_index(op.f("ix_workshop_diagnostics_machine_id"), table_name="workshop_diagnostics")
    op.drop_table("workshop_diagnostics")
    op.drop_index("ix_workshop_machines_state", table_name="workshop_machines")
    op.drop_index(op.f("ix_workshop_machines_serial_number"), table_name="workshop_machines")
    op.drop_index(op.f("ix_workshop_machines_donation_id"), table_name="workshop_machines")
    op.drop_index(op.f("ix_workshop_machines_beneficiary_id"), table_name="workshop_machines")
    op.drop_table("workshop_machines")
    op.drop_table("workshop_donations")
    op.drop_table("workshop_tag_counters")
