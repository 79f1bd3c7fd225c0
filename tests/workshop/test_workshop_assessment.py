"""Assessing an edge diagnose report: inventory, blockers, warnings and their fixes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
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


def good_laptop() -> dict[str, Any]:
    """A report of a laptop that is fit for a home, as the edge's diagnose would send it."""
    return {
        "system": {
            "manufacturer": "LENOVO",
            "product_name": "ThinkPad T440",
            "serial_number": "PB0ABCD",
        },
        "cpu": {"model": "Intel(R) Core(TM) i5-4300U", "cores": 2, "arch": "x86_64"},
        "memory": {
            "total_bytes": 8 * GIB,
            "modules": [{"size_bytes": 4 * GIB, "type": "DDR3"}, {"size_bytes": 4 * GIB}],
        },
        "disks": [
            {
                "name": "sda",
                "model": "Samsung SSD 850 EVO 250GB",
                "serial": "S21PNXAG123456",
                "size_bytes": 250_059_350_016,
                "smart": {
                    "available": True,
                    "passed": True,
                    "power_on_hours": 12_000,
                    "reallocated_sectors": 0,
                },
            }
        ],
        "camera": {"present": True, "working": True},
        "microphone": {"present": True, "working": True},
        "battery": {"present": True, "health_pct": 81.5},
        "rtc": {"present": True, "wakealarm": True, "max_ahead_s": 86_400},
        "problems": {},
    }


def codes(report: dict[str, Any], thresholds: Thresholds | None = None) -> dict[str, Severity]:
    return {f.code: f.severity for f in assess(report, thresholds).findings}


def test_a_good_machine_has_no_findings_and_a_full_inventory() -> None:
    result = assess(good_laptop())
    assert result.findings == ()
    assert result.suitable_for_telecare
    inv = result.inventory
    assert (inv.manufacturer, inv.product, inv.serial_number) == (
        "LENOVO",
        "ThinkPad T440",
        "PB0ABCD",
    )
    assert inv.cpu_cores == 2 and inv.cpu_64bit is True
    assert inv.memory_bytes == 8 * GIB and inv.memory_modules == 2 and inv.memory_type == "DDR3"
    assert inv.disks is not None and inv.disks[0].serial == "S21PNXAG123456"
    assert inv.battery_present and inv.battery_health_pct == 81.5
    assert inv.rtc_wakealarm and inv.rtc_max_ahead_s == 86_400
    assert result.disk_serials == {"S21PNXAG123456"}


def test_a_worn_out_desktop() -> None:
    report = good_laptop()
    report["battery"] = None  # a desktop: no battery is not a problem
    report["memory"] = {"total_bytes": 1 * GIB, "modules": [{"size_bytes": GIB, "type": "DDR2"}]}
    report["camera"] = {"present": False, "working": None}
    report["microphone"] = {"present": True, "working": False}
    report["disks"][0]["smart"] = {
        "available": True,
        "passed": False,
        "power_on_hours": 61_000,
        "reallocated_sectors": 12,
    }
    report["rtc"] = {"present": True, "wakealarm": False}
    result = assess(report)
    found = {f.code: f for f in result.findings}
    assert set(found) == {
        "camera_missing",
        "microphone_not_working",
        "memory_too_low",
        "disk_failing",
        "disk_reallocated_sectors",
        "disk_worn",
        "rtc_no_wake",
    }
    assert result.blocker_codes == {
        "camera_missing",
        "microphone_not_working",
        "memory_too_low",
        "disk_failing",
        "rtc_no_wake",
    }
    assert not result.suitable_for_telecare
    # Blockers come first, so the page shows what stops the machine at the top.
    severities = [f.severity for f in result.findings]
    assert severities == sorted(severities, key=lambda s: s is not Severity.BLOCKER)
    # Every finding says what to do, in both languages.
    for finding in result.findings:
        assert finding.message_it and finding.message_en and finding.fix_it and finding.fix_en
    assert "webcam USB" in found["camera_missing"].fix_it
    assert "DDR2" in found["memory_too_low"].fix_it and "4.0 GiB" in found["memory_too_low"].fix_en
    assert "S21PNXAG123456" in found["disk_failing"].fix_en
    assert found["disk_failing"].subject == "S21PNXAG123456"
    assert "BIOS" in found["rtc_no_wake"].fix_it
    assert result.inventory.battery_present is False


def test_missing_sections_mean_unknown_not_absent() -> None:
    result = assess({"system": {"manufacturer": "HP"}})
    found = {f.code: f.severity for f in result.findings}
    assert found == {
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


def test_present_but_untested_devices() -> None:
    report = good_laptop()
    report["camera"] = {"present": True}
    report["microphone"] = {"present": True, "working": None}
    assert codes(report) == {
        "camera_untested": Severity.WARNING,
        "microphone_untested": Severity.WARNING,
    }


def test_memory_thresholds_are_configurable() -> None:
    report = good_laptop()
    report["memory"] = {"total_bytes": 3 * GIB}
    assert codes(report) == {"memory_low": Severity.WARNING}
    strict = Thresholds(min_memory_bytes=4 * GIB, recommended_memory_bytes=8 * GIB)
    assert codes(report, strict) == {"memory_too_low": Severity.BLOCKER}
    report["memory"] = {"total_bytes": 2 * GIB}  # exactly the minimum is enough
    assert "memory_too_low" not in codes(report)


@pytest.mark.parametrize(
    ("smart", "expected"),
    [
        (
            {"available": True, "passed": True, "reallocated_sectors": 8},
            {"disk_reallocated_sectors": Severity.WARNING},
        ),
        (
            {"available": True, "passed": True, "reallocated_sectors": 100},
            {"disk_reallocated_sectors": Severity.BLOCKER},
        ),
        ({"available": False}, {"disk_smart_unavailable": Severity.WARNING}),
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


def test_rtc_findings() -> None:
    report = good_laptop()
    report["rtc"] = {"present": False}
    assert codes(report) == {"rtc_missing": Severity.BLOCKER}
    report["rtc"] = {"present": True, "wakealarm": True, "max_ahead_s": 3600}
    assert codes(report) == {"rtc_short_horizon": Severity.WARNING}
    report["rtc"] = {"present": True, "wakealarm": True}  # horizon not measured
    assert codes(report) == {}


def test_cpu_and_battery_warnings() -> None:
    report = good_laptop()
    report["cpu"] = {"model": "Intel(R) Atom(TM) N270", "cores": 1, "flags": ["fpu", "sse2"]}
    report["battery"] = {"energy_full_wh": 18.0, "energy_full_design_wh": 48.0}
    result = assess(report)
    assert {f.code for f in result.findings} == {"cpu_32bit", "cpu_few_cores", "battery_worn"}
    assert result.inventory.battery_health_pct == 37.5
    assert result.suitable_for_telecare
    report["cpu"] = {"arch": "i686"}
    assert "cpu_32bit" in codes(report)


def test_edge_problems_become_warnings() -> None:
    report = good_laptop()
    report["problems"] = {"fan": "CPU fan spins slowly", "thermal": {"message": "CPU at 92 °C"}}
    found = [f for f in assess(report).findings if f.code == "edge_problem"]
    assert [(f.subject, f.message_en) for f in found] == [
        ("fan", "The diagnostics report: CPU fan spins slowly"),
        ("thermal", "The diagnostics report: CPU at 92 °C"),
    ]
    report["problems"] = ["no network"]
    assert [f.subject for f in assess(report).findings] == ["no network"]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("memory",), "8GB", "memory"),
        (("memory", "total_bytes"), "lots", "memory.total_bytes"),
        (("memory", "total_bytes"), True, "memory.total_bytes"),
        (("memory", "modules"), {"a": 1}, "memory.modules"),
        (("disks",), {"sda": {}}, "disks"),
        (("disks", 0, "smart", "passed"), "yes", "disks[0].smart.passed"),
        (("disks", 0, "size_bytes"), -5, "disks[0].size_bytes"),
        (("camera", "present"), 1, "camera.present"),
        (("rtc", "max_ahead_s"), "1d", "rtc.max_ahead_s"),
        (("system", "serial_number"), 12345, "system.serial_number"),
        (("problems",), 3, "problems"),
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
    assert "camera_missing" in caught.value.message_it
