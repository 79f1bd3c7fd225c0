"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command

from control_plane.db import alembic_config, migrate


def test_migrations_match_models(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)  # idempotent
    command.check(alembic_config(db_url))  # raises when autogenerate would find a difference
