"""jobs: jobs, executions and their history, saved device queries, uploads

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.db

revision = '0003'
down_revision = '0001'
branch_labels = ('jobs',)
depends_on = None


def upgrade() -> None:
    op.create_table('device_log_bundles',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('execution_id', sa.String(length=64), nullable=True),
    sa.Column('received_at', control_plane.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_log_bundles_device_received', 'device_log_bundles', ['device_id', 'received_at'], unique=False)

    op.create_table('device_queries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('filter', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', control_plane.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('diagnostics_reports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('execution_id', sa.String(length=64), nullable=True),
    sa.Column('received_at', control_plane.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('generated_at', control_plane.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_diagnostics_device_received', 'diagnostics_reports', ['device_id', 'received_at'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('rollout', sa.JSON(), nullable=True),
    sa.Column('abort', sa.JSON(), nullable=False),
    sa.Column('timeout_s', sa.Integer(), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('maintenance_window', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', control_plane.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', control_plane.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_jobs_status'), 'jobs', ['status'], unique=False)

    op.create_table('job_executions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('queued_at', control_plane.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_at', control_plane.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', control_plane.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', control_plane.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', control_plane.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('execution_id'),
    sa.UniqueConstraint('job_id', 'device_id')
    )
    op.create_index('ix_job_executions_device_status', 'job_executions', ['device_id', 'status'], unique=False)
    op.create_index('ix_job_executions_job_status', 'job_executions', ['job_id', 'status'], unique=False)

    op.create_table('job_execution_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('execution_id', sa.String(length=64), nullable=False),
    sa.Column('at', control_plane.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('progress', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['execution_pk'], ['job_executions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_job_execution_events_execution_pk'), 'job_execution_events', ['execution_pk'], unique=False)


def downgrade() -> None:
    for table in (
        "job_execution_events",
        "job_executions",
        "jobs",
        "diagnostics_reports",
        "device_queries",
        "device_log_bundles",
    ):
        op.drop_table(table)
