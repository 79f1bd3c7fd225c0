"""dmidecode text parsing: records, lists, vendor placeholders, memory modules."""

from __future__ import annotations

import pytest

from edge.diagnostics.dmidecode import (
    bios_info,
    board_info,
    clean,
    iso_date,
    memory_modules,
    parse_dmidecode,
    parse_size,
    system_info,
)
from tests.diagnostics.machine import DMIDECODE_T430

# An Optiplex-class desktop with an old dmidecode (2.12): "MHz" speeds, empty slots and the
# placeholders cheap boards ship with.
DMIDECODE_DESKTOP = """\
# dmidecode 2.12
SMBIOS 2.6 present.

Handle 0x0000, DMI type 0, 24 bytes
BIOS Information
\tVendor: American Megatrends Inc.
\tVersion: 0401
\tRelease Date: 05/13/2011

Handle 0x0001, DMI type 1, 27 bytes
System Information
\tManufacturer: System manufacturer
\tProduct Name: System Product Name
\tVersion: System Version
\tSerial Number: System Serial Number
\tUUID: 03000200-0400-0500-0006-000700080009
\tWake-up Type: Power Switch
\tSKU Number: To Be Filled By O.E.M.
\tFamily: To Be Filled By O.E.M.

Handle 0x0002, DMI type 2, 15 bytes
Base Board Information
\tManufacturer: ASUSTeK Computer INC.
\tProduct Name: P8H61-M LX
\tVersion: Rev X.0x
\tSerial Number: MT7013K15200943

Handle 0x0027, DMI type 17, 28 bytes
Memory Device
\tSize: 4096 MB
\tForm Factor: DIMM
\tLocator: ChannelA-DIMM0
\tType: DDR3
\tSpeed: 1333 MHz
\tManufacturer: Kingston
\tPart Number: 99U5471-012.A00LF

Handle 0x0029, DMI type 17, 28 bytes
Memory Device
\tSize: No Module Installed
\tForm Factor: DIMM
\tLocator: ChannelA-DIMM1
\tType: Unknown
\tSpeed: Unknown

Handle 0x002B, DMI type 17, 28 bytes
Memory Device
\tSize: 8 GB
\tForm Factor: DIMM
\tLocator: ChannelB-DIMM0
\tType: DDR3
\tSpeed: Unknown
\tConfigured Memory Speed: 1333 MT/s
\tManufacturer: Undefined
\tPart Number: [Empty]

Handle 0x002D, DMI type 17, 28 bytes
Memory Device
\tSize: No Module Installed
\tLocator: ChannelB-DIMM1
"""


def test_records_fields_and_lists() -> None:
    records = parse_dmidecode(DMIDECODE_T430)
    assert [(r.handle, r.type, r.title) for r in records] == [
        ("0x000D", 0, "BIOS Information"),
        ("0x000E", 1, "System Information"),
        ("0x000F", 2, "Base Board Information"),
        ("0x0005", 16, "Physical Memory Array"),
        ("0x0006", 17, "Memory Device"),
        ("0x0007", 17, "Memory Device"),
    ]
    bios = records[0]
    assert bios.lists["Characteristics"][:2] == ["PCI is supported", "PNP is supported"]
    assert bios.fields["BIOS Revision"] == "2.72"  # the field after a list is still a field
    assert records[2].lists["Features"] == ["Board is a hosting board", "Board is replaceable"]


def test_system_board_bios_of_a_thinkpad() -> None:
    records = parse_dmidecode(DMIDECODE_T430)
    assert system_info(records) == {
        "manufacturer": "LENOVO",
        "product": "2349KV5",
        "version": "ThinkPad T430",
        "serial": "R9ABCDE",
        "uuid": "4c4c4544-0042-3510-8052-b4c04f4b4d31",
        "family": "ThinkPad T430",
        "sku": "LENOVO_MT_2349",
    }
    assert board_info(records) == {
        "manufacturer": "LENOVO",
        "product": "2349KV5",
        "version": None,
        "serial": "1ZJ8K27G0AB",
    }
    assert bios_info(records) == {
        "vendor": "LENOVO",
        "version": "G1ETB2WW (2.72 )",
        "date": "2019-02-25",
    }


def test_memory_modules_of_a_thinkpad() -> None:
    modules, slots = memory_modules(parse_dmidecode(DMIDECODE_T430))
    assert slots == 2
    assert [(m["size_bytes"], m["type"], m["speed_mts"], m["locator"]) for m in modules] == [
        (2 * 1024**3, "DDR3", 1600, "ChannelA-DIMM0"),
        (2 * 1024**3, "DDR3", 1600, "ChannelB-DIMM0"),
    ]
    assert modules[0]["part_number"] == "M471B5773DH0-CK0"


def test_placeholders_become_null() -> None:
    records = parse_dmidecode(DMIDECODE_DESKTOP)
    system = system_info(records)
    assert system == dict.fromkeys(system)  # every value was a placeholder
    assert board_info(records)["product"] == "P8H61-M LX"
    assert bios_info(records)["date"] == "2011-05-13"


def test_old_dmidecode_memory_with_empty_slots() -> None:
    modules, slots = memory_modules(parse_dmidecode(DMIDECODE_DESKTOP))
    assert slots == 4
    assert [(m["size_bytes"], m["speed_mts"], m["manufacturer"]) for m in modules] == [
        (4 * 1024**3, 1333, "Kingston"),
        (8 * 1024**3, 1333, None),
    ]
    assert modules[1]["part_number"] is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096 MB", 4 * 1024**3),
        ("8 GB", 8 * 1024**3),
        ("512 kB", 512 * 1024),
        ("No Module Installed", None),
        ("Unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_size(text: str | None, size: int | None) -> None:
    assert parse_size(text) == size


def test_dates_and_clean() -> None:
    assert iso_date("02/25/2019") == "2019-02-25"
    assert iso_date("2019-02-25") == "2019-02-25"
    assert iso_date("sometime") == "sometime"
    assert iso_date("Not Specified") is None
    assert clean("  Default string ") is None
    assert clean(" ThinkPad ") == "ThinkPad"


def test_garbage_and_empty_output() -> None:
    assert parse_dmidecode("") == []
    assert parse_dmidecode("# No SMBIOS nor DMI entry point found, sorry.\n") == []
    assert parse_dmidecode("\tOrphan: field\nHandle 0x0001, DMI type 1, 27 bytes\n")[0].fields == {}
