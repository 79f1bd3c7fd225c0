"""Disk health from ``smartctl -j``: parsing (shared with diagnostics) and the collector."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .base import Metrics, metric_label
from .runner import CommandResult, Runner

__all__ = [
    "ScannedDevice",
    "SmartCollector",
    "SmartHealth",
    "parse_smart",
    "parse_smart_scan",
    "query_smart",
    "scan_smart",
]

# smartctl's exit status is a bit mask (smartctl(8), "RETURN VALUES"): only these two bits
# mean the JSON says nothing about the disk; the others report a sick disk in a good report.
_EXIT_BAD_COMMAND_LINE = 1 << 0
_EXIT_OPEN_FAILED = 1 << 1
_EXIT_DISK_FAILING = 1 << 3

_ATTR_REALLOCATED = 5
_ATTR_POWER_ON_HOURS = 9
_ATTR_AIRFLOW_TEMP = 190
_ATTR_TEMPERATURE = 194
_ATTR_PENDING = 197


@dataclass(frozen=True, slots=True)
class ScannedDevice:
    """One entry of ``smartctl --scan -j``: the device and the ``-d`` type to query it with."""

    name: str
    type: str | None = None


@dataclass(frozen=True, slots=True)
class SmartHealth:
    """What SMART says about one disk; ``available`` False means SMART could not be read."""

    device: str
    available: bool
    passed: bool | None = None
    power_on_hours: int | None = None
    temperature_c: float | None = None
    reallocated_sectors: int | None = None
    pending_sectors: int | None = None
    model: str | None = None
    serial: str | None = None
    standby: bool = False
    message: str | None = None

    @property
    def failing(self) -> bool:
        """True when the disk's own verdict is FAILED."""
        return self.passed is False


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _messages(doc: Mapping[str, Any]) -> list[str]:
    smartctl = doc.get("smartctl")
    if not isinstance(smartctl, Mapping):
        return []
    return [
        str(m.get("string", "")).strip()
        for m in smartctl.get("messages") or []
        if isinstance(m, Mapping) and m.get("string")
    ]


def _attributes(doc: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    table = (doc.get("ata_smart_attributes") or {}).get("table") or []
    return {a["id"]: a for a in table if isinstance(a, Mapping) and isinstance(a.get("id"), int)}


def _raw(attrs: Mapping[int, Mapping[str, Any]], attr_id: int) -> int | None:
    attr = attrs.get(attr_id)
    return _int((attr.get("raw") or {}).get("value")) if attr else None


def parse_smart(doc: Mapping[str, Any], device: str = "") -> SmartHealth:
    """Turn one ``smartctl -j -H -A [-i]`` document (ATA, SCSI or NVMe) into a SmartHealth."""
    device = device or str((doc.get("device") or {}).get("name", ""))
    messages = _messages(doc)
    status = _int((doc.get("smartctl") or {}).get("exit_status")) or 0
    model = doc.get("model_name") or doc.get("scsi_model_name")
    serial = doc.get("serial_number")
    if status & (_EXIT_BAD_COMMAND_LINE | _EXIT_OPEN_FAILED):
        text = "; ".join(messages) or f"smartctl exit status {status}"
        # With "-n standby" smartctl refuses to spin a sleeping disk up and says so.
        standby = "STANDBY" in text.upper() or "SLEEP" in text.upper()
        return SmartHealth(device, False, model=model, serial=serial, standby=standby, message=text)

    attrs = _attributes(doc)
    nvme = doc.get("nvme_smart_health_information_log") or {}
    smart_status = doc.get("smart_status")
    passed: bool | None = None
    if isinstance(smart_status, Mapping) and isinstance(smart_status.get("passed"), bool):
        passed = smart_status["passed"]
    elif status & _EXIT_DISK_FAILING:
        passed = False

    hours = _int((doc.get("power_on_time") or {}).get("hours"))
    if hours is None:
        hours = _int(nvme.get("power_on_hours"))
    if hours is None:
        hours = _raw(attrs, _ATTR_POWER_ON_HOURS)

    temp = _int((doc.get("temperature") or {}).get("current"))
    if temp is None:
        temp = _int(nvme.get("temperature"))
    if temp is None:
        for attr_id in (_ATTR_TEMPERATURE, _ATTR_AIRFLOW_TEMP):
            raw = _raw(attrs, attr_id)
            if raw is not None:
                # Vendors pack min/max into the upper bytes; the current value is the low one.
                temp = raw & 0xFF
                break

    reallocated = _raw(attrs, _ATTR_REALLOCATED)
    if reallocated is None and nvme:
        # NVMe has no sector remapping counter; media errors are the closest sign of decay.
        reallocated = _int(nvme.get("media_errors"))

    available = passed is not None or bool(attrs) or bool(nvme)
    return SmartHealth(
        device,
        available,
        passed=passed,
        power_on_hours=hours,
        temperature_c=float(temp) if temp is not None else None,
        reallocated_sectors=reallocated,
        pending_sectors=_raw(attrs, _ATTR_PENDING),
        model=str(model) if model else None,
        serial=str(serial) if serial else None,
        message=None if available else ("; ".join(messages) or "SMART not supported"),
    )


def _load_json(result: CommandResult) -> Mapping[str, Any]:
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise ValueError(f"smartctl: output is not JSON ({result.first_error_line()})") from exc
    if not isinstance(doc, Mapping):
        raise ValueError("smartctl: JSON output is not an object")
    return doc


def parse_smart_scan(doc: Mapping[str, Any]) -> list[ScannedDevice]:
    """The devices listed by ``smartctl --scan -j``."""
    found: list[ScannedDevice] = []
    for entry in doc.get("devices") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            kind = entry.get("type")
            found.append(ScannedDevice(entry["name"], kind if isinstance(kind, str) else None))
    return found


def scan_smart(
    run: Runner, smartctl: str = "smartctl", *, timeout: float = 15.0
) -> list[ScannedDevice]:
    """Ask smartctl which disks it can talk to; raises CommandError/ValueError if it can't."""
    return parse_smart_scan(_load_json(run([smartctl, "--scan", "-j"], timeout=timeout)))


def query_smart(
    run: Runner,
    device: str,
    *,
    smartctl: str = "smartctl",
    dev_type: str | None = None,
    no_wake: bool = False,
    timeout: float = 30.0,
) -> SmartHealth:
    """Health, identity and attributes of one disk; raises CommandError if smartctl can't run."""
    argv = [smartctl, "-j", "-H", "-A", "-i"]
    if dev_type:
        argv += ["-d", dev_type]
    if no_wake:
        # Waking a spun-down disk every sample costs power and wear on an old drive.
        argv += ["-n", "standby"]
    argv.append(device)
    result = run(argv, timeout=timeout)
    try:
        doc = _load_json(result)
    except ValueError as exc:
        return SmartHealth(device, False, message=str(exc))
    return parse_smart(doc, device)


class SmartCollector:
    """SMART verdicts of every disk smartctl finds, refreshed at most every ``min_interval_s``."""

    name = "smart"

    def __init__(
        self,
        run: Runner,
        smartctl: str = "smartctl",
        *,
        min_interval_s: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._smartctl = smartctl
        # SMART verdicts move over days, while a query costs seconds of disk I/O: reuse the
        # last answer between refreshes rather than hammering the disk every sample.
        self._min_interval_s = min_interval_s
        self._monotonic = monotonic
        self._cached: Metrics | None = None
        self._cached_at = 0.0
        self._last: dict[str, SmartHealth] = {}

    def collect(self) -> Metrics:
        """``smart.ok``, ``smart.disks``, ``smart.failing_disks`` and ``smart.<disk>.*``."""
        now = self._monotonic()
        if self._cached is not None and now - self._cached_at < self._min_interval_s:
            return dict(self._cached)
        devices = scan_smart(self._run, self._smartctl)
        healths: list[SmartHealth] = []
        for device in devices:
            health = query_smart(
                self._run, device.name, smartctl=self._smartctl, dev_type=device.type, no_wake=True
            )
            if health.standby and device.name in self._last:
                health = self._last[device.name]  # asleep: the last verdict still stands
            elif health.available:
                self._last[device.name] = health
            healths.append(health)
        metrics = _smart_metrics(healths)
        self._cached, self._cached_at = metrics, now
        return dict(metrics)


def _smart_metrics(healths: Sequence[SmartHealth]) -> Metrics:
    readable = [h for h in healths if h.available]
    failing = sum(1 for h in readable if h.failing)
    metrics: Metrics = {
        "smart.disks": float(len(readable)),
        "smart.unreadable_disks": float(len(healths) - len(readable)),
        "smart.failing_disks": float(failing),
    }
    if readable:
        # "ok" only means something when at least one disk answered.
        metrics["smart.ok"] = 0.0 if failing else 1.0
    temps = [h.temperature_c for h in readable if h.temperature_c is not None]
    if temps:
        metrics["smart.max_temp_c"] = max(temps)
    for h in readable:
        prefix = f"smart.{metric_label(h.device.removeprefix('/dev/'))}"
        if h.passed is not None:
            metrics[f"{prefix}.passed"] = 1.0 if h.passed else 0.0
        for field, value in (
            ("power_on_hours", h.power_on_hours),
            ("temp_c", h.temperature_c),
            ("reallocated_sectors", h.reallocated_sectors),
            ("pending_sectors", h.pending_sectors),
        ):
            if value is not None:
                metrics[f"{prefix}.{field}"] = float(value)
    return metrics
