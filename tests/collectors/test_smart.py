"""SMART parsing from recorded smartctl JSON, and the caching SMART collector."""

from __future__ import annotations

import json

import pytest

from edge.collectors import CommandTimeout, default_runner
from edge.collectors.runner import find_tool
from edge.collectors.smart import (
    ScannedDevice,
    SmartCollector,
    SmartHealth,
    parse_smart,
    query_smart,
    scan_smart,
)
from tests.collectors.collector_fakes import FakeRunner, result
from tests.collectors.smart_samples import (
    ATA_FAILING,
    ATA_HEALTHY,
    NO_SMART,
    NVME,
    SCAN,
    STANDBY,
    USB_UNKNOWN_BRIDGE,
)

SDA = ("smartctl", "-j", "-H", "-A", "-i", "-d", "sat", "-n", "standby", "/dev/sda")
NVME0 = ("smartctl", "-j", "-H", "-A", "-i", "-d", "nvme", "-n", "standby", "/dev/nvme0")
SCAN_ARGV = ("smartctl", "--scan", "-j")


def test_parse_healthy_ata() -> None:
    health = parse_smart(json.loads(ATA_HEALTHY))
    assert health == SmartHealth(
        device="/dev/sda",
        available=True,
        passed=True,
        power_on_hours=12345,
        temperature_c=35.0,
        reallocated_sectors=0,
        pending_sectors=0,
        model="WDC WD5000AAKX-60U6AA0",
        serial="WD-WCC2EUP12345",
    )
    assert not health.failing


def test_parse_failing_ata_with_packed_temperature() -> None:
    health = parse_smart(json.loads(ATA_FAILING), "/dev/sda")
    assert health.available and health.failing
    assert health.passed is False
    assert health.power_on_hours == 61234
    assert health.temperature_c == 42.0
    assert health.reallocated_sectors == 1234
    assert health.pending_sectors == 56


def test_parse_failing_verdict_from_exit_status_alone() -> None:
    doc = json.loads(ATA_FAILING)
    del doc["smart_status"]
    assert parse_smart(doc).passed is False


def test_parse_nvme() -> None:
    health = parse_smart(json.loads(NVME))
    assert (health.passed, health.power_on_hours, health.temperature_c) == (True, 6021, 41.0)
    assert health.reallocated_sectors == 0  # media errors stand in for NVMe
    assert health.pending_sectors is None


def test_parse_unreadable_disks() -> None:
    usb = parse_smart(json.loads(USB_UNKNOWN_BRIDGE), "/dev/sdb")
    assert not usb.available and not usb.standby
    assert usb.message is not None and "Unknown USB bridge" in usb.message
    standby = parse_smart(json.loads(STANDBY))
    assert standby.standby and not standby.available
    none = parse_smart(json.loads(NO_SMART))
    assert not none.available
    assert none.model == "QEMU HARDDISK"
    assert none.message is not None and "lacks SMART capability" in none.message


def test_scan_and_query_through_the_runner() -> None:
    run = FakeRunner(
        {
            SCAN_ARGV: result(SCAN_ARGV, SCAN),
            ("smartctl", "-j", "-H", "-A", "-i", "/dev/sda"): result(
                [], ATA_FAILING, returncode=88
            ),
            ("smartctl", "-j", "-H", "-A", "-i", "/dev/sdx"): result([], "Segmentation fault", 139),
        }
    )
    assert scan_smart(run) == [
        ScannedDevice("/dev/sda", "sat"),
        ScannedDevice("/dev/nvme0", "nvme"),
    ]
    # A non-zero exit status still carries a full report.
    assert query_smart(run, "/dev/sda").failing
    garbled = query_smart(run, "/dev/sdx")
    assert not garbled.available
    assert garbled.message == "smartctl: output is not JSON (Segmentation fault)"


def test_scan_failures_raise() -> None:
    with pytest.raises(CommandTimeout):
        scan_smart(FakeRunner({SCAN_ARGV: CommandTimeout("smartctl: no answer within 15 s")}))
    with pytest.raises(ValueError, match="not JSON"):
        scan_smart(FakeRunner({SCAN_ARGV: result(SCAN_ARGV, "")}))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_collector_metrics_and_cache() -> None:
    run = FakeRunner(
        {
            SCAN_ARGV: result(SCAN_ARGV, SCAN),
            SDA: result(SDA, ATA_FAILING, returncode=88),
            NVME0: result(NVME0, NVME),
        }
    )
    clock = Clock()
    collector = SmartCollector(run, min_interval_s=600, monotonic=clock)
    metrics = collector.collect()
    assert metrics == {
        "smart.disks": 2.0,
        "smart.unreadable_disks": 0.0,
        "smart.failing_disks": 1.0,
        "smart.ok": 0.0,
        "smart.max_temp_c": 42.0,
        "smart.sda.passed": 0.0,
        "smart.sda.power_on_hours": 61234.0,
        "smart.sda.temp_c": 42.0,
        "smart.sda.reallocated_sectors": 1234.0,
        "smart.sda.pending_sectors": 56.0,
        "smart.nvme0.passed": 1.0,
        "smart.nvme0.power_on_hours": 6021.0,
        "smart.nvme0.temp_c": 41.0,
        "smart.nvme0.reallocated_sectors": 0.0,
    }
    assert len(run.calls) == 3
    clock.now += 599
    assert collector.collect() == metrics
    assert len(run.calls) == 3  # served from the cache, no disk touched
    clock.now += 2
    collector.collect()
    assert len(run.calls) == 6


def test_collector_keeps_last_verdict_for_a_sleeping_disk() -> None:
    run = FakeRunner(
        {
            SCAN_ARGV: result(SCAN_ARGV, SCAN),
            SDA: result(SDA, ATA_HEALTHY),
            NVME0: result(NVME0, NVME),
        }
    )
    clock = Clock()
    collector = SmartCollector(run, min_interval_s=60, monotonic=clock)
    first = collector.collect()
    run.answers[SDA] = result(SDA, STANDBY, returncode=2)
    clock.now += 61
    assert collector.collect() == first


def test_collector_counts_a_disk_asleep_since_start_as_unreadable() -> None:
    scan = json.dumps({"devices": [{"name": "/dev/sda", "type": "sat"}]})
    run = FakeRunner({SCAN_ARGV: result(SCAN_ARGV, scan), SDA: result(SDA, STANDBY, returncode=2)})
    assert SmartCollector(run).collect() == {
        "smart.disks": 0.0,
        "smart.unreadable_disks": 1.0,
        "smart.failing_disks": 0.0,
    }


def test_collector_on_this_machine() -> None:
    smartctl = find_tool("smartctl")
    if smartctl is None:
        pytest.skip("smartctl is not installed here")
    metrics = SmartCollector(default_runner, smartctl).collect()
    assert metrics["smart.failing_disks"] >= 0
