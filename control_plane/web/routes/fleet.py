"""The fleet pages: every device at a glance, and one device in detail."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ...api.deps import SessionDep
from ...models import Device, Role
from ..i18n import N_
from ..nav import register_nav
from ..pages import Page, PageError, console_router, page_for_roles

router = console_router(prefix="/fleet")

register_nav(
    "/fleet",
    N_("Devices"),
    [Role.FLEET_MANAGER, Role.TECHNICIAN],
    description_msgid=N_("Every PC in people's homes: which ones are on, which need attention."),
    order=50,
)

# Why the PC switched itself on, as the device reports it (edge.protocol boot reasons).
BOOT_REASONS = {
    "rtc": N_("its alarm clock, on schedule"),
    "button": N_("the help button"),
    "power": N_("the power button"),
    "unknown": N_("unknown"),
}

_MAX_PAGE = 100_000

FleetPage = Annotated[Page, Depends(page_for_roles(Role.FLEET_MANAGER, Role.TECHNICIAN))]


@dataclass(frozen=True)
class DeviceRow:
    """One line of the fleet list, read out of the database row."""

    id: str
    name: str
    group: str
    online: bool
    revoked: bool
    last_seen: dt.datetime | None
    problems: int

    @classmethod
    def of(cls, d: Device) -> DeviceRow:
        """The row for device ``d``."""
        return cls(
            d.id, d.name, d.group, d.online, d.revoked_at is not None, d.last_seen, d.rejected_count
        )


@dataclass(frozen=True)
class FleetFilter:
    """What the fleet list shows: a group, an online state, a page number."""

    group: str | None = None
    online: bool | None = None
    page: int = 1

    def query_string(self, **changes: Any) -> str:
        """The GET parameters for this filter (with ``changes``), empty ones left out."""
        values = {"group": self.group, "online": self.online, "page": self.page, **changes}
        params: dict[str, str] = {}
        if values["group"]:
            params["group"] = str(values["group"])
        if values["online"] is not None:
            params["online"] = "true" if values["online"] else "false"
        if values["page"] and int(values["page"]) > 1:
            params["page"] = str(values["page"])
        return urlencode(params)


def parse_filter(
    page: Page, group: str | None, online: str | None, page_no: str | None
) -> FleetFilter:
    """The filter from GET parameters; a 400 page naming the parameter when one is wrong."""
    state: bool | None = None
    if online:
        if online not in ("true", "false"):
            raise PageError(
                page, 400, N_("Something went wrong"), N_("online: choose all, online or offline.")
            )
        state = online == "true"
    number = 1
    if page_no:
        # Bounded so a silly number cannot overflow the database's OFFSET.
        if not page_no.isdigit() or not 1 <= int(page_no) <= _MAX_PAGE:
            raise PageError(
                page, 400, N_("Something went wrong"), N_("page: must be a whole number from 1.")
            )
        number = int(page_no)
    return FleetFilter(group=group or None, online=state, page=number)


def _filtered(flt: FleetFilter) -> Select[Any]:
    query = select(Device)
    if flt.group is not None:
        query = query.where(Device.group == flt.group)
    if flt.online is not None:
        query = query.where(Device.online.is_(flt.online), Device.revoked_at.is_(None))
    return query


@dataclass(frozen=True)
class FleetView:
    """What the fleet list renders."""

    rows: list[DeviceRow]
    total: int
    online_count: int
    offline_count: int
    pages: int


def load_fleet(db: Session, flt: FleetFilter, *, page_size: int) -> FleetView:
    """The devices matching ``flt`` (one page of them) and the counts for the summary."""
    query = _filtered(flt)
    sub = query.subquery()
    total, online_count = db.execute(
        select(func.count(), func.count().filter(sub.c.online.is_(True))).select_from(sub)
    ).one()
    rows = db.execute(
        query.order_by(Device.group, Device.id).limit(page_size).offset((flt.page - 1) * page_size)
    ).scalars()
    pages = max(1, -(-int(total) // page_size))
    return FleetView(
        rows=[DeviceRow.of(d) for d in rows],
        total=int(total),
        online_count=int(online_count),
        offline_count=int(total) - int(online_count),
        pages=pages,
    )


def group_names(db: Session) -> list[str]:
    """Every group a device belongs to, for the filter."""
    return [
        g for g in db.execute(select(Device.group).distinct().order_by(Device.group)).scalars() if g
    ]


def _fleet_context(page: Page, db: Session, flt: FleetFilter) -> dict[str, Any]:
    view = load_fleet(db, flt, page_size=page.console.page_size)
    query = flt.query_string()
    return {
        "view": view,
        "filter": flt,
        "live_src": "/fleet/_rows" + (f"?{query}" if query else ""),
    }


PageNumber = Annotated[str | None, Query(alias="page")]


@router.get("")
def fleet(
    page: FleetPage,
    db: SessionDep,
    group: str | None = None,
    online: str | None = None,
    page_no: PageNumber = None,
) -> Response:
    """The device list, filtered by group and online state; the rows refresh by themselves."""
    flt = parse_filter(page, group, online, page_no)
    return page.render("fleet/list.html", groups=group_names(db), **_fleet_context(page, db, flt))


@router.get("/_rows")
def fleet_rows(
    page: FleetPage,
    db: SessionDep,
    group: str | None = None,
    online: str | None = None,
    page_no: PageNumber = None,
) -> Response:
    """The live part of the device list (polled by static/live.js)."""
    flt = parse_filter(page, group, online, page_no)
    return page.render_fragment("fleet/_rows.html", **_fleet_context(page, db, flt))


def _device(page: Page, db: Session, device_id: str) -> Device:
    device = db.get(Device, device_id)
    if device is None:
        raise PageError(
            page,
            404,
            N_("Device not found"),
            N_("There is no device called %(device_id)s."),
            device_id=device_id,
        )
    return device


def _device_context(page: Page, device: Device) -> dict[str, Any]:
    fmt = page.fmt
    telemetry = device.last_telemetry or {}
    metrics = telemetry.get("metrics") or {}
    rows = sorted(
        (fmt.metric_label(key), fmt.metric_value(key, float(value)), key)
        for key, value in metrics.items()
        if isinstance(value, int | float)
    )
    errors = sorted((str(k), str(v)) for k, v in (telemetry.get("errors") or {}).items())
    return {
        "device": DeviceRow.of(device),
        "boot_reason": page._(BOOT_REASONS.get(device.boot_reason, N_("unknown"))),
        "detail": device,
        "metrics": rows,
        "collector_errors": errors,
        "reported": _reported_rows(page, device.reported or {}),
        "live_src": f"/fleet/{device.id}/_state",
    }


@router.get("/{device_id}")
def device_page(device_id: str, page: FleetPage, db: SessionDep) -> Response:
    """One device: its state, its latest health readings, what it reports it applied."""
    device = _device(page, db, device_id)
    return page.render("fleet/device.html", **_device_context(page, device))


@router.get("/{device_id}/_state")
def device_state(device_id: str, page: FleetPage, db: SessionDep) -> Response:
    """The live part of the device page."""
    device = _device(page, db, device_id)
    return page.render_fragment("fleet/_device_state.html", **_device_context(page, device))


# Reported-twin fields holding epoch seconds or byte counts, shown as dates and sizes.
_TIME_FIELDS = frozenset({"ts", "armed_alarm", "latest_handshake"})
_SIZE_FIELDS = frozenset({"rx_bytes", "tx_bytes"})


def _reported_rows(page: Page, reported: dict[str, Any]) -> list[tuple[str, str]]:
    fmt = page.fmt
    rows: list[tuple[str, str]] = []
    for key, value in flatten(reported):
        leaf = key.rsplit(".", 1)[-1]
        if value is None or value == []:
            text = "—"
        elif isinstance(value, bool):  # before the numbers: a bool is an int too
            text = page._("yes") if value else page._("no")
        elif leaf in _TIME_FIELDS and isinstance(value, int | float):
            try:
                text = fmt.datetime(dt.datetime.fromtimestamp(value, dt.UTC))
            except (OverflowError, OSError, ValueError):
                text = str(value)  # a nonsense time is shown as sent, not hidden
        elif leaf in _SIZE_FIELDS and isinstance(value, int | float):
            text = fmt.size(value)
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        rows.append((key, text))
    return rows


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A nested JSON object as ``("vpn.state", "up")`` pairs of leaf values, in key order."""
    if isinstance(value, dict):
        if not value:
            return [(prefix, None)] if prefix else []
        pairs: list[tuple[str, Any]] = []
        for key in sorted(value, key=str):
            pairs.extend(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return pairs
    return [(prefix, value)]
