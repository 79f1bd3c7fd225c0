"""The psutil/sysfs collectors, on this machine and on injected readings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from edge.collectors.system import (
    BatteryCollector,
    CpuCollector,
    DiskCollector,
    LoadCollector,
    MemoryCollector,
    NetworkCollector,
    OutboxCollector,
    TemperatureCollector,
    UptimeCollector,
)


def test_cpu_load_memory_on_this_machine() -> None:
    cpu = CpuCollector().collect()
    assert 0.0 <= cpu["cpu.percent"] <= 100.0
    assert cpu["cpu.count"] >= 1
    load = LoadCollector().collect()
    assert set(load) == {"load.1", "load.5", "load.15"}
    mem = MemoryCollector().collect()
    assert mem["mem.total_bytes"] >= mem["mem.available_bytes"] > 0
    assert 0.0 <= mem["swap.used_pct"] <= 100.0


def test_disk_usage_and_missing_mount(tmp_path: Path) -> None:
    disk = DiskCollector("Root", str(tmp_path))
    assert disk.name == "disk.root"
    metrics = disk.collect()
    assert metrics["disk.root.total_bytes"] >= metrics["disk.root.free_bytes"]
    assert 0.0 <= metrics["disk.root.used_pct"] <= 100.0
    with pytest.raises(FileNotFoundError):
        DiskCollector("usb", str(tmp_path / "unmounted")).collect()


def _temp(current: float | None) -> Any:
    return SimpleNamespace(label="", current=current, high=None, critical=None)


def test_temperatures_per_chip_and_max_ignoring_glitches() -> None:
    readings = {
        "coretemp": [_temp(48.0), _temp(55.0), _temp(51.0)],
        "acpitz": [_temp(27.8), _temp(-273.0)],
        "drivetemp": [_temp(38.0)],
        "nouveau": [_temp(255.0)],  # an unwired input
        "empty": [],
    }
    metrics = TemperatureCollector(read=lambda: readings).collect()
    assert metrics == {
        "temp.coretemp.max_c": 55.0,
        "temp.acpitz.max_c": 27.8,
        "temp.drivetemp.max_c": 38.0,
        "temp.max_c": 55.0,
    }


def test_no_temperature_sensors_is_no_metrics() -> None:
    assert TemperatureCollector(read=lambda: {}).collect() == {}


def test_battery_on_battery_on_mains_and_absent() -> None:
    discharging = SimpleNamespace(percent=81.5, secsleft=5400, power_plugged=False)
    assert BatteryCollector(read=lambda: discharging).collect() == {
        "battery.pct": 81.5,
        "battery.plugged": 0.0,
        "battery.secs_left": 5400.0,
    }
    charging = SimpleNamespace(
        percent=99.0, secsleft=psutil.POWER_TIME_UNLIMITED, power_plugged=True
    )
    assert BatteryCollector(read=lambda: charging).collect() == {
        "battery.pct": 99.0,
        "battery.plugged": 1.0,
    }
    assert BatteryCollector(read=lambda: None).collect() == {}


def test_uptime() -> None:
    up = UptimeCollector(clock=lambda: 1_000_500.0, boot_time=lambda: 1_000_000.0)
    assert up.collect() == {"uptime_s": 500.0}
    assert UptimeCollector().collect()["uptime_s"] > 0


def _nic(tree: Path, name: str, operstate: str, physical: bool) -> None:
    nic = tree / "class" / "net" / name
    nic.mkdir(parents=True)
    (nic / "operstate").write_text(f"{operstate}\n")
    if physical:
        (nic / "device").mkdir()


def _counters(rx: int, tx: int, errin: int = 0) -> Any:
    return SimpleNamespace(bytes_recv=rx, bytes_sent=tx, errin=errin, errout=0, dropin=1, dropout=0)


def test_network_counts_physical_nics_only(tmp_path: Path) -> None:
    _nic(tmp_path, "lo", "unknown", physical=False)
    _nic(tmp_path, "enp0s25", "down", physical=True)
    _nic(tmp_path, "wlp3s0", "up", physical=True)
    _nic(tmp_path, "wg0", "unknown", physical=False)
    counters = {
        "lo": _counters(10_000, 10_000),
        "enp0s25": _counters(100, 200, errin=2),
        "wlp3s0": _counters(5_000, 7_000),
        "wg0": _counters(999, 999),
    }
    metrics = NetworkCollector(sysfs=tmp_path, counters=lambda: counters).collect()
    assert metrics == {
        "net.rx_bytes": 5_100.0,
        "net.tx_bytes": 7_200.0,
        "net.rx_errors": 2.0,
        "net.tx_errors": 0.0,
        "net.rx_dropped": 2.0,
        "net.links_up": 1.0,
        "net.link_up": 1.0,
    }


def test_network_link_down(tmp_path: Path) -> None:
    _nic(tmp_path, "eth0", "down", physical=True)
    metrics = NetworkCollector(sysfs=tmp_path, counters=lambda: {"eth0": _counters(1, 2)}).collect()
    assert metrics["net.link_up"] == 0.0
    assert metrics["net.rx_bytes"] == 1.0


def test_network_on_this_machine() -> None:
    metrics = NetworkCollector().collect()
    assert metrics["net.link_up"] in (0.0, 1.0)
    assert metrics["net.rx_bytes"] >= 0


def test_outbox_depth() -> None:
    assert OutboxCollector(lambda: 42).collect() == {"outbox.depth": 42.0}
