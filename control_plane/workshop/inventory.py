"""A machine's hardware inventory, read from the edge's diagnostics report.

The report is what ``edge.diagnostics.build_report`` produces (format version 1)::

    {"v": 1, "generated_at": ..., "tool_version": ...,
     "system": {"manufacturer", "product", "serial", ...}, "board": {...}, "bios": {...},
     "cpu": {"model", "vendor", "cores", "threads", "mhz", "is_64bit"},
     "memory": {"total_bytes", "installed_bytes", "slots",
                "modules": [{"size_bytes", "type", ...}]},
     "disks": [{"name", "model", "serial", "size_bytes", "rotational", "removable", "transport",
                "smart": {"available", "passed", "power_on_hours", "reallocated_sectors",
                          "pending_sectors", ...}}],
     "network": [...], "battery": {"present", "health_pct", "full_wh", "design_wh", ...} | null,
     "camera": {"present", "working", ...}, "microphone": {"present", "working", ...},
     "rtc": {"present", "wakealarm", "max_ahead_s", "battery_ok", ...},
     "problems": {"section": "why it could not be read"}}

A missing section or key, or a null one, means "not checked", never "absent": a report
from an older agent must not declare a camera missing. The one exception is the battery,
where null means "no battery" (a desktop) unless ``problems`` says it couldn't be read.
A value of the wrong type is refused with :class:`ReportError` naming its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class ReportError(ValueError):
    """A diagnostics report that can't be read; ``field`` is the path of the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class DiskInfo:
    """One disk as the report describes it; None where the report doesn't say."""

    name: str
    model: str | None = None
    serial: str | None = None
    size_bytes: int | None = None
    rotational: bool | None = None
    removable: bool | None = None
    transport: str | None = None
    smart_available: bool | None = None
    smart_passed: bool | None = None
    power_on_hours: int | None = None
    reallocated_sectors: int | None = None
    pending_sectors: int | None = None

    @property
    def identifier(self) -> str:
        """The serial, or a stand-in naming the device when the disk didn't report one."""
        return self.serial or f"unknown-serial:{self.name}"


@dataclass(frozen=True, slots=True)
class Inventory:
    """The hardware summary the workshop shows and stores; None means "not checked"."""

    manufacturer: str | None = None
    product: str | None = None
    serial_number: str | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = None
    cpu_threads: int | None = None
    cpu_64bit: bool | None = None
    memory_usable_bytes: int | None = None  # what the kernel sees (MemTotal)
    memory_installed_bytes: int | None = None  # the sum of the modules (SMBIOS)
    memory_slots: int | None = None
    memory_modules: int | None = None
    memory_type: str | None = None
    disks: tuple[DiskInfo, ...] | None = None
    camera_present: bool | None = None
    camera_working: bool | None = None
    microphone_present: bool | None = None
    microphone_working: bool | None = None
    battery_present: bool | None = None
    battery_health_pct: float | None = None
    rtc_present: bool | None = None
    rtc_wakealarm: bool | None = None
    rtc_max_ahead_s: int | None = None
    rtc_battery_ok: bool | None = None
    # Sections the edge could not (fully) read, with its reason.
    unreadable: Mapping[str, str] = field(default_factory=dict)

    @property
    def fixed_disks(self) -> tuple[DiskInfo, ...]:
        """The disks built into the machine (not USB sticks or memory cards)."""
        return tuple(d for d in self.disks or () if not d.removable)

    @property
    def removable_disks(self) -> tuple[DiskInfo, ...]:
        """Removable media seen during diagnostics: the workshop's live USB, or a donor's card."""
        return tuple(d for d in self.disks or () if d.removable)


def _section(report: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = report.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ReportError(key, f"expected an object, got {type(value).__name__}")
    return value


def _str(section: Mapping[str, Any], key: str, path: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReportError(f"{path}.{key}", f"expected text, got {type(value).__name__}")
    return value.strip() or None


def _bool(section: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ReportError(f"{path}.{key}", f"expected true or false, got {value!r}")
    return value


def _number(section: Mapping[str, Any], key: str, path: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    # bool is an int in Python; a "true" where a count belongs is a bug in the report.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportError(f"{path}.{key}", f"expected a number, got {value!r}")
    if value < 0:
        raise ReportError(f"{path}.{key}", f"must not be negative, got {value}")
    return float(value)


def _int(section: Mapping[str, Any], key: str, path: str) -> int | None:
    value = _number(section, key, path)
    return None if value is None else int(value)


def _objects(value: Any, path: str) -> Sequence[Mapping[str, Any]]:
    if not isinstance(value, list | tuple):
        raise ReportError(path, f"expected a list, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ReportError(f"{path}[{index}]", f"expected an object, got {type(item).__name__}")
    return value


def _read_disk(raw: Mapping[str, Any], index: int) -> DiskInfo:
    path = f"disks[{index}]"
    smart = raw.get("smart")
    smart = {} if smart is None else smart
    if not isinstance(smart, Mapping):
        raise ReportError(f"{path}.smart", f"expected an object, got {type(smart).__name__}")
    sp = f"{path}.smart"
    return DiskInfo(
        name=_str(raw, "name", path) or f"disk{index}",
        model=_str(raw, "model", path),
        serial=_str(raw, "serial", path),
        size_bytes=_int(raw, "size_bytes", path),
        rotational=_bool(raw, "rotational", path),
        removable=_bool(raw, "removable", path),
        transport=_str(raw, "transport", path),
        smart_available=_bool(smart, "available", sp),
        smart_passed=_bool(smart, "passed", sp),
        power_on_hours=_int(smart, "power_on_hours", sp),
        reallocated_sectors=_int(smart, "reallocated_sectors", sp),
        pending_sectors=_int(smart, "pending_sectors", sp),
    )


def _read_problems(report: Mapping[str, Any]) -> dict[str, str]:
    raw = report.get("problems")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ReportError("problems", f"expected an object, got {type(raw).__name__}")
    return {str(section): str(why) for section, why in raw.items()}


def _battery(
    report: Mapping[str, Any], problems: Mapping[str, str]
) -> tuple[bool | None, float | None]:
    if "battery" not in report:
        return None, None
    battery = _section(report, "battery")
    if battery is None:
        # null is the edge's "no battery here", unless it says it couldn't look.
        return (None if "battery" in problems else False), None
    present = _bool(battery, "present", "battery")
    if present is False:
        return False, None
    health = _number(battery, "health_pct", "battery")
    if health is None:
        full = _number(battery, "full_wh", "battery")
        design = _number(battery, "design_wh", "battery")
        if full is not None and design:
            health = round(100.0 * full / design, 1)
    return True, health


def read_inventory(report: Mapping[str, Any]) -> Inventory:
    """The inventory in a diagnostics report; ReportError naming the field if malformed."""
    if not isinstance(report, Mapping):
        raise ReportError("report", f"expected an object, got {type(report).__name__}")
    problems = _read_problems(report)
    system = _section(report, "system") or {}
    cpu = _section(report, "cpu") or {}
    memory = _section(report, "memory") or {}
    camera = _section(report, "camera") or {}
    microphone = _section(report, "microphone") or {}
    rtc = _section(report, "rtc") or {}

    modules: Sequence[Mapping[str, Any]] | None = None
    if memory.get("modules") is not None:
        modules = _objects(memory["modules"], "memory.modules")
    memory_type = next(
        (
            t
            for i, m in enumerate(modules or ())
            if (t := _str(m, "type", f"memory.modules[{i}]")) is not None
        ),
        None,
    )
    disks: tuple[DiskInfo, ...] | None = None
    if report.get("disks") is not None:
        disks = tuple(_read_disk(d, i) for i, d in enumerate(_objects(report["disks"], "disks")))
    battery_present, battery_health = _battery(report, problems)

    return Inventory(
        manufacturer=_str(system, "manufacturer", "system"),
        product=_str(system, "product", "system"),
        serial_number=_str(system, "serial", "system"),
        cpu_model=_str(cpu, "model", "cpu"),
        cpu_cores=_int(cpu, "cores", "cpu"),
        cpu_threads=_int(cpu, "threads", "cpu"),
        cpu_64bit=_bool(cpu, "is_64bit", "cpu"),
        memory_usable_bytes=_int(memory, "total_bytes", "memory"),
        memory_installed_bytes=_int(memory, "installed_bytes", "memory"),
        memory_slots=_int(memory, "slots", "memory"),
        memory_modules=None if modules is None else len(modules),
        memory_type=memory_type,
        disks=disks,
        camera_present=_bool(camera, "present", "camera"),
        camera_working=_bool(camera, "working", "camera"),
        microphone_present=_bool(microphone, "present", "microphone"),
        microphone_working=_bool(microphone, "working", "microphone"),
        battery_present=battery_present,
        battery_health_pct=battery_health,
        rtc_present=_bool(rtc, "present", "rtc"),
        rtc_wakealarm=_bool(rtc, "wakealarm", "rtc"),
        rtc_max_ahead_s=_int(rtc, "max_ahead_s", "rtc"),
        rtc_battery_ok=_bool(rtc, "battery_ok", "rtc"),
        unreadable=problems,
    )
