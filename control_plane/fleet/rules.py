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


@dataclass(frozen=True)
class Policy:
    offline_after_s: float = 900.0
    disk_full_pct: float = 90.0
    rtc_drift_max_s: float = 120.0


@dataclass(frozen=True)
class DeviceFacts:
    device_id: str
    online: bool
    last_seen: dt.datetime | None
    created_at: dt.datetime
    scheduled: bool  # sleeps between appointments: "offline" is then normal
    metrics: Mapping[str, float] = field(default_factory=dict)
    dropped_recently: int = 0


@dataclass(frozen=True)
class Wanted:
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
                    f"{d} offline da {int(gone // 60)} minuti",
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


def apply(session: Session, facts: DeviceFacts, wanted: list[Wanted]) -> None:
    """Open what is wanted and not open; resolve this device's rule alerts no longer wanted."""
    keys = {w.key for w in wanted}
    for w in wanted:
        alerts.raise_alert(
            session,
            key=w.key,
            kind=w.kind,
            severity=w.severity,
            message=w.message,
            device_id=facts.device_id,
            data=w.data,
        )
    open_rows = session.execute(
        select(Alert.key).where(
            Alert.device_id == facts.device_id,
            Alert.kind.in_(RULE_KINDS),
            Alert.status != AlertStatus.RESOLVED.value,
        )
    ).scalars()
    for key in set(open_rows) - keys:
        alerts.resolve(session, key)


def facts_for(session: Session, device: Device, now: dt.datetime) -> DeviceFacts:
    """Gather what the rules need about one device."""
    dropped = session.execute(
        select(func.coalesce(func.sum(TelemetryBatchRecord.dropped), 0)).where(
            TelemetryBatchRecord.device_id == device.id,
            TelemetryBatchRecord.received_at >= now - dt.timedelta(hours=24),
        )
    ).scalar_one()
    metrics = (device.last_telemetry or {}).get("metrics", {})
    return DeviceFacts(
        device_id=device.id,
        online=device.online,
        last_seen=device.last_seen,
        created_at=device.created_at,
        scheduled=bool((device.desired or {}).get("schedule")),
        metrics=metrics,
        dropped_recently=int(dropped),
    )


def check_all(session: Session, policy: Policy, now: dt.datetime) -> None:
    """Evaluate and apply the rules for every active device."""
    for device in session.execute(select(Device).where(Device.revoked_at.is_(None))).scalars():
        facts = facts_for(session, device, now)
        apply(session, facts, evaluate(facts, policy, now))


def periodic_task(settings: Settings) -> Callable[[sessionmaker[Session], dt.datetime], None]:
    """The task registered with the periodic runner."""
    policy = Policy(settings.offline_after_s, settings.disk_full_pct, settings.rtc_drift_max_s)

    def _run(factory: sessionmaker[Session], now: dt.datetime) -> None:
        with factory() as session, session.begin():
            check_all(session, policy, now)

    return _run
