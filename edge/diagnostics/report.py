"""Build the hardware diagnostics report: every section independent, never raising."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from edge.collectors.base import describe_error
from edge.collectors.runner import CommandError, Runner, default_runner

from . import dmidecode
from .hardware import battery_section, cpu_section, disks_section, meminfo_total, network_section
from .peripherals import camera_section, microphone_section, rtc_section
from .probe import ProbeEnv

__all__ = ["REPORT_VERSION", "build_report", "telecare_issues"]

log = logging.getLogger(__name__)

REPORT_VERSION = 1
DMIDECODE_ARGV = ("dmidecode", "-t", "system", "-t", "baseboard", "-t", "bios", "-t", "memory")
GIB = 1024**3

# /sys/class/dmi/id: the kernel's copy of the same SMBIOS strings, readable without root
# (except serials and the UUID), used where dmidecode is missing or not allowed.
_DMI_SYSFS = {
    "system": {
        "manufacturer": "sys_vendor",
        "product": "product_name",
        "version": "product_version",
        "serial": "product_serial",
        "uuid": "product_uuid",
        "family": "product_family",
        "sku": "product_sku",
    },
    "board": {
        "manufacturer": "board_vendor",
        "product": "board_name",
        "version": "board_version",
        "serial": "board_serial",
    },
    "bios": {"vendor": "bios_vendor", "version": "bios_version", "date": "bios_date"},
}

# What a section looks like when it could not be read at all: same keys, null values.
_EMPTY: dict[str, Any] = {
    "system": dict.fromkeys(_DMI_SYSFS["system"]),
    "board": dict.fromkeys(_DMI_SYSFS["board"]),
    "bios": dict.fromkeys(_DMI_SYSFS["bios"]),
    "cpu": dict.fromkeys(("model", "vendor", "cores", "threads", "mhz", "is_64bit", "arch")),
    "memory": {"total_bytes": None, "installed_bytes": None, "slots": None, "modules": None},
    "disks": None,
    "network": None,
    "battery": None,
    "camera": {"present": None, "devices": None, "working": None},
    "microphone": {"present": None, "cards": None, "working": None},
    "rtc": dict.fromkeys(
        (
            "present",
            "name",
            "wakealarm",
            "wakeup_enabled",
            "max_ahead_s",
            "local_time",
            "battery_ok",
        )
    ),
}


class _Dmi:
    """Runs dmidecode once for the four sections that need it, and remembers why it failed."""

    def __init__(self, env: ProbeEnv) -> None:
        self.records: list[dmidecode.DmiRecord] | None = None
        self.error: str | None = None
        try:
            result = env.run(DMIDECODE_ARGV, timeout=20.0)
        except CommandError as exc:
            self.error = str(exc)
            return
        if result.returncode != 0:
            # Typically "/dev/mem: Permission denied" when not run as root.
            self.error = f"dmidecode: {result.first_error_line()}"
            return
        records = dmidecode.parse_dmidecode(result.stdout)
        if not records:
            # ARM boards and some VMs have no SMBIOS: "No SMBIOS nor DMI entry point found".
            self.error = f"dmidecode: {result.first_error_line()}"
            return
        self.records = records


def _dmi_section(env: ProbeEnv, dmi: _Dmi, section: str) -> dict[str, Any]:
    pick = {
        "system": dmidecode.system_info,
        "board": dmidecode.board_info,
        "bios": dmidecode.bios_info,
    }[section]
    values: dict[str, Any] = pick(dmi.records or [])
    if dmi.records is not None:
        if all(v is None for v in values.values()):
            # Cheap boards ship "To Be Filled By O.E.M." everywhere: nothing to record.
            env.note(section, "dmidecode: no record, or only vendor placeholders")
        return values
    base = env.sysfs / "class" / "dmi" / "id"
    if not base.is_dir():
        env.note(section, f"{dmi.error}; no {base} either")
        return values
    env.note(section, f"{dmi.error}; read from {base}")
    for key, attr in _DMI_SYSFS[section].items():
        raw = env.read(base / attr, section)
        cleaned = dmidecode.iso_date(raw) if key == "date" else dmidecode.clean(raw)
        values[key] = cleaned.lower() if key == "uuid" and cleaned else cleaned
    return values


def _memory_section(env: ProbeEnv, dmi: _Dmi) -> dict[str, Any]:
    memory: dict[str, Any] = dict(_EMPTY["memory"])
    try:
        memory["total_bytes"] = meminfo_total(env)
    except OSError as exc:
        env.note("memory", describe_error(exc))
    if dmi.records is None:
        env.note("memory", f"modules unknown: {dmi.error}")
        return memory
    modules, slots = dmidecode.memory_modules(dmi.records)
    memory["modules"] = modules
    memory["slots"] = slots
    memory["installed_bytes"] = sum(m["size_bytes"] for m in modules) or None
    return memory


def _tool_version() -> str:
    try:
        return metadata.version("difronte")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_report(
    *,
    run: Runner = default_runner,
    sysfs: Path = Path("/sys"),
    proc: Path = Path("/proc"),
    dev: Path = Path("/dev"),
    etc: Path = Path("/etc"),
    clock: Callable[[], float] = time.time,
    test_devices: bool = False,
) -> dict[str, Any]:
    """The JSON hardware report; a section that can't be read is null and explained in problems.

    ``test_devices`` records a frame and two seconds of audio to fill ``working``;
    otherwise ``working`` is None (untested).
    """
    env = ProbeEnv(run=run, sysfs=sysfs, proc=proc, dev=dev, etc=etc, test_devices=test_devices)
    report: dict[str, Any] = {
        "v": REPORT_VERSION,
        "generated_at": clock(),
        "tool_version": _tool_version(),
    }
    dmi: _Dmi | None = None

    def dmi_once() -> _Dmi:
        nonlocal dmi
        if dmi is None:
            dmi = _Dmi(env)
        return dmi

    probes: dict[str, Callable[[], Any]] = {
        "system": lambda: _dmi_section(env, dmi_once(), "system"),
        "board": lambda: _dmi_section(env, dmi_once(), "board"),
        "bios": lambda: _dmi_section(env, dmi_once(), "bios"),
        "cpu": lambda: cpu_section(env),
        "memory": lambda: _memory_section(env, dmi_once()),
        "disks": lambda: disks_section(env),
        "network": lambda: network_section(env),
        "battery": lambda: battery_section(env),
        "camera": lambda: camera_section(env),
        "microphone": lambda: microphone_section(env),
        "rtc": lambda: rtc_section(env),
    }
    for section, probe in probes.items():
        try:
            report[section] = probe()
        except Exception as exc:  # one unreadable section must not cost the others
            log.debug("diagnostics section %s failed", section, exc_info=True)
            env.note(section, describe_error(exc))
            empty = _EMPTY[section]
            report[section] = dict(empty) if isinstance(empty, dict) else empty
    report["problems"] = env.problems
    return report


def telecare_issues(report: dict[str, Any], *, min_memory_bytes: int = 2 * GIB) -> list[str]:
    """Codes of what rules the machine out for telecare (``no_camera``, ``failing_disk``...).

    Unknowns are not issues: a section that could not be read is in ``problems`` instead.
    """
    issues: list[str] = []
    for part in ("camera", "microphone"):
        section = report.get(part) or {}
        if section.get("present") is False:
            issues.append(f"no_{part}")
        elif section.get("working") is False:
            issues.append(f"{part}_not_working")
    disks = report.get("disks") or []
    if any((d.get("smart") or {}).get("passed") is False for d in disks):
        issues.append("failing_disk")
    memory = report.get("memory") or {}
    installed, usable = memory.get("installed_bytes"), memory.get("total_bytes")
    if installed is not None:
        low = installed < min_memory_bytes
    else:
        # MemTotal is below what is installed by what firmware and the iGPU reserve.
        low = usable is not None and usable < 0.9 * min_memory_bytes
    if low:
        issues.append("low_memory")
    cpu = report.get("cpu") or {}
    if cpu.get("is_64bit") is False:
        issues.append("cpu_32bit")
    rtc = report.get("rtc") or {}
    if rtc.get("present") is False or rtc.get("wakealarm") is False:
        issues.append("no_rtc_wake")
    return issues
