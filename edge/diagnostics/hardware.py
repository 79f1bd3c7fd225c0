"""Core hardware sections of the report: CPU, memory total, disks, network adapters, battery."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.collectors.runner import CommandError, ToolNotFound
from edge.collectors.smart import SmartHealth, query_smart

from .probe import ProbeEnv

__all__ = ["battery_section", "cpu_section", "disks_section", "meminfo_total", "network_section"]

LSBLK_ARGV = ("lsblk", "-J", "-b", "-o", "NAME,MODEL,SERIAL,SIZE,ROTA,TYPE,TRAN,RM")

# Block devices that are not disks one could wipe, image or sell.
_NOT_DISKS = re.compile(r"^(zram|ram|loop|fd|nbd)\d|^mmcblk\d+(boot|rpmb)")


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    return blocks


def cpu_section(env: ProbeEnv) -> dict[str, Any]:
    """Model, vendor, cores, threads, MHz and 64-bit support, from /proc/cpuinfo and cpufreq."""
    text = (env.proc / "cpuinfo").read_text()
    blocks = _cpuinfo_blocks(text)
    procs = [b for b in blocks if "processor" in b]
    first = procs[0] if procs else (blocks[0] if blocks else {})
    model = first.get("model name") or first.get("Processor") or first.get("cpu model")
    if model is None:
        # ARM boards name the machine in a trailing block rather than per processor.
        model = next((b[k] for b in blocks for k in ("Model", "Hardware") if k in b), None)
    pairs = {(b.get("physical id"), b.get("core id")) for b in procs if "core id" in b}
    threads = len(procs) or None
    max_khz = env.read_int(env.sysfs / "devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "cpu")
    mhz: int | None = None
    if max_khz:
        mhz = round(max_khz / 1000)
    elif "cpu MHz" in first:
        # The current clock, lowered by power saving: a fallback when cpufreq is absent.
        mhz = round(float(first["cpu MHz"]))
    flags = first.get("flags")
    is_64bit = ("lm" in flags.split()) if flags is not None else None
    return {
        "model": " ".join(model.split()) if model else None,
        "vendor": first.get("vendor_id"),
        "cores": len(pairs) if pairs else threads,
        "threads": threads,
        "mhz": mhz,
        # Debian amd64 needs the "lm" (long mode) flag; many donated Atoms and P4s lack it.
        "is_64bit": is_64bit,
        # What the CPU can run (not what the kernel runs): the workshop reads this name.
        "arch": None if is_64bit is None else ("x86_64" if is_64bit else "i686"),
    }


def meminfo_total(env: ProbeEnv) -> int | None:
    """Memory the kernel can use (MemTotal), in bytes."""
    for line in (env.proc / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _flag(value: Any) -> bool | None:
    # lsblk up to util-linux 2.33 prints every JSON value as a string ("1"/"0").
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value) in ("0", "1"):
        return str(value) == "1"
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _text(value: Any) -> str | None:
    return (" ".join(value.split()) or None) if isinstance(value, str) else None


def _lsblk_disks(env: ProbeEnv) -> list[dict[str, Any]]:
    result = env.run(LSBLK_ARGV, timeout=15.0)
    if result.returncode != 0:
        raise CommandError(f"lsblk: {result.first_error_line()}")
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise CommandError("lsblk: output is not JSON") from exc
    disks: list[dict[str, Any]] = []
    for dev in doc.get("blockdevices") or []:
        if not isinstance(dev, Mapping) or dev.get("type") != "disk":
            continue
        disks.append(
            {
                "name": str(dev.get("name")),
                "model": _text(dev.get("model")),
                "serial": _text(dev.get("serial")),
                "size_bytes": _int(dev.get("size")),
                "rotational": _flag(dev.get("rota")),
                "removable": _flag(dev.get("rm")),
                "transport": _text(dev.get("tran")),
            }
        )
    return disks


def _sysfs_disks(env: ProbeEnv) -> list[dict[str, Any]]:
    disks: list[dict[str, Any]] = []
    block = env.sysfs / "block"
    for entry in sorted(block.iterdir()):
        sectors = env.read_int(entry / "size", "disks")
        rota = env.read(entry / "queue" / "rotational", "disks")
        removable = env.read(entry / "removable", "disks")
        disks.append(
            {
                "name": entry.name,
                "model": _text(env.read(entry / "device" / "model", "disks")),
                "serial": _text(env.read(entry / "device" / "serial", "disks")),
                # sysfs counts 512-byte sectors whatever the disk's real sector size.
                "size_bytes": sectors * 512 if sectors is not None else None,
                "rotational": _flag(rota),
                "removable": _flag(removable),
                "transport": None,
            }
        )
    return disks


def _smart_dict(health: SmartHealth | None, why: str | None = None) -> dict[str, Any]:
    if health is None:
        return {
            "available": False,
            "passed": None,
            "power_on_hours": None,
            "reallocated_sectors": None,
            "pending_sectors": None,
            "temperature_c": None,
            "message": why,
        }
    return {
        "available": health.available,
        "passed": health.passed,
        "power_on_hours": health.power_on_hours,
        "reallocated_sectors": health.reallocated_sectors,
        "pending_sectors": health.pending_sectors,
        "temperature_c": health.temperature_c,
        "message": health.message,
    }


def disks_section(env: ProbeEnv) -> list[dict[str, Any]]:
    """Every real disk (lsblk, else /sys/block) with its SMART health and power-on hours."""
    try:
        disks = _lsblk_disks(env)
    except CommandError as exc:
        env.note("disks", f"{exc}; read from /sys/block")
        disks = _sysfs_disks(env)
    disks = [d for d in disks if not _NOT_DISKS.match(d["name"]) and d["size_bytes"] != 0]
    smart_missing: str | None = None
    for disk in disks:
        if smart_missing is not None:
            disk["smart"] = _smart_dict(None, smart_missing)
            continue
        try:
            health = query_smart(env.run, f"/dev/{disk['name']}", timeout=60.0)
        except ToolNotFound as exc:
            smart_missing = str(exc)  # say it once, not once per disk
            env.note("disks", smart_missing)
            disk["smart"] = _smart_dict(None, smart_missing)
            continue
        except CommandError as exc:
            env.note("disks", f"{disk['name']}: {exc}")
            disk["smart"] = _smart_dict(None, str(exc))
            continue
        disk["smart"] = _smart_dict(health)
        # lsblk learns model and serial from udev, which a minimal image may lack.
        disk["model"] = disk["model"] or health.model
        disk["serial"] = disk["serial"] or health.serial
    return disks


def network_section(env: ProbeEnv) -> list[dict[str, Any]]:
    """Physical network adapters: name, MAC, driver, link speed, wireless or not."""
    adapters: list[dict[str, Any]] = []
    net = env.sysfs / "class" / "net"
    if not net.is_dir():
        raise FileNotFoundError(f"{net}: missing")
    for entry in sorted(net.iterdir()):
        device = entry / "device"
        if not device.exists():
            continue  # lo, bridges, tunnels: not hardware
        driver_link = device / "driver"
        driver = driver_link.resolve().name if driver_link.exists() else None
        speed = env.read_int(entry / "speed", "network")
        adapters.append(
            {
                "name": entry.name,
                "mac": env.read(entry / "address", "network"),
                "driver": driver,
                # The kernel reports -1 (or EINVAL) while no cable is plugged in.
                "speed_mbps": speed if speed is not None and speed > 0 else None,
                "wireless": (entry / "wireless").exists() or (entry / "phy80211").exists(),
                "link_up": env.read(entry / "operstate", "network") == "up",
            }
        )
    return adapters


def _wh(env: ProbeEnv, supply: Path, what: str) -> float | None:
    """An energy_* value in Wh, computing it from charge_* and the design voltage if needed."""
    energy = env.read_int(supply / f"energy_{what}", "battery")
    if energy is not None:
        return energy / 1e6  # µWh
    charge = env.read_int(supply / f"charge_{what}", "battery")
    volts = env.read_int(supply / "voltage_min_design", "battery") or env.read_int(
        supply / "voltage_now", "battery"
    )
    if charge is None or not volts:
        return None
    return charge * volts / 1e12  # µAh × µV


def battery_section(env: ProbeEnv) -> dict[str, Any] | None:
    """Design and full capacity and health of the laptop battery; None on a desktop."""
    root = env.sysfs / "class" / "power_supply"
    if not root.is_dir():
        return None
    found = []
    for supply in sorted(root.iterdir()):
        if env.read(supply / "type", "battery") != "Battery":
            continue
        # Wireless mice and keyboards report their batteries with scope "Device".
        if env.read(supply / "scope", "battery") == "Device":
            continue
        found.append(supply)
    if not found:
        return None
    design = [_wh(env, s, "full_design") for s in found]
    full = [_wh(env, s, "full") for s in found]
    design_wh = sum(d for d in design if d is not None) if any(design) else None
    full_wh = sum(f for f in full if f is not None) if any(full) else None
    health = round(100 * full_wh / design_wh, 1) if design_wh and full_wh is not None else None
    first = found[0]
    return {
        "present": True,
        "count": len(found),
        "design_wh": round(design_wh, 2) if design_wh is not None else None,
        "full_wh": round(full_wh, 2) if full_wh is not None else None,
        "health_pct": health,
        "capacity_pct": env.read_int(first / "capacity", "battery"),
        "status": env.read(first / "status", "battery"),
        "cycle_count": env.read_int(first / "cycle_count", "battery"),
        "technology": env.read(first / "technology", "battery"),
        "manufacturer": env.read(first / "manufacturer", "battery"),
        "model": env.read(first / "model_name", "battery"),
    }
