"""Assessing an edge diagnostics report: inventory, blockers, warnings and their fixes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from control_plane.workshop.assessment import (
    GIB,
    ReportError,
    Severity,
    Thresholds,
    assess,
)
from control_plane.workshop.lifecycle import (
    MachineFacts,
    MachineState,
    TransitionError,
    TransitionParams,
    check_transition,
)
from edge.diagnostics.report import telecare_issues
from tests.diagnostics.machine import t430

# The blocker codes the edge reports too; the workshop must use the same names for them.
EDGE_CODES = {
    "no_camera",
    "camera_not_working",
    "no_microphone",
    "microphone_not_working",
    "failing_disk",
    "low_memory",
    "cpu_32bit",
    "no_rtc_wake",
}


def good_laptop() -> dict[str, Any]:
    """A report, in the edge's format, of a laptop fit for a home."""
    return {
        "v": 1,
        "generated_at": 1_772_700_000.0,
        "system": {"manufacturer": "LENOVO", "product": "20B7S2EX00", "serial": "PB0ABCD"},
        "cpu": {"model": "Intel(R) Core(TM) i5-4300U", "cores": 2, "threads": 4, "is_64bit": True},
        "memory": {
            "total_bytes": 7_900_000_000,
            "installed_bytes": 8 * GIB,
            "slots": 2,
            "modules": [
                {"size_bytes": 4 * GIB, "type": "DDR3", "locator": "ChannelA-DIMM0"},
                {"size_bytes": 4 * GIB, "type": "DDR3", "locator": "ChannelB-DIMM0"},
            ],
        },
        "disks": [
            {
                "name": "sda",
                "model": "Samsung SSD 850 EVO 250GB",
                "serial": "S21PNXAG123456",
                "size_bytes": 250_059_350_016,
                "rotational": False,
                "removable": False,
                "transport": "sata",
                "smart": {
                    "available": True,
                    "passed": True,
                    "power_on_hours": 12_000,
                    "reallocated_sectors": 0,
                    "pending_sectors": 0,
                },
            }
        ],
        "battery": {"present": True, "design_wh": 23.2, "full_wh": 19.0, "health_pct": 81.9},
        "camera": {"present": True, "working": True},
        "microphone": {"present": True, "working": True},
        "rtc": {"present": True, "wakealarm": True, "max_ahead_s": 86_400, "battery_ok": True},
        "problems": {},
    }


def codes(report: dict[str, Any], thresholds: Thresholds | None = None) -> dict[str, Severity]:
    return {f.code: f.severity for f in assess(report, thresholds).findings}


def worn_desktop() -> dict[str, Any]:
    report = good_laptop()
    report["battery"] = None  # a desktop: no battery is not a problem
    report["memory"] = {
        "total_bytes": 960 * 1024**2,
        "installed_bytes": GIB,
        "slots": 2,
        "modules": [{"size_bytes": GIB, "type": "DDR2"}],
    }
    report["camera"] = {"present": False, "devices": [], "working": None}
    report["microphone"] = {"present": True, "working": False}
    report["disks"][0]["smart"] = {
        "available": True,
        "passed": False,
        "power_on_hours": 61_000,
        "reallocated_sectors": 12,
    }
    report["rtc"] = {"present": True, "wakealarm": False, "battery_ok": False}
    return report


def test_a_good_machine_has_no_findings_and_a_full_inventory() -> None:
    result = assess(good_laptop())
    assert result.findings == ()
    assert result.suitable_for_telecare
    inv = result.inventory
    assert (inv.manufacturer, inv.product, inv.serial_number) == ("LENOVO", "20B7S2EX00", "PB0ABCD")
    assert (inv.cpu_cores, inv.cpu_threads, inv.cpu_64bit) == (2, 4, True)
    assert inv.memory_installed_bytes == 8 * GIB and inv.memory_usable_bytes == 7_900_000_000
    assert (inv.memory_slots, inv.memory_modules, inv.memory_type) == (2, 2, "DDR3")
    assert inv.disks is not None and inv.disks[0].serial == "S21PNXAG123456"
    assert inv.battery_present and inv.battery_health_pct == 81.9
    assert inv.rtc_wakealarm and inv.rtc_max_ahead_s == 86_400 and inv.rtc_battery_ok
    assert result.disk_serials == {"S21PNXAG123456"}


def test_a_worn_out_desktop() -> None:
    result = assess(worn_desktop())
    found = {f.code: f for f in result.findings}
    assert {code: f.severity for code, f in found.items()} == {
        "no_camera": Severity.BLOCKER,
        "microphone_not_working": Severity.BLOCKER,
        "low_memory": Severity.BLOCKER,
        "failing_disk": Severity.BLOCKER,
        "no_rtc_wake": Severity.BLOCKER,
        "rtc_battery_dead": Severity.BLOCKER,
    }
    assert not result.suitable_for_telecare
    assert result.inventory.battery_present is False
    # Every finding says what to do, in both languages.
    for finding in result.findings:
        assert finding.message_it and finding.message_en and finding.fix_it and finding.fix_en
    assert "webcam USB" in found["no_camera"].fix_it
    memory_fix = found["low_memory"].fix_it
    assert "DDR2" in memory_fix and "slot liberi (1)" in memory_fix and "4.0 GiB" in memory_fix
    assert "1.0 GiB" in found["low_memory"].message_en
    assert "S21PNXAG123456" in found["failing_disk"].fix_en
    assert found["failing_disk"].subject == "S21PNXAG123456"
    assert "BIOS" in found["no_rtc_wake"].fix_it
    assert "CR2032" in found["rtc_battery_dead"].fix_en


def test_blockers_come_first() -> None:
    report = worn_desktop()
    report["cpu"]["cores"] = 1
    severities = [f.severity for f in assess(report).findings]
    assert Severity.WARNING in severities
    assert severities == sorted(severities, key=lambda s: s is not Severity.BLOCKER)


def test_missing_sections_mean_unknown_not_absent() -> None:
    result = assess({"v": 1, "system": {"manufacturer": "HP"}})
    assert codes({"v": 1}) == {
        "camera_unknown": Severity.WARNING,
        "microphone_unknown": Severity.WARNING,
        "memory_unknown": Severity.WARNING,
        "disks_unknown": Severity.WARNING,
        "rtc_unknown": Severity.WARNING,
    }
    assert result.suitable_for_telecare  # nothing proves it unfit yet
    inv = result.inventory
    assert inv.camera_present is None and inv.disks is None and inv.battery_present is None
    assert result.disk_serials == frozenset()


def test_unreadable_sections_carry_the_edge_reason() -> None:
    report = good_laptop()
    report["disks"] = None
    report["battery"] = None
    report["problems"] = {
        "disks": "lsblk: command not found",
        "battery": "permission denied",
        "system": "dmidecode needs root",
    }
    result = assess(report)
    found = {(f.code, f.subject): f for f in result.findings}
    assert set(found) == {
        ("disks_unknown", None),
        ("diagnostics_incomplete", "system"),
        ("diagnostics_incomplete", "battery"),
    }
    assert "lsblk: command not found" in found[("disks_unknown", None)].message_it
    assert "dmidecode needs root" in found[("diagnostics_incomplete", "system")].message_en
    # A null battery the edge couldn't read is unknown, not "no battery".
    assert result.inventory.battery_present is None


def test_present_but_untested_devices() -> None:
    report = good_laptop()
    report["camera"] = {"present": True, "working": None}
    report["microphone"] = {"present": True}
    assert codes(report) == {
        "camera_untested": Severity.WARNING,
        "microphone_untested": Severity.WARNING,
    }


def test_memory_thresholds() -> None:
    report = good_laptop()
    report["memory"] = {"total_bytes": 3 * GIB, "installed_bytes": 3 * GIB}
    assert codes(report) == {"memory_below_recommended": Severity.WARNING}
    strict = Thresholds(min_memory_bytes=4 * GIB, recommended_memory_bytes=8 * GIB)
    assert codes(report, strict) == {"low_memory": Severity.BLOCKER}
    report["memory"] = {"installed_bytes": 2 * GIB}  # exactly the minimum is enough
    assert "low_memory" not in codes(report)
    # Only the usable figure known: the firmware's share doesn't count against the machine.
    report["memory"] = {"total_bytes": int(1.9 * GIB)}
    assert "low_memory" not in codes(report)
    report["memory"] = {"total_bytes": int(1.7 * GIB)}
    assert "low_memory" in codes(report)


def test_memory_fix_without_free_slots() -> None:
    report = good_laptop()
    report["memory"] = {
        "installed_bytes": GIB,
        "slots": 1,
        "modules": [{"size_bytes": GIB, "type": "DDR2"}],
    }
    finding = assess(report).findings[0]
    assert finding.code == "low_memory"
    assert "Replace the modules with larger DDR2 ones" in finding.fix_en


@pytest.mark.parametrize(
    ("smart", "expected"),
    [
        (
            {"available": True, "passed": True, "reallocated_sectors": 8},
            {"disk_bad_sectors": Severity.WARNING},
        ),
        (
            {"available": True, "passed": True, "reallocated_sectors": 0, "pending_sectors": 3},
            {"disk_bad_sectors": Severity.WARNING},
        ),
        (
            {"available": True, "passed": True, "reallocated_sectors": 100},
            {"failing_disk": Severity.BLOCKER},
        ),
        ({"available": False, "passed": None}, {"disk_smart_unavailable": Severity.WARNING}),
        (
            {"available": True, "passed": True, "power_on_hours": 50_000},
            {"disk_worn": Severity.WARNING},
        ),
        ({}, {}),
    ],
)
def test_disk_health(smart: dict[str, Any], expected: dict[str, Severity]) -> None:
    report = good_laptop()
    report["disks"][0]["smart"] = smart
    assert codes(report) == expected


def test_no_disk_and_small_disk() -> None:
    report = good_laptop()
    report["disks"] = []
    assert codes(report) == {"no_disk": Severity.BLOCKER}
    report["disks"] = [dict(good_laptop()["disks"][0], size_bytes=8 * 10**9)]
    assert codes(report) == {"disk_too_small": Severity.BLOCKER}


def test_disk_without_serial_still_needs_a_certificate() -> None:
    report = good_laptop()
    report["disks"].append({"name": "sdb", "model": "Generic", "size_bytes": 10**11})
    result = assess(report)
    assert codes(report) == {"disk_serial_unknown": Severity.WARNING}
    # The unknown disk can't slip past the erasure rule for want of a serial.
    assert result.disk_serials == {"S21PNXAG123456", "unknown-serial:sdb"}


def test_removable_media_need_no_certificate_but_are_pointed_out() -> None:
    report = good_laptop()
    stick = {"name": "sdb", "model": "USB3.0 Disk", "serial": None, "size_bytes": 15 * 10**9}
    report["disks"].append(stick | {"removable": True, "transport": "usb", "smart": {}})
    result = assess(report)
    assert codes(report) == {"removable_media": Severity.WARNING}
    assert result.disk_serials == {"S21PNXAG123456"}
    # Only a USB stick: the machine has no disk of its own.
    report["disks"] = report["disks"][1:]
    assert codes(report) == {"removable_media": Severity.WARNING, "no_disk": Severity.BLOCKER}


def test_rtc_findings() -> None:
    report = good_laptop()
    report["rtc"] = {"present": False, "wakealarm": False}
    assert codes(report) == {"no_rtc_wake": Severity.BLOCKER}
    report["rtc"] = {"present": True, "wakealarm": True, "max_ahead_s": 3600}
    assert codes(report) == {"rtc_short_horizon": Severity.WARNING}
    report["rtc"] = {"present": True, "wakealarm": True, "max_ahead_s": None}
    assert codes(report) == {}


def test_cpu_and_battery() -> None:
    report = good_laptop()
    report["cpu"] = {"model": "Intel(R) Atom(TM) N270", "cores": 1, "is_64bit": False}
    report["battery"] = {"present": True, "full_wh": 18.0, "design_wh": 48.0}
    result = assess(report)
    assert codes(report) == {
        "cpu_32bit": Severity.BLOCKER,
        "cpu_few_cores": Severity.WARNING,
        "battery_worn": Severity.WARNING,
    }
    assert result.inventory.battery_health_pct == 37.5


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("memory",), "8GB", "memory"),
        (("memory", "total_bytes"), "lots", "memory.total_bytes"),
        (("memory", "installed_bytes"), True, "memory.installed_bytes"),
        (("memory", "modules"), {"a": 1}, "memory.modules"),
        (("memory", "modules", 1), "4GB", "memory.modules[1]"),
        (("disks",), {"sda": {}}, "disks"),
        (("disks", 0, "smart"), [], "disks[0].smart"),
        (("disks", 0, "smart", "passed"), "yes", "disks[0].smart.passed"),
        (("disks", 0, "size_bytes"), -5, "disks[0].size_bytes"),
        (("camera", "present"), 1, "camera.present"),
        (("rtc", "max_ahead_s"), "1d", "rtc.max_ahead_s"),
        (("system", "serial"), 12345, "system.serial"),
        (("cpu", "is_64bit"), "yes", "cpu.is_64bit"),
        (("problems",), ["x"], "problems"),
    ],
)
def test_malformed_reports_name_the_field(path: tuple[Any, ...], value: Any, field: str) -> None:
    report = copy.deepcopy(good_laptop())
    target: Any = report
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ReportError) as caught:
        assess(report)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_report_must_be_an_object() -> None:
    with pytest.raises(ReportError, match="report"):
        assess([])  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [good_laptop, worn_desktop])
def test_blocker_codes_agree_with_the_edge(make: Any) -> None:
    report = make()
    assert set(telecare_issues(report)) == assess(report).blocker_codes & EDGE_CODES


def test_a_report_built_by_the_edge(tmp_path: Path) -> None:
    # The real edge builder on its fake ThinkPad: the contract between the two sides.
    report = t430(tmp_path).report()
    result = assess(report)
    assert result.inventory.manufacturer == "LENOVO"
    assert result.inventory.serial_number
    assert result.inventory.disks
    assert result.disk_serials  # the built-in disk, not the diagnostics USB stick
    assert all(not d.removable for d in result.inventory.fixed_disks)
    assert set(telecare_issues(report)) == result.blocker_codes & EDGE_CODES


def test_assessment_feeds_the_lifecycle() -> None:
    report = good_laptop()
    report["camera"] = {"present": False}
    result = assess(report)
    machine = MachineFacts(
        state=MachineState.READY,
        disk_serials=result.disk_serials,
        certified_disk_serials=result.disk_serials,
        diagnostics_present=True,
        telecare_blockers=result.blocker_codes,
    )
    params = TransitionParams(
        actor="luca", at=datetime(2026, 4, 1, tzinfo=UTC), beneficiary_id="B-1"
    )
    with pytest.raises(TransitionError) as caught:
        check_transition(machine, MachineState.DEPLOYED, params)
    assert caught.value.code == "telecare_blockers"
    assert "no_camera" in caught.value.message_it
