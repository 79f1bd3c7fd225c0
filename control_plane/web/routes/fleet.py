"""The fleet pages: every device at a glance, and one device in detail.

The list shows each device's state, health (its open alerts, in words) and problems, filtered
by group, state and health; the device page adds its open alerts (to acknowledge), telemetry
charts over a chosen range (SVG drawn here, see ``control_plane.fleet.charts``), its twin
(desired next to reported), its alert history and, for a PC taken out of service, revocation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from ... import alerts as alert_service
from ... import audit
from ...api.deps import SessionDep
from ...devices import revoke_device
from ...fleet.charts import Chart, line_chart
from ...fleet.series import DEFAULT_RANGE, RANGES, load_series
from ...models import Alert, AlertStatus, Device, Role
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

# Open alerts in plain words (the kinds of the fleet's rules and of other features).
ALERT_LABELS = {
    "offline": N_("Off for too long"),
    "missed_wake": N_("Did not wake up"),
    "smart": N_("Disk failing"),
    "disk_full": N_("Disk nearly full"),
    "rtc_drift": N_("Clock battery"),
    "outbox_dropping": N_("Readings lost"),
    "help": N_("Help requested"),
}
OTHER_ALERT = N_("Needs attention")
SEVERITY_LABELS = {
    "info": N_("information"),
    "warning": N_("warning"),
    "high": N_("important"),
    "urgent": N_("urgent"),
}
ALERT_STATES = {
    AlertStatus.OPEN.value: N_("open"),
    AlertStatus.ACKNOWLEDGED.value: N_("someone is on it"),
    AlertStatus.RESOLVED.value: N_("resolved"),
}
RANGE_LABELS = {
    "1h": N_("last hour"),
    "24h": N_("last 24 hours"),
    "7d": N_("last 7 days"),
    "30d": N_("last 30 days"),
}
# The charts of the device page: metric, and the fixed scale of percentages.
CHARTS: list[tuple[str, float | None, float | None]] = [
    ("cpu.percent", 0.0, 100.0),
    ("mem.used_pct", 0.0, 100.0),
    ("disk.root.used_pct", 0.0, 100.0),
    ("temp.max_c", None, None),
    ("rtc.drift_s", None, None),
]

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
    alerts: tuple[str, ...] = ()  # kinds of the open alerts, for the health badges

    @classmethod
    def of(cls, d: Device, alerts: tuple[str, ...] = ()) -> DeviceRow:
        """The row for device ``d``."""
        return cls(
            d.id,
            d.name,
            d.group,
            d.online,
            d.revoked_at is not None,
            d.last_seen,
            d.rejected_count,
            alerts,
        )


@dataclass(frozen=True)
class FleetFilter:
    """What the fleet list shows: a group, an online state, a health state, a page number."""

    group: str | None = None
    online: bool | None = None
    page: int = 1
    health: str | None = None  # "attention" (an open alert) or "fine" (none)

    def query_string(self, **changes: Any) -> str:
        """The GET parameters for this filter (with ``changes``), empty ones left out."""
        values = {
            "group": self.group,
            "online": self.online,
            "health": self.health,
            "page": self.page,
            **changes,
        }
        params: dict[str, str] = {}
        if values["group"]:
            params["group"] = str(values["group"])
        if values["online"] is not None:
            params["online"] = "true" if values["online"] else "false"
        if values["health"]:
            params["health"] = str(values["health"])
        if values["page"] and int(values["page"]) > 1:
            params["page"] = str(values["page"])
        return urlencode(params)


def parse_filter(
    page: Page,
    group: str | None,
    online: str | None,
    page_no: str | None,
    health: str | None = None,
) -> FleetFilter:
    """The filter from GET parameters; a 400 page naming the parameter when one is wrong."""
    if health and health not in ("attention", "fine"):
        raise PageError(
            page,
            400,
            N_("Something went wrong"),
            N_("health: choose all, needs attention or fine."),
        )
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
    return FleetFilter(group=group or None, online=state, page=number, health=health or None)


def _open_alert(device_id: Any) -> Any:
    return exists().where(Alert.device_id == device_id, Alert.status != AlertStatus.RESOLVED.value)


def _filtered(flt: FleetFilter) -> Select[Any]:
    query = select(Device)
    if flt.group is not None:
        query = query.where(Device.group == flt.group)
    if flt.online is not None:
        query = query.where(Device.online.is_(flt.online), Device.revoked_at.is_(None))
    if flt.health == "attention":
        query = query.where(_open_alert(Device.id))
    elif flt.health == "fine":
        query = query.where(~_open_alert(Device.id))
    return query


def open_alert_kinds(db: Session, device_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """The kinds of each device's open (or acknowledged) alerts, sorted, without repeats."""
    kinds: dict[str, set[str]] = {}
    if device_ids:
        rows = db.execute(
            select(Alert.device_id, Alert.kind).where(
                Alert.device_id.in_(device_ids), Alert.status != AlertStatus.RESOLVED.value
            )
        )
        for device_id, kind in rows:
            if device_id is not None:
                kinds.setdefault(device_id, set()).add(kind)
    return {device_id: tuple(sorted(k)) for device_id, k in kinds.items()}


def alert_label(page: Page, kind: str) -> str:
    """An alert kind in plain words."""
    return page._(ALERT_LABELS.get(kind, OTHER_ALERT))


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
    devices = list(
        db.execute(
            query.order_by(Device.group, Device.id)
            .limit(page_size)
            .offset((flt.page - 1) * page_size)
        ).scalars()
    )
    kinds = open_alert_kinds(db, [d.id for d in devices])
    pages = max(1, -(-int(total) // page_size))
    return FleetView(
        rows=[DeviceRow.of(d, kinds.get(d.id, ())) for d in devices],
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
        "alert_label": lambda kind: alert_label(page, kind),
    }


PageNumber = Annotated[str | None, Query(alias="page")]


@router.get("")
def fleet(
    page: FleetPage,
    db: SessionDep,
    group: str | None = None,
    online: str | None = None,
    page_no: PageNumber = None,
    health: str | None = None,
) -> Response:
    """The device list, filtered by group, online state and health; rows refresh by themselves."""
    flt = parse_filter(page, group, online, page_no, health)
    return page.render("fleet/list.html", groups=group_names(db), **_fleet_context(page, db, flt))


@router.get("/_rows")
def fleet_rows(
    page: FleetPage,
    db: SessionDep,
    group: str | None = None,
    online: str | None = None,
    page_no: PageNumber = None,
    health: str | None = None,
) -> Response:
    """The live part of the device list (polled by static/live.js)."""
    flt = parse_filter(page, group, online, page_no, health)
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


@dataclass(frozen=True)
class AlertView:
    """One alert on the device page, in words."""

    id: int
    label: str
    message: str
    severity: str
    status: str
    state: str
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None
    resolved_at: dt.datetime | None


def _alert_views(page: Page, alerts: list[Alert]) -> list[AlertView]:
    return [
        AlertView(
            id=a.id,
            label=alert_label(page, a.kind),
            message=a.message,
            severity=page._(SEVERITY_LABELS.get(a.severity, N_("warning"))),
            status=a.status,
            state=page._(ALERT_STATES.get(a.status, N_("open"))),
            opened_at=a.opened_at,
            acknowledged_at=a.acknowledged_at,
            resolved_at=a.resolved_at,
        )
        for a in alerts
    ]


def _device_context(page: Page, db: Session, device: Device) -> dict[str, Any]:
    fmt = page.fmt
    telemetry = device.last_telemetry or {}
    metrics = telemetry.get("metrics") or {}
    rows = sorted(
        (fmt.metric_label(key), fmt.metric_value(key, float(value)), key)
        for key, value in metrics.items()
        if isinstance(value, int | float)
    )
    errors = sorted((str(k), str(v)) for k, v in (telemetry.get("errors") or {}).items())
    open_alerts = db.execute(
        select(Alert)
        .where(Alert.device_id == device.id, Alert.status != AlertStatus.RESOLVED.value)
        .order_by(Alert.id.desc())
    ).scalars()
    views = _alert_views(page, list(open_alerts))
    return {
        "device": DeviceRow.of(device, tuple(sorted({a.label for a in views}))),
        "boot_reason": page._(BOOT_REASONS.get(device.boot_reason, N_("unknown"))),
        "detail": device,
        "metrics": rows,
        "collector_errors": errors,
        "reported": _reported_rows(page, device.reported or {}),
        "open_alerts": views,
        "live_src": f"/fleet/{device.id}/_state",
    }


@dataclass(frozen=True)
class ChartView:
    """One chart of the device page with its words."""

    key: str
    title: str
    chart: Chart | None
    latest: str
    low: str
    high: str
    times: list[str]  # the labels of chart.x_ticks


def time_label(page: Page, when: dt.datetime, range_name: str) -> str:
    """A chart's time label: the hour within a day, the date over longer ranges."""
    local = when.astimezone(page.console.tz)
    if RANGES[range_name] <= dt.timedelta(days=1):
        return local.strftime("%H:%M")
    return local.strftime("%d/%m" if page.lang == "it" else "%m-%d")


def _charts(page: Page, db: Session, device: Device, range_name: str) -> list[ChartView]:
    until = page.now
    since = until - RANGES[range_name]
    series = load_series(db, device.id, [key for key, _, _ in CHARTS], since, until)
    fmt = page.fmt
    views = []
    for key, floor, ceiling in CHARTS:
        chart = line_chart(series[key], since, until, floor=floor, ceiling=ceiling)
        views.append(
            ChartView(
                key=key,
                title=fmt.metric_label(key),
                chart=chart,
                latest=fmt.metric_value(key, chart.latest.value) if chart else "",
                low=fmt.metric_value(key, chart.low) if chart else "",
                high=fmt.metric_value(key, chart.high) if chart else "",
                times=[time_label(page, t.when, range_name) for t in chart.x_ticks]
                if chart
                else [],
            )
        )
    return views


def _twin(page: Page, device: Device) -> dict[str, Any]:
    reported = device.reported or {}
    applied = reported.get("desired_version")
    return {
        "desired_version": device.desired_version,
        "applied_version": applied,
        "in_sync": device.desired_version == 0 or applied == device.desired_version,
        "desired": _desired_rows(page, device.desired or {}),
    }


def _desired_rows(page: Page, desired: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for section in sorted(desired):
        value = desired[section]
        if section == "schedule" and isinstance(value, dict):
            # Two weeks of wake windows: their number and the first, not every one.
            wakes = [w for w in value.get("wakes") or [] if isinstance(w, dict)]
            rows.append(
                ("schedule.wakes", page.ngettext("%(num)d wake", "%(num)d wakes", len(wakes)))
            )
            starts = [w["start"] for w in wakes if isinstance(w.get("start"), int | float)]
            if starts:
                first = dt.datetime.fromtimestamp(min(starts), dt.UTC)
                rows.append(("schedule.first_wake", page.fmt.datetime(first)))
            value = {k: v for k, v in value.items() if k != "wakes"}
        for key, text in _reported_rows(page, {section: value}):
            rows.append((key, text))
    return rows


def _range(page: Page, value: str | None) -> str:
    if value is None:
        return DEFAULT_RANGE
    if value not in RANGES:
        raise PageError(
            page,
            400,
            N_("Something went wrong"),
            N_("range: choose the last hour, 24 hours, 7 days or 30 days."),
        )
    return value


@router.get("/{device_id}")
def device_page(
    device_id: str,
    page: FleetPage,
    db: SessionDep,
    range_: Annotated[str | None, Query(alias="range")] = None,
) -> Response:
    """One device: state, open alerts, charts over a range, twin, alert history."""
    device = _device(page, db, device_id)
    range_name = _range(page, range_)
    history = db.execute(
        select(Alert).where(Alert.device_id == device.id).order_by(Alert.id.desc()).limit(20)
    ).scalars()
    return page.render(
        "fleet/device.html",
        charts=_charts(page, db, device, range_name),
        range_name=range_name,
        ranges=[(name, page._(RANGE_LABELS[name])) for name in RANGES],
        twin=_twin(page, device),
        history=_alert_views(page, list(history)),
        **_device_context(page, db, device),
    )


@router.get("/{device_id}/_state")
def device_state(device_id: str, page: FleetPage, db: SessionDep) -> Response:
    """The live part of the device page."""
    device = _device(page, db, device_id)
    return page.render_fragment("fleet/_device_state.html", **_device_context(page, db, device))


@router.post("/{device_id}/alerts/{alert_id}/ack")
def acknowledge_alert(device_id: str, alert_id: int, page: FleetPage, db: SessionDep) -> Response:
    """Someone is on it: the alert stays until its condition clears."""
    alert = db.get(Alert, alert_id)
    if alert is None or alert.device_id != device_id:
        raise PageError(page, 404, N_("Alert not found"), N_("This alert does not exist."))
    assert page.user is not None
    if alert.status == AlertStatus.OPEN.value:
        alert_service.acknowledge(db, alert, page.user)
        audit.record(
            db,
            action="alert.acknowledged",
            object_type="alert",
            object_id=alert_id,
            actor=page.user,
        )
        page.flash(page._("Noted: you are on it. The alert closes by itself once it clears."))
    return page.redirect(f"/fleet/{device_id}")


@router.get("/{device_id}/revoke")
def revoke_form(device_id: str, page: FleetPage, db: SessionDep) -> Response:
    """Ask before taking a PC out of service."""
    device = _device(page, db, device_id)
    return page.render("fleet/revoke.html", device=DeviceRow.of(device), error=None)


@router.post("/{device_id}/revoke")
async def revoke(device_id: str, page: FleetPage, db: SessionDep, request: Request) -> Response:
    """Take the PC's broker credentials away: it is disconnected within seconds."""
    form = await request.form()
    return await run_in_threadpool(
        _revoke_sync, page, db, request, device_id, form.get("confirm") == "yes"
    )


def _revoke_sync(
    page: Page, db: Session, request: Request, device_id: str, confirmed: bool
) -> Response:
    device = _device(page, db, device_id)
    if not confirmed:
        return page.render(
            "fleet/revoke.html",
            status_code=422,
            device=DeviceRow.of(device),
            error=page._("Tick the box to confirm."),
        )
    if device.revoked_at is None:
        revoke_device(db, request.app.state.settings, device)
        device.online = False  # it is being thrown out; its goodbye would be refused
        audit.record(
            db, action="device.revoked", object_type="device", object_id=device_id, actor=page.user
        )
    page.flash(
        page._("%(device_id)s is out of service: it can no longer connect.", device_id=device_id)
    )
    return page.redirect(f"/fleet/{device_id}")


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
