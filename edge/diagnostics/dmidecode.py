"""Parse ``dmidecode`` text output into records, and pick out system, board, BIOS and memory."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "DmiRecord",
    "bios_info",
    "board_info",
    "clean",
    "iso_date",
    "memory_modules",
    "parse_dmidecode",
    "parse_size",
    "system_info",
]

DMI_SYSTEM = 1
DMI_BASEBOARD = 2
DMI_BIOS = 0
DMI_MEMORY_DEVICE = 17

_HANDLE_RE = re.compile(r"^Handle (0x[0-9A-Fa-f]+), DMI type (\d+), \d+ bytes")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(bytes|kB|KB|MB|GB|TB)$")
_SPEED_RE = re.compile(r"^(\d+)\s*(MT/s|MHz)$")
_UNIT = {"bytes": 1, "kB": 1024, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}

# Strings vendors leave in the SMBIOS tables instead of real data. Treating them as null
# keeps the workshop from recording "To Be Filled By O.E.M." as a serial number.
_PLACEHOLDERS = {
    "",
    "0",
    "00000000",
    "0123456789",
    "[empty]",
    "123456789",
    "base board serial number",
    "chassis serial number",
    "default string",
    "none",
    "not applicable",
    "not available",
    "not defined",
    "not present",
    "not provided",
    "not settable",
    "not specified",
    "o.e.m.",
    "oem",
    "system manufacturer",
    "system product name",
    "system serial number",
    "system version",
    "to be filled by o.e.m.",
    "type2 - board serial number",
    "undefined",
    "unknown",
    "xxxxxxxxxxxx",
}
# The SMBIOS spec's "not set" UUIDs, and one placeholder burnt into many cheap boards.
_PLACEHOLDER_UUIDS = {
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
}


@dataclass(slots=True)
class DmiRecord:
    """One ``Handle ...`` block: its type, title, ``Key: value`` fields and list fields."""

    handle: str
    type: int
    title: str
    fields: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)


def parse_dmidecode(text: str) -> list[DmiRecord]:
    """Records of ``dmidecode`` text output, in order; lines it doesn't understand are skipped."""
    records: list[DmiRecord] = []
    current: DmiRecord | None = None
    want_title = False
    list_key: str | None = None
    for line in text.splitlines():
        match = _HANDLE_RE.match(line)
        if match:
            current = DmiRecord(match.group(1), int(match.group(2)), "")
            records.append(current)
            want_title, list_key = True, None
            continue
        if current is None or not line.strip():
            list_key = None
            continue
        if want_title:
            current.title, want_title = line.strip(), False
            continue
        if line.startswith("\t\t") and list_key is not None:
            current.lists[list_key].append(line.strip())
            continue
        if line.startswith("\t"):
            key, sep, value = line.strip().partition(":")
            if not sep:
                continue
            value = value.strip()
            if value:
                current.fields[key] = value
                list_key = None
            else:
                # "Characteristics:" and the like: the items follow, indented one level more.
                current.lists[key] = []
                list_key = key
    return records


def clean(value: str | None) -> str | None:
    """Strip a DMI string; None for the placeholders vendors leave in place of data."""
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in _PLACEHOLDERS else value


def _uuid(value: str | None) -> str | None:
    value = clean(value)
    return None if value is None or value.lower() in _PLACEHOLDER_UUIDS else value.lower()


def iso_date(value: str | None) -> str | None:
    """BIOS dates come as MM/DD/YYYY; return ISO 8601, or the text as is if it is odd."""
    value = clean(value)
    if value is None:
        return None
    for fmt in ("%m/%d/%Y", "%m/%d/%y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return value


def parse_size(value: str | None) -> int | None:
    """``"4096 MB"`` / ``"8 GB"`` -> bytes; None for "No Module Installed", "Unknown", ..."""
    match = _SIZE_RE.match((value or "").strip())
    return int(float(match.group(1)) * _UNIT[match.group(2)]) if match else None


def _speed(value: str | None) -> int | None:
    # Old dmidecode prints "1333 MHz" where newer ones print "1333 MT/s"; it is the same number.
    match = _SPEED_RE.match((value or "").strip())
    return int(match.group(1)) if match else None


def _first(records: Iterable[DmiRecord], dmi_type: int) -> Mapping[str, str]:
    return next((r.fields for r in records if r.type == dmi_type), {})


def system_info(records: Iterable[DmiRecord]) -> dict[str, Any]:
    """Manufacturer, product, version, serial, uuid, family, SKU of the machine (type 1)."""
    f = _first(records, DMI_SYSTEM)
    return {
        "manufacturer": clean(f.get("Manufacturer")),
        "product": clean(f.get("Product Name")),
        "version": clean(f.get("Version")),
        "serial": clean(f.get("Serial Number")),
        "uuid": _uuid(f.get("UUID")),
        "family": clean(f.get("Family")),
        "sku": clean(f.get("SKU Number")),
    }


def board_info(records: Iterable[DmiRecord]) -> dict[str, Any]:
    """Manufacturer, product, version and serial of the mainboard (type 2)."""
    f = _first(records, DMI_BASEBOARD)
    return {
        "manufacturer": clean(f.get("Manufacturer")),
        "product": clean(f.get("Product Name")),
        "version": clean(f.get("Version")),
        "serial": clean(f.get("Serial Number")),
    }


def bios_info(records: Iterable[DmiRecord]) -> dict[str, Any]:
    """Vendor, version and ISO release date of the firmware (type 0)."""
    f = _first(records, DMI_BIOS)
    return {
        "vendor": clean(f.get("Vendor")),
        "version": clean(f.get("Version")),
        "date": iso_date(f.get("Release Date")),
    }


def memory_modules(records: Iterable[DmiRecord]) -> tuple[list[dict[str, Any]], int]:
    """Installed modules (type 17 with a size) and the number of slots, empty ones included."""
    modules: list[dict[str, Any]] = []
    slots = 0
    for record in records:
        if record.type != DMI_MEMORY_DEVICE:
            continue
        slots += 1
        f = record.fields
        size = parse_size(f.get("Size"))
        if not size:
            continue  # "No Module Installed"
        modules.append(
            {
                "size_bytes": size,
                "type": clean(f.get("Type")),
                # The rated speed, not the configured one: it is what the part is worth reused.
                "speed_mts": _speed(f.get("Speed")) or _speed(f.get("Configured Memory Speed")),
                "locator": clean(f.get("Locator")),
                "form_factor": clean(f.get("Form Factor")),
                "manufacturer": clean(f.get("Manufacturer")),
                "part_number": clean(f.get("Part Number")),
                "serial": clean(f.get("Serial Number")),
            }
        )
    return modules, slots
