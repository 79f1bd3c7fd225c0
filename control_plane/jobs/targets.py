"""Turning a job's targets (ids, groups, a filter, a saved query) into device ids."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ..models import Device
from .documents import MAX_TARGETS, DeviceFilter, JobSpecError, Targets
from .models import DeviceQuery


def _filtered(query: Select[Any], flt: DeviceFilter) -> Select[Any]:
    if flt.groups is not None:
        query = query.where(Device.group.in_(flt.groups))
    if flt.agent_version is not None:
        query = query.where(Device.agent_version == flt.agent_version)
    if flt.agent_version_not is not None:
        query = query.where(Device.agent_version != flt.agent_version_not)
    if flt.online is not None:
        query = query.where(Device.online.is_(flt.online))
    if flt.id_prefix:
        # A prefix match without LIKE wildcards in the user's text: compare the head.
        query = query.where(Device.id.startswith(flt.id_prefix, autoescape=True))
    return query


def saved_filter(session: Session, name: str) -> DeviceFilter:
    """The filter of the saved query ``name``."""
    row = session.execute(select(DeviceQuery).where(DeviceQuery.name == name)).scalar_one_or_none()
    if row is None:
        raise JobSpecError(f"targets.query: no saved query named {name!r}")
    try:
        return DeviceFilter.model_validate(row.filter)
    except ValidationError as exc:  # stored before a schema change: say so, don't guess
        raise JobSpecError(
            f"targets.query: saved query {name!r} is no longer valid: {exc}"
        ) from None


def validate_filter(data: dict[str, Any]) -> DeviceFilter:
    """A device filter from stored or received JSON."""
    try:
        return DeviceFilter.model_validate(data)
    except ValidationError as exc:
        raise JobSpecError(f"filter: {exc}") from None


def resolve_targets(session: Session, targets: Targets) -> list[str]:
    """The ids of every active device the targets name, sorted; unknown ids are an error."""
    active = select(Device.id).where(Device.revoked_at.is_(None))
    found: set[str] = set()
    if targets.devices:
        wanted = set(targets.devices)
        known = set(session.execute(active.where(Device.id.in_(wanted))).scalars())
        missing = sorted(wanted - known)
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise JobSpecError(f"targets.devices: unknown or revoked devices: {shown}")
        found |= known
    if targets.groups:
        found |= set(session.execute(active.where(Device.group.in_(targets.groups))).scalars())
    if targets.filter is not None:
        found |= set(session.execute(_filtered(active, targets.filter)).scalars())
    if targets.query is not None:
        flt = saved_filter(session, targets.query)
        found |= set(session.execute(_filtered(active, flt)).scalars())
    if not found:
        raise JobSpecError("targets: no device matches")
    if len(found) > MAX_TARGETS:
        raise JobSpecError(f"targets: {len(found)} devices, more than {MAX_TARGETS} per job")
    return sorted(found)
