"""Appointments in the database become published schedules, wake records and alerts.

The pure parts live next door (``expansion`` turns series into windows, ``reconcile``
judges reports and presence); this module loads their inputs, stores their results and
opens or resolves alerts, always inside the caller's transaction. Publishing the desired
twin happens after the commit (``Scheduler.publish``), never inside it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import alerts, audit
from ..models import Alert, Beneficiary, Device
from ..twin import set_section
from .config import ScheduleConfig
from .expansion import (
    Occurrence,
    RecurrenceError,
    Series,
    Skip,
    Window,
    expand,
    occurrences,
    zone,
)
from .models import (
    Appointment,
    DeviceWakeProfile,
    ScheduleException,
    SchedulePublication,
    WakeOutcome,
    WakeRecord,
)
from .reconcile import Finding, presence, reconcile

log = logging.getLogger(__name__)

# The contract's limits (edge.protocol.ScheduleDesired / Wake).
MAX_WAKES = 2000
MAX_IDS_PER_WAKE = 64

# Alert kinds this feature opens; the key is "<kind>:<device id>".
MISSED_WAKE = "missed_wake"
NO_CALL = "no_call"
HELP = "help"
ALARM_REFUSED = "alarm_refused"
ALARM_MISMATCH = "alarm_mismatch"
SCHEDULE_STALE = "schedule_stale"
WAKE_COMMISSION = "wake_commission"
_FINDING_ALERTS: dict[str, tuple[str, str]] = {
    "refused": (ALARM_REFUSED, "high"),
    "mismatch": (ALARM_MISMATCH, "warning"),
    "stale": (SCHEDULE_STALE, "warning"),
}
# Who must act on a person-facing alert: notifiers route by this.
_CARE_AUDIENCE = ["caregiver", "coordinator"]


def alert_key(kind: str, device_id: str) -> str:
    """The key of this feature's alert ``kind`` for ``device_id``."""
    return f"{kind}:{device_id}"


def _epoch(value: dt.datetime) -> float:
    return value.timestamp()


def _at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


# --- what to publish --------------------------------------------------------------------


def series_of(session: Session, beneficiary_id: int) -> tuple[list[Series], list[Skip]]:
    """The beneficiary's appointments and exceptions, as the expansion takes them."""
    appointments = session.execute(
        select(Appointment).where(Appointment.beneficiary_id == beneficiary_id)
    ).scalars()
    series = [
        Series(
            id=str(a.id),
            start=a.start_local,
            duration=dt.timedelta(minutes=a.duration_min),
            rrule=a.rrule,
            until=a.until,
        )
        for a in appointments
    ]
    exceptions = session.execute(
        select(ScheduleException).where(ScheduleException.beneficiary_id == beneficiary_id)
    ).scalars()
    skips = [
        Skip(
            first_day=e.first_day,
            last_day=e.last_day,
            appointment_id=None if e.appointment_id is None else str(e.appointment_id),
        )
        for e in exceptions
    ]
    return series, skips


@dataclass(frozen=True)
class Slot:
    """One occurrence of an appointment, with its appointment and its person."""

    appointment: Appointment
    person: Beneficiary
    occurrence: Occurrence


def slots(
    session: Session, people: Iterable[Beneficiary], start: dt.datetime, end: dt.datetime
) -> list[Slot]:
    """Every occurrence of these people's appointments over ``[start, end)``, by time.

    Raises RecurrenceError (a person's unknown time zone) naming the person's id.
    """
    out: list[Slot] = []
    for person in people:
        rows = {
            str(a.id): a
            for a in session.execute(
                select(Appointment).where(Appointment.beneficiary_id == person.id)
            ).scalars()
        }
        series, skips = series_of(session, person.id)
        try:
            found = occurrences(series, zone(person.timezone), start, end, skips)
        except RecurrenceError as exc:
            raise RecurrenceError(f"beneficiary {person.id}: {exc.field}", exc.reason) from None
        out.extend(Slot(rows[o.appointment_id], person, o) for o in found)
    out.sort(key=lambda s: (s.occurrence.start, s.person.id, s.appointment.id))
    return out


def windows_for(
    session: Session,
    beneficiary: Beneficiary,
    start: dt.datetime,
    end: dt.datetime,
    *,
    gap: dt.timedelta = dt.timedelta(0),
) -> list[Window]:
    """The beneficiary's merged wake windows over ``[start, end)``."""
    series, skips = series_of(session, beneficiary.id)
    return expand(series, zone(beneficiary.timezone), start, end, skips, gap=gap)


def build_schedule(
    *,
    version: int,
    windows: list[Window],
    horizon_end: dt.datetime,
    config: ScheduleConfig,
    policy: str,
) -> dict[str, Any]:
    """The ``twin/desired.schedule`` section (``edge.protocol.ScheduleDesired``)."""
    if len(windows) > MAX_WAKES:
        # The horizon ends where the contract's list does: the next refresh moves it on.
        horizon_end = windows[MAX_WAKES].start
        windows = windows[:MAX_WAKES]
    return {
        "version": version,
        "lead_s": config.lead_s,
        "horizon_end": _epoch(horizon_end),
        "wakes": [
            {
                "start": _epoch(w.start),
                "end": _epoch(w.end),
                "appointment_ids": list(w.appointment_ids[:MAX_IDS_PER_WAKE]),
            }
            for w in windows
        ],
        "policy": policy,
        "idle_s": config.idle_s,
    }


def _same_wakes(old: Mapping[str, Any], new: Mapping[str, Any], now: float) -> bool:
    # Windows dropping off the past end are not a change, nor are new ones appearing beyond
    # the old horizon (that is the horizon moving, which has its own threshold).
    horizon = float(old.get("horizon_end", 0))
    before = [w for w in old.get("wakes", []) if float(w["end"]) > now]
    after = [w for w in new.get("wakes", []) if float(w["start"]) <= horizon]
    return before == after


def publish_device(
    session: Session,
    device: Device,
    beneficiary: Beneficiary | None,
    now: dt.datetime,
    config: ScheduleConfig,
    *,
    force: bool = False,
) -> bool:
    """Recompute ``device``'s schedule; store it (new version) if it changed or the horizon moved.

    Returns True when the desired twin changed and must be published after the commit.
    """
    pub = session.get(SchedulePublication, device.id)
    current = (device.desired or {}).get("schedule")
    horizon_end = now + dt.timedelta(days=config.horizon_days)
    if beneficiary is None:
        if current is None or not current.get("wakes"):
            return False  # nothing to withdraw
        windows: list[Window] = []
    else:
        windows = windows_for(
            session, beneficiary, now, horizon_end, gap=dt.timedelta(seconds=config.lead_s)
        )
    profile = session.get(DeviceWakeProfile, device.id)
    policy = profile.policy if profile is not None and profile.policy else config.policy
    candidate = build_schedule(
        version=device.desired_version + 1,
        windows=windows,
        horizon_end=horizon_end,
        config=config,
        policy=policy,
    )
    if not force and pub is not None and current is not None:
        settings_same = (
            all(current.get(k) == candidate[k] for k in ("lead_s", "policy", "idle_s"))
            and current.get("version") == pub.version
        )
        moved = (horizon_end - pub.horizon_end).total_seconds() >= config.refresh_s
        if settings_same and _same_wakes(current, candidate, now.timestamp()) and not moved:
            return False
    set_section(session, device, "schedule", candidate)
    if pub is None:
        pub = SchedulePublication(device_id=device.id)
        session.add(pub)
    pub.beneficiary_id = beneficiary.id if beneficiary is not None else None
    pub.version = candidate["version"]
    pub.horizon_end = _at(candidate["horizon_end"])
    pub.published_at = now
    pub.wake_count = len(candidate["wakes"])
    session.flush()
    return True


def _device_of(session: Session, beneficiary: Beneficiary) -> Device | None:
    if beneficiary.device_id is None:
        return None
    # Two replicas refreshing the same device would both bump its version: serialize them
    # (PostgreSQL; SQLite has one writer anyway).
    device = session.get(Device, beneficiary.device_id, with_for_update=True)
    if device is None or device.revoked_at is not None:
        return None
    return device


def refresh_beneficiary(
    session: Session,
    beneficiary_id: int,
    now: dt.datetime,
    config: ScheduleConfig,
    *,
    force: bool = True,
) -> list[str]:
    """Republish the schedule of the beneficiary's device after a change; the device ids."""
    beneficiary = session.get(Beneficiary, beneficiary_id)
    if beneficiary is None:
        return []
    device = _device_of(session, beneficiary)
    if device is None:
        return []
    return (
        [device.id]
        if publish_device(session, device, beneficiary, now, config, force=force)
        else []
    )


def sync_all(session: Session, now: dt.datetime, config: ScheduleConfig) -> list[str]:
    """Bring every device's schedule up to date (changes, horizon); the device ids changed."""
    changed: list[str] = []
    assigned: set[str] = set()
    for beneficiary in session.execute(
        select(Beneficiary).where(Beneficiary.device_id.is_not(None)).order_by(Beneficiary.id)
    ).scalars():
        device = _device_of(session, beneficiary)
        if device is None:
            continue
        assigned.add(device.id)
        try:
            with session.begin_nested():
                if publish_device(session, device, beneficiary, now, config):
                    changed.append(device.id)
        except RecurrenceError as exc:
            # One person's broken data (an unknown time zone) must not stop everyone else's.
            log.warning("schedule of beneficiary %s not published: %s", beneficiary.id, exc)
    # A device taken from its beneficiary stops waking for them.
    for pub in session.execute(select(SchedulePublication)).scalars().all():
        if pub.device_id in assigned:
            continue
        device = session.get(Device, pub.device_id)
        if device is not None and device.revoked_at is None:
            if publish_device(session, device, None, now, config):
                changed.append(device.id)
    return changed


# --- wakes: was the device up on time? ---------------------------------------------------


def _beneficiary_id(session: Session, device_id: str) -> int | None:
    return session.execute(
        select(Beneficiary.id).where(Beneficiary.device_id == device_id)
    ).scalar_one_or_none()


def _beneficiary_name(session: Session, beneficiary_id: int | None) -> str:
    if beneficiary_id is None:
        return ""
    person = session.get(Beneficiary, beneficiary_id)
    return person.name if person is not None else ""


def _ensure_records(
    session: Session,
    device: Device,
    schedule: Mapping[str, Any],
    beneficiary_id: int | None,
    now: dt.datetime,
    config: ScheduleConfig,
) -> None:
    lead = int(schedule.get("lead_s", 0))
    planned: set[dt.datetime] = set()
    for wake in schedule.get("wakes", []):
        start, end = _at(float(wake["start"])), _at(float(wake["end"]))
        # A record is made just before the device is expected, so that it can be found
        # when the device comes online for it.
        if start - dt.timedelta(seconds=lead + config.early_s) > now:
            continue
        if end < now - dt.timedelta(seconds=config.lookback_s):
            continue
        planned.add(start)
        exists = session.execute(
            select(WakeRecord.id).where(
                WakeRecord.device_id == device.id, WakeRecord.start_at == start
            )
        ).first()
        if exists is not None:
            continue
        try:
            with session.begin_nested():
                session.add(
                    WakeRecord(
                        device_id=device.id,
                        beneficiary_id=beneficiary_id,
                        start_at=start,
                        end_at=end,
                        lead_s=lead,
                        appointment_ids=list(wake.get("appointment_ids", [])),
                    )
                )
        except IntegrityError:
            pass  # another replica made it first
    # A window withdrawn (appointment cancelled) before it was judged is not a missed wake.
    for record in session.execute(
        select(WakeRecord).where(
            WakeRecord.device_id == device.id,
            WakeRecord.outcome == WakeOutcome.PENDING.value,
        )
    ).scalars():
        if record.start_at not in planned and record.end_at > now:
            session.delete(record)
    session.flush()


def _judge_pending(
    session: Session, device: Device, now: dt.datetime, config: ScheduleConfig
) -> None:
    rows = session.execute(
        select(WakeRecord)
        .where(WakeRecord.device_id == device.id, WakeRecord.outcome == WakeOutcome.PENDING.value)
        .order_by(WakeRecord.start_at)
    ).scalars()
    for record in rows:
        verdict = presence(
            now=now.timestamp(),
            start=_epoch(record.start_at),
            end=_epoch(record.end_at),
            lead_s=record.lead_s,
            grace_s=config.grace_s,
            early_s=config.early_s,
            online=device.online,
            last_seen=None if device.last_seen is None else _epoch(device.last_seen),
            online_at=None if record.online_at is None else _epoch(record.online_at),
        )
        if verdict == "woke":
            record.outcome = WakeOutcome.WOKE.value
            record.online_at = record.online_at or (now if device.online else device.last_seen)
        elif verdict == "missed":
            record.outcome = WakeOutcome.MISSED.value
            _raise_missed(session, device, record)


def _raise_missed(session: Session, device: Device, record: WakeRecord) -> None:
    name = _beneficiary_name(session, record.beneficiary_id) or device.id
    window = {
        "start": record.start_at.isoformat(),
        "end": record.end_at.isoformat(),
        "appointment_ids": record.appointment_ids,
    }
    alert, opened = alerts.raise_alert(
        session,
        key=alert_key(MISSED_WAKE, device.id),
        kind=MISSED_WAKE,
        severity="high",
        message=(
            f"{name}'s PC ({device.id}) did not come on for the appointment at "
            f"{record.start_at:%Y-%m-%d %H:%M} UTC: they may need a phone call or a visit"
        ),
        device_id=device.id,
        beneficiary_id=record.beneficiary_id,
        data={"audience": _CARE_AUDIENCE, "window": window, "missed": 1},
    )
    if not opened:
        # Still off: one alert per device, counting the windows it has missed since.
        data = dict(alert.data or {})
        data["missed"] = int(data.get("missed", 1)) + 1
        data["last_window"] = window
        alert.data = data


def _check_calls(
    session: Session, device: Device, now: dt.datetime, config: ScheduleConfig
) -> None:
    grace = dt.timedelta(seconds=config.grace_s)
    rows = session.execute(
        select(WakeRecord).where(
            WakeRecord.device_id == device.id,
            WakeRecord.outcome.in_([WakeOutcome.WOKE.value, WakeOutcome.LATE.value]),
            WakeRecord.call_checked.is_(False),
            WakeRecord.end_at <= now - grace,
        )
    ).scalars()
    for record in rows:
        record.call_checked = True
        record.no_call = record.called_at is None
        if record.no_call and config.no_call_alerts:
            name = _beneficiary_name(session, record.beneficiary_id) or device.id
            alerts.raise_alert(
                session,
                key=alert_key(NO_CALL, device.id),
                kind=NO_CALL,
                severity="warning",
                message=(
                    f"{name}'s PC ({device.id}) was on for the appointment at "
                    f"{record.start_at:%Y-%m-%d %H:%M} UTC but no call was recorded"
                ),
                device_id=device.id,
                beneficiary_id=record.beneficiary_id,
                data={
                    "audience": _CARE_AUDIENCE,
                    "window": {
                        "start": record.start_at.isoformat(),
                        "end": record.end_at.isoformat(),
                    },
                },
            )


def record_call(
    session: Session, device_id: str, at: dt.datetime, *, early_s: int = 600
) -> WakeRecord | None:
    """A call reached ``device_id`` at ``at``: the hook the calls feature (or an event) uses.

    Marks the wake window it fell in as called and resolves a "no call" alert; returns the
    window's record, or None when the call was outside every recorded window.
    """
    rows = session.execute(
        select(WakeRecord)
        .where(WakeRecord.device_id == device_id, WakeRecord.start_at <= at + dt.timedelta(hours=1))
        .order_by(WakeRecord.start_at.desc())
        .limit(5)
    ).scalars()
    for record in rows:
        opens = record.start_at - dt.timedelta(seconds=record.lead_s + early_s)
        if opens <= at <= record.end_at + dt.timedelta(minutes=30):
            if record.called_at is None:
                record.called_at = at
            record.no_call = False
            alerts.resolve(session, alert_key(NO_CALL, device_id))
            return record
    return None


def reconcile_device(
    session: Session,
    device: Device,
    pub: SchedulePublication,
    schedule: Mapping[str, Any],
    now: dt.datetime,
    config: ScheduleConfig,
) -> list[Finding]:
    findings = reconcile(
        now=now.timestamp(),
        published_version=int(schedule.get("version", pub.version)),
        published_at=_epoch(pub.published_at),
        schedule=schedule,
        reported=device.reported,
        online=device.online,
        online_since=None if device.status_at is None else _epoch(device.status_at),
        stale_after_s=config.stale_after_s,
        min_ahead_s=config.min_ahead_s,
    )
    by_kind: dict[str, Finding] = {f.kind: f for f in findings}
    for finding_kind, (kind, severity) in _FINDING_ALERTS.items():
        key = alert_key(kind, device.id)
        finding = by_kind.get(finding_kind)
        if finding is None:
            alerts.resolve(session, key)
            continue
        alerts.raise_alert(
            session,
            key=key,
            kind=kind,
            severity=severity,
            message=f"{device.id}: {finding.message}",
            device_id=device.id,
            beneficiary_id=pub.beneficiary_id,
            data=finding.data,
        )
    return findings


def watch_device(
    session: Session, device: Device, now: dt.datetime, config: ScheduleConfig
) -> None:
    """Wake records, missed wakes, calls and reconciliation for one device."""
    pub = session.get(SchedulePublication, device.id)
    schedule = (device.desired or {}).get("schedule")
    if pub is None or not schedule or device.revoked_at is not None:
        return
    beneficiary_id = pub.beneficiary_id
    _ensure_records(session, device, schedule, beneficiary_id, now, config)
    _judge_pending(session, device, now, config)
    if device.online:
        alerts.resolve(session, alert_key(MISSED_WAKE, device.id))
    _check_calls(session, device, now, config)
    reconcile_device(session, device, pub, schedule, now, config)


def watch(session: Session, now: dt.datetime, config: ScheduleConfig) -> None:
    """Run ``watch_device`` for every device with a published schedule."""
    ids = session.execute(select(SchedulePublication.device_id)).scalars().all()
    for device_id in ids:
        device = session.get(Device, device_id)
        if device is not None:
            watch_device(session, device, now, config)


# --- what devices tell us ---------------------------------------------------------------


def device_came_online(
    session: Session, device: Device, now: dt.datetime, config: ScheduleConfig
) -> None:
    """The device is online: its windows under way count as woken, its missed alert clears."""
    rows = session.execute(
        select(WakeRecord).where(
            WakeRecord.device_id == device.id,
            WakeRecord.outcome.in_([WakeOutcome.PENDING.value, WakeOutcome.MISSED.value]),
            WakeRecord.end_at >= now,
        )
    ).scalars()
    for record in rows:
        opens = record.start_at - dt.timedelta(seconds=record.lead_s + config.early_s)
        if now < opens:
            continue
        record.online_at = record.online_at or now
        record.outcome = (
            WakeOutcome.LATE.value
            if record.outcome == WakeOutcome.MISSED.value
            else WakeOutcome.WOKE.value
        )
    resolved = alerts.resolve(session, alert_key(MISSED_WAKE, device.id))
    if resolved is not None:
        log.info("device %s is back online: missed-wake alert resolved", device.id)


def help_requested(
    session: Session, device: Device, at: dt.datetime, data: Mapping[str, Any] | None = None
) -> Alert:
    """The help button was pressed: an urgent alert for the caregivers and the coordinator."""
    beneficiary_id = _beneficiary_id(session, device.id)
    name = _beneficiary_name(session, beneficiary_id) or f"the person at {device.id}"
    alert, opened = alerts.raise_alert(
        session,
        key=alert_key(HELP, device.id),
        kind=HELP,
        severity="urgent",
        message=f"{name} pressed the help button ({at:%Y-%m-%d %H:%M} UTC)",
        device_id=device.id,
        beneficiary_id=beneficiary_id,
        data={"audience": _CARE_AUDIENCE, "pressed_at": at.isoformat(), **dict(data or {})},
    )
    if not opened:
        info = dict(alert.data or {})
        info["presses"] = int(info.get("presses", 1)) + 1
        info["last_pressed_at"] = at.isoformat()
        alert.data = info
    return alert


COMMISSION_CHECK = "wake_from_off"
_COMMISSION_FIELDS = ("ok", "mode", "alarm_at", "boot_time", "boot_reason", "detail")


def record_commission(
    session: Session, device: Device, data: Mapping[str, Any], at: dt.datetime
) -> DeviceWakeProfile:
    """Store a commissioning result: does the alarm bring this board back from power-off?"""
    ok = data.get("ok") is True
    mode = str(data.get("mode", "poweroff"))
    profile = session.get(DeviceWakeProfile, device.id)
    if profile is None:
        profile = DeviceWakeProfile(device_id=device.id, commission_detail={})
        session.add(profile)
    if mode == "poweroff":
        profile.wakes_from_off = ok
    profile.commission_result = "ok" if ok else "failed"
    profile.commissioned_at = at
    profile.commission_detail = {k: data[k] for k in _COMMISSION_FIELDS if k in data}
    key = alert_key(WAKE_COMMISSION, device.id)
    if ok:
        alerts.resolve(session, key)
    else:
        alerts.raise_alert(
            session,
            key=key,
            kind=WAKE_COMMISSION,
            severity="warning",
            message=(
                f"{device.id}: the RTC alarm did not bring the board back from {mode} on time; "
                "enable wake on RTC alarm in the BIOS, or set its wake policy to suspend"
            ),
            device_id=device.id,
            data=dict(profile.commission_detail),
        )
    audit.record(
        session,
        action="wake.commissioned",
        object_type="device",
        object_id=device.id,
        actor=f"device:{device.id}",
        data=dict(profile.commission_detail),
    )
    session.flush()
    return profile


# --- the feature's running half ---------------------------------------------------------


Publish = Callable[[Iterable[str]], int]


class Scheduler:
    """The feature's state in one app: its config and how to publish desired twins."""

    def __init__(self, config: ScheduleConfig) -> None:
        self.config = config
        self._publish: Publish = lambda ids: 0

    def bind(self, publish: Publish) -> None:
        """Publish desired twins with ``publish`` (the app's ``TwinPublisher.publish_sync``)."""
        self._publish = publish

    def publish(self, device_ids: Iterable[str]) -> int:
        """Publish the desired twins of ``device_ids`` (after the commit)."""
        ids = sorted(set(device_ids))
        return self._publish(ids) if ids else 0
