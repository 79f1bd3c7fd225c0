"""Fresh PostgreSQL databases on the server at 127.0.0.1:5432, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_DSN = os.environ.get(
    "DIFRONTE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database; yield its SQLAlchemy URL; drop it."""
    name = f"difronte_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is needed at {PG_DSN!r} ({exc}); start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'"
        ) from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    url = (
        f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host')}:"
        f"{params.get('port', 5432)}/{name}"
    )
    try:
        yield url
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
