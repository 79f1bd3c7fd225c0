"""Every table of the control plane, imported in one place for Alembic."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from .db import Base

# Feature packages add their models module here; each has its own migration branch from 0001.
MODEL_MODULES = (
    "control_plane.models",
    "control_plane.fleet.models",
)


def metadata() -> MetaData:
    """The metadata of every model module, loaded."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
