"""Health collectors backed by psutil and sysfs: CPU, load, memory, disk, temperatures,
battery, uptime, network and the outbox."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from .base import Metrics, metric_label

__all__ = [
    "BatteryCollector",
    "CpuCollector",
    "DiskCollector",
    "LoadCollector",
    "MemoryCollector",
    "NetworkCollector",
    "OutboxCollector",
    "TemperatureCollector",
    "UptimeCollector",
]

# Readings outside this range are sensor glitches (unwired inputs read -273 or 255 °C).
_PLAUSIBLE_C = (-40.0, 150.0)

# Interface names that are never a physical link, used only when sysfs can't tell us.
_VIRTUAL_PREFIXES = ("lo", "wg", "tun", "tap", "veth", "docker", "br-", "virbr", "ifb", "dummy")


class CpuCollector:
    """CPU utilisation since the previous sample, and the current clock."""

    name = "cpu"

    def __init__(self) -> None:
        # interval=None measures against the previous call instead of sleeping, which is what
        # an old CPU can afford; the first call has nothing to compare with, so make it now.
        psutil.cpu_percent(interval=None)

    def collect(self) -> Metrics:
        """``cpu.percent``, ``cpu.count`` and, where the kernel exposes it, ``cpu.freq_mhz``."""
        metrics: Metrics = {
            "cpu.percent": psutil.cpu_percent(interval=None),
            "cpu.count": float(psutil.cpu_count() or 0),
        }
        try:
            freq = psutil.cpu_freq()
        except (OSError, NotImplementedError):
            freq = None
        if freq is not None and freq.current > 0:
            metrics["cpu.freq_mhz"] = freq.current
        return metrics


class LoadCollector:
    """The 1, 5 and 15 minute load averages."""

    name = "load"

    def collect(self) -> Metrics:
        """``load.1``, ``load.5``, ``load.15``."""
        one, five, fifteen = os.getloadavg()
        return {"load.1": one, "load.5": five, "load.15": fifteen}


class MemoryCollector:
    """RAM and swap use."""

    name = "memory"

    def collect(self) -> Metrics:
        """``mem.*`` and ``swap.*`` totals and percentages."""
        vm = psutil.virtual_memory()
        swap = psutil.swap_memory()
        return {
            "mem.total_bytes": float(vm.total),
            "mem.available_bytes": float(vm.available),
            "mem.used_pct": vm.percent,
            "swap.total_bytes": float(swap.total),
            "swap.used_pct": swap.percent if swap.total else 0.0,
        }


class DiskCollector:
    """Space used on one mounted filesystem, as ``disk.<label>.*``."""

    def __init__(self, label: str, path: str) -> None:
        self.label = metric_label(label)
        self.path = path
        # One collector per filesystem, so a vanished USB mount is reported on its own.
        self.name = f"disk.{self.label}"

    def collect(self) -> Metrics:
        """``disk.<label>.used_pct``, ``.free_bytes``, ``.total_bytes``."""
        usage = psutil.disk_usage(self.path)
        prefix = f"disk.{self.label}"
        return {
            f"{prefix}.used_pct": usage.percent,
            f"{prefix}.free_bytes": float(usage.free),
            f"{prefix}.total_bytes": float(usage.total),
        }


TemperatureReader = Callable[[], Mapping[str, Sequence[Any]]]


def _psutil_temperatures() -> Mapping[str, Sequence[Any]]:
    reader = getattr(psutil, "sensors_temperatures", None)  # absent on some platforms
    return reader() if reader is not None else {}


class TemperatureCollector:
    """The hottest sensor overall and per chip (``temp.max_c``, ``temp.<chip>.max_c``)."""

    name = "temp"

    def __init__(self, read: TemperatureReader = _psutil_temperatures) -> None:
        self._read = read

    def collect(self) -> Metrics:
        """Max temperature per chip and overall; nothing at all on a board without sensors."""
        metrics: Metrics = {}
        hottest: float | None = None
        for chip, entries in self._read().items():
            readings = [
                float(e.current)
                for e in entries
                if e.current is not None and _PLAUSIBLE_C[0] < e.current < _PLAUSIBLE_C[1]
            ]
            if not readings:
                continue
            top = max(readings)
            key = f"temp.{metric_label(chip)}.max_c"
            # Two chips can share a driver name (two disks on drivetemp): keep the hotter.
            metrics[key] = max(top, metrics.get(key, top))
            hottest = top if hottest is None else max(hottest, top)
        if hottest is not None:
            metrics["temp.max_c"] = hottest
        return metrics


BatteryReader = Callable[[], Any]


class BatteryCollector:
    """Charge and mains state of a laptop battery; nothing on a desktop."""

    name = "battery"

    def __init__(self, read: BatteryReader = psutil.sensors_battery) -> None:
        self._read = read

    def collect(self) -> Metrics:
        """``battery.pct``, ``battery.plugged`` and ``battery.secs_left`` when it is known."""
        battery = self._read()
        if battery is None:
            return {}
        metrics: Metrics = {"battery.pct": float(battery.percent)}
        if battery.power_plugged is not None:
            metrics["battery.plugged"] = 1.0 if battery.power_plugged else 0.0
        # psutil uses negative sentinels for "unlimited" (on mains) and "unknown".
        if isinstance(battery.secsleft, int | float) and battery.secsleft >= 0:
            metrics["battery.secs_left"] = float(battery.secsleft)
        return metrics


class UptimeCollector:
    """Seconds since boot."""

    name = "uptime"

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        boot_time: Callable[[], float] = psutil.boot_time,
    ) -> None:
        self._clock = clock
        self._boot_time = boot_time

    def collect(self) -> Metrics:
        """``uptime_s``."""
        return {"uptime_s": max(self._clock() - self._boot_time(), 0.0)}


class NetworkCollector:
    """Traffic counters of the physical interfaces and whether any link is up."""

    name = "net"

    def __init__(
        self,
        sysfs: Path = Path("/sys"),
        counters: Callable[[], Mapping[str, Any]] = lambda: psutil.net_io_counters(pernic=True),
    ) -> None:
        self._net_dir = sysfs / "class" / "net"
        self._counters = counters

    def _physical(self, names: Sequence[str]) -> dict[str, bool]:
        """Physical interface name -> link up, from sysfs when it is there."""
        links: dict[str, bool] = {}
        if self._net_dir.is_dir():
            for entry in sorted(self._net_dir.iterdir()):
                # Only real adapters have a ``device`` link: this skips lo, bridges, the
                # WireGuard tunnel and the like, which say nothing about the home's network.
                if not (entry / "device").exists():
                    continue
                try:
                    state = (entry / "operstate").read_text().strip()
                except OSError:
                    state = "unknown"
                links[entry.name] = state == "up"
            return links
        stats = psutil.net_if_stats()
        for name in names:
            if not name.startswith(_VIRTUAL_PREFIXES) and name in stats:
                links[name] = bool(stats[name].isup)
        return links

    def collect(self) -> Metrics:
        """``net.rx_bytes``/``tx_bytes``/errors/drops over physical NICs, ``net.link_up``."""
        counters = self._counters()
        links = self._physical(list(counters))
        totals = dict.fromkeys(("rx_bytes", "tx_bytes", "rx_errors", "tx_errors", "rx_dropped"), 0)
        for name in links:
            c = counters.get(name)
            if c is None:
                continue
            totals["rx_bytes"] += c.bytes_recv
            totals["tx_bytes"] += c.bytes_sent
            totals["rx_errors"] += c.errin
            totals["tx_errors"] += c.errout
            totals["rx_dropped"] += c.dropin
        metrics: Metrics = {f"net.{k}": float(v) for k, v in totals.items()}
        metrics["net.links_up"] = float(sum(links.values()))
        metrics["net.link_up"] = 1.0 if any(links.values()) else 0.0
        return metrics


class OutboxCollector:
    """How many messages wait in the on-disk outbox for the broker."""

    name = "outbox"

    def __init__(self, depth: Callable[[], int]) -> None:
        self._depth = depth

    def collect(self) -> Metrics:
        """``outbox.depth``."""
        return {"outbox.depth": float(self._depth())}
