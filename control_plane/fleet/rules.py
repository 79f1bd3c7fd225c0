"""Alert rules for device health: pure evaluation, and the periodic task that applies it.

``evaluate`` says which alerts *should* be open for one device right now; ``apply`` opens the
missing ones and resolves the ones whose condition cleared. An alert therefore opens once,
and resolves itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from .. import alerts
from ..config import Settings
from ..models import Alert, AlertStatus, Device, TelemetryBatchRecord

# The kinds these rules own (others, like missed wakes, belong to their features).
RULE_KINDS = ("offline", "smart", "disk_full", "rtc_drift", "outbox_dropping")


# A batch reporting dropped samples keeps its alert open this long after it arrived.
DROPPED_WINDOW = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Policy:
    """The thresholds of the rules."""

    offline_after_s: float = 900.0
    disk_full_pct: float = 90.0
    rtc_drift_max_s: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy the control plane is configured with."""
        return cls(settings.offline_after_s, settings.disk_full_pct, settings.rtc_drift_max_s)


@dataclass(frozen=True)
class DeviceFacts:
    """What is known about one device when the rules run."""

    device_id: str
    online: bool
    last_seen: dt.datetime | None
    created_at: dt.datetime
    scheduled: bool  # sleeps between appointments: "offline" is then normal
    metrics: Mapping[str, float] = field(default_factory=dict)
    dropped_recently: int = 0


@dataclass(frozen=True)
class Wanted:
    """An alert that should be open."""

    key: str
    kind: str
    severity: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


def evaluate(facts: DeviceFacts, policy: Policy, now: dt.datetime) -> list[Wanted]:
    """The alerts that should be open for this device at ``now``."""
    out: list[Wanted] = []
    d = facts.device_id
    if not facts.online and not facts.scheduled:
        since = facts.last_seen or facts.created_at
        gone = (now - since).total_seconds()
        if gone > policy.offline_after_s:
            out.append(
                Wanted(
                    f"offline:{d}",
                    "offline",
                    "warning",
                    f"{d} spento o scollegato da più di {int(policy.offline_after_s // 60)} minuti",
                    {"since": since.isoformat()},
                )
            )
    m = facts.metrics
    if m.get("smart.ok") == 0 or m.get("smart.failing_disks", 0) > 0:
        out.append(
            Wanted(
                f"smart:{d}",
                "smart",
                "high",
                f"{d}: il disco segnala un guasto (SMART)",
                {"failing_disks": m.get("smart.failing_disks")},
            )
        )
    for name, value in sorted(m.items()):
        if (
            name.startswith("disk.")
            and name.endswith(".used_pct")
            and value >= policy.disk_full_pct
        ):
            label = name[len("disk.") : -len(".used_pct")]
            out.append(
                Wanted(
                    f"disk_full:{d}:{label}",
                    "disk_full",
                    "warning",
                    f"{d}: disco {label} pieno al {value:.0f}%",
                    {"used_pct": value},
                )
            )
    drift = m.get("rtc.drift_s")
    if drift is not None and abs(drift) > policy.rtc_drift_max_s:
        out.append(
            Wanted(
                f"rtc_drift:{d}",
                "rtc_drift",
                "warning",
                f"{d}: l'orologio interno sbaglia di {drift:.0f} s (batteria CMOS scarica?)",
                {"drift_s": drift},
            )
        )
    if facts.dropped_recently > 0:
        out.append(
            Wanted(
                f"outbox_dropping:{d}",
                "outbox_dropping",
                "warning",
                f"{d}: {facts.dropped_recently} campioni persi (coda piena offline)",
                {"dropped": facts.dropped_recently},
            )
        )
    return out


def apply(session: Session, facts: DeviceFacts, wanted: list[Wanted], open_keys: set[str]) -> None:
    """Open what is wanted and not open; resolve this device's rule alerts no longer wanted."""
    keys = {w.key for w in wanted}
    for w in wanted:
        if w.key in open_keys:
            continue
        alerts.raise_alert(
            session,
            key=w.key,
            kind=w.kind,
            severity=w.severity,
            message=w.message,
            device_id=facts.device_id,
            data=w.data,
        )
    for key in sorted(open_keys - keys):
        alerts.resolve(session, key)


def facts_for(device: Device, dropped_recently: int = 0) -> DeviceFacts:
    """What the rules need about one device."""
    metrics = (device.last_telemetry or {}).get("metrics") or {}
    return DeviceFacts(
        device_id=device.id,
        online=device.online,
        last_seen=device.last_seen,
        created_at=device.created_at,
        scheduled=bool((device.desired or {}).get("schedule")),
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        dropped_recently=dropped_recently,
    )


def check_all(session: Session, policy: Policy, now: dt.datetime) -> None:
    """Evaluate and apply the rules for every active device (a few queries, not per device)."""
    dropped = {
        device_id: int(total)
        for device_id, total in session.execute(
            select(TelemetryBatchRecord.device_id, func.sum(TelemetryBatchRecord.dropped))
            .where(
                TelemetryBatchRecord.received_at >= now - DROPPED_WINDOW,
                TelemetryBatchRecord.dropped > 0,
            )
            .group_by(TelemetryBatchRecord.device_id)
        )
    }
    open_keys: dict[str, set[str]] = {}
    for device_id, key in session.execute(
        select(Alert.device_id, Alert.key).where(
            Alert.device_id.is_not(None),
            Alert.kind.in_(RULE_KINDS),
            Alert.status != AlertStatus.RESOLVED.value,
        )
    ):
        if device_id is not None:
            open_keys.setdefault(device_id, set()).add(key)
    devices = session.execute(select(Device).where(Device.revoked_at.is_(None))).scalars()
    for device in devices:
        facts = facts_for(device, dropped.get(device.id, 0))
        apply(session, facts, evaluate(facts, policy, now), open_keys.pop(device.id, set()))
    # What is left belongs to revoked (or deleted) devices: nobody can fix those any more.
    for keys in open_keys.values():
        for key in sorted(keys):
            alerts.resolve(session, key)


def periodic_task(settings: Settings) -> Callable[[sessionmaker[Session], dt.datetime], None]:
    """The task registered with the periodic runner."""
    policy = Policy.from_settings(settings)

    def _run(factory: sessionmaker[Session], now: dt.datetime) -> None:
        with factory() as session, session.begin():
            check_all(session, policy, now)

    return _run
