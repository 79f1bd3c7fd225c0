"""vpn: one WireGuard peer per enrolled device

Revision ID: 0005
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.db

revision = "0005"
down_revision = "0001"
branch_labels = ("vpn",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vpn_peers",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=44), nullable=False),
        sa.Column("pending_public_key", sa.String(length=44), nullable=True),
        sa.Column("previous_public_key", sa.String(length=44), nullable=True),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("address6", sa.String(length=45), nullable=True),
        sa.Column("enrolled_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_changed_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "rotation_started_at", control_plane.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("hub_handshake_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("hub_endpoint", sa.String(length=64), nullable=True),
        sa.Column("hub_rx_bytes", sa.BigInteger(), nullable=False),
        sa.Column("hub_tx_bytes", sa.BigInteger(), nullable=False),
        sa.Column("hub_seen_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id"),
        sa.UniqueConstraint("address"),
        sa.UniqueConstraint("address6"),
        sa.UniqueConstraint("pending_public_key"),
        sa.UniqueConstraint("public_key"),
    )


def downgrade() -> None:
    op.drop_table("vpn_peers")
