"""Every table of the control plane, imported in one place for Alembic."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from .db import Base

# Feature packages add their models module here; each has its own migration branch from 0001.
MODEL_MODULES = (
    "control_plane.models",
    "control_plane.vpn.models",
    "control_plane.fleet.models",
    "control_plane.care.models",
    "control_plane.jobs.models",
    "control_plane.schedules.models",
    "control_plane.workshop.models",
    "control_plane.marketplace.models",
)


def metadata() -> MetaData:
    """The metadata of every model module, loaded."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata


# Objects made by raw SQL in migrations that the models don't describe (full-text indexes):
# autogenerate must not propose dropping them.
UNMANAGED_PREFIXES: tuple[str, ...] = (
    "market_search_fts",
    "ix_market_search_docs_tsv",
    "market_search_tsv",  # the stored tsvector column of market_search_docs (PostgreSQL)
)


def is_unmanaged(name: str | None) -> bool:
    """True for database objects deliberately kept outside the models."""
    return bool(name) and any(str(name).startswith(p) for p in UNMANAGED_PREFIXES)
