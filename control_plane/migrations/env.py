"""Alembic environment: runs the migrations against the configured URL."""

from __future__ import annotations

from alembic import context

from control_plane import schema
from control_plane.db import make_engine

target_metadata = schema.metadata()


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave raw-SQL objects (full-text indexes) out of autogenerate's comparison."""
    return not (reflected and compare_to is None and schema.is_unmanaged(name))


def run_migrations_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live connection."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
