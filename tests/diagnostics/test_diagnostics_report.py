"""build_report on a fake ThinkPad: every section, and how each one degrades on its own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from edge.collectors.runner import CommandResult, CommandTimeout
from edge.diagnostics import telecare_issues
from tests.collectors.collector_fakes import result
from tests.diagnostics.machine import (
    DMIDECODE_ARGV,
    LSBLK_ARGV,
    SMART_SDA,
    SMART_SDB,
    Machine,
    t430,
    write,
)
from tests.diagnostics.test_dmidecode import DMIDECODE_DESKTOP

NOW = 1_709_288_553.0


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return t430(tmp_path)


def _report(m: Machine, *, test_devices: bool = False) -> dict[str, Any]:
    return m.report(clock=NOW, test_devices=test_devices)


def test_full_report_of_a_thinkpad(machine: Machine) -> None:
    report = _report(machine)
    json.dumps(report)  # the report must be plain JSON
    assert report["v"] == 1
    assert report["generated_at"] == NOW
    assert report["tool_version"]
    assert report["system"]["product"] == "2349KV5"
    assert report["system"]["serial"] == "R9ABCDE"
    assert report["board"]["serial"] == "1ZJ8K27G0AB"
    assert report["bios"] == {
        "vendor": "LENOVO",
        "version": "G1ETB2WW (2.72 )",
        "date": "2019-02-25",
    }
    assert report["cpu"] == {
        "model": "Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz",
        "vendor": "GenuineIntel",
        "cores": 2,
        "threads": 4,
        "mhz": 3300,
        "is_64bit": True,
        "arch": "x86_64",
    }
    memory = report["memory"]
    assert memory["total_bytes"] == 3863892 * 1024
    assert memory["installed_bytes"] == 4 * 1024**3
    assert memory["slots"] == 2 and len(memory["modules"]) == 2
    assert [d["name"] for d in report["disks"]] == ["sda", "sdb"]  # no DVD, no zram
    sda, sdb = report["disks"]
    assert sda["size_bytes"] == 500107862016
    assert sda["rotational"] is True and sda["transport"] == "sata"
    assert sda["smart"] == {
        "available": True,
        "passed": True,
        "power_on_hours": 12345,
        "reallocated_sectors": 0,
        "pending_sectors": 0,
        "temperature_c": 35.0,
        "message": None,
    }
    assert sdb["removable"] is True
    assert sdb["smart"]["available"] is False
    assert "Unknown USB bridge" in sdb["smart"]["message"]
    assert report["network"] == [
        {"name": "enp0s25", "mac": "3c:97:0e:12:34:56", "driver": "e1000e", "speed_mbps": 1000,
         "wireless": False, "link_up": True},
        {"name": "wlp3s0", "mac": "a0:88:b4:65:43:21", "driver": "iwlwifi", "speed_mbps": None,
         "wireless": True, "link_up": False},
    ]  # fmt: skip
    battery = report["battery"]
    assert (battery["design_wh"], battery["full_wh"], battery["health_pct"]) == (56.16, 41.2, 73.4)
    assert battery["count"] == 1  # the wireless mouse's battery is not the laptop's
    assert battery["cycle_count"] == 412
    camera = report["camera"]
    assert camera["present"] is True and camera["working"] is None
    assert [(d["node"], d["index"]) for d in camera["devices"]] == [
        ("/dev/video0", 0),
        ("/dev/video1", 1),
    ]
    mic = report["microphone"]
    assert mic["present"] is True and mic["working"] is None
    assert mic["cards"] == [
        {"index": 0, "id": "PCH", "driver": "HDA-Intel", "name": "HDA Intel PCH",
         "capture_devices": [0], "playback_devices": [0, 3]},
    ]  # fmt: skip
    assert report["rtc"] == {
        "present": True,
        "name": "rtc_cmos",
        "wakealarm": True,
        "wakeup_enabled": True,
        "max_ahead_s": 28 * 86400,
        "local_time": False,
        "battery_ok": True,
    }
    assert report["problems"] == {}
    assert telecare_issues(report) == []
    # No capture unless asked: nothing but the inventory tools ran.
    assert {call[0] for call in machine.runner.calls} == {"dmidecode", "lsblk", "smartctl", "dmesg"}
    assert machine.runner.calls.count(DMIDECODE_ARGV) == 1


def test_dmidecode_denied_falls_back_to_sysfs(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.runner.answers[DMIDECODE_ARGV] = result(
        DMIDECODE_ARGV, "", 1, "/sys/firmware/dmi/tables/smbios_entry_point: Permission denied\n"
    )
    serial = machine.sysfs / "class" / "dmi" / "id" / "product_serial"
    real_read_text = Path.read_text

    def read_text(path: Path, *args: Any, **kwargs: Any) -> str:
        # Root can read anything in a temp dir; the kernel makes this file root-only.
        if path == serial:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    report = _report(machine)
    assert report["system"]["product"] == "2349KV5"
    assert report["system"]["serial"] is None
    assert report["system"]["uuid"] == "4c4c4544-0042-3510-8052-b4c04f4b4d31"
    assert report["bios"]["date"] == "2019-02-25"
    assert report["board"]["version"] is None
    problems = report["problems"]
    assert "Permission denied" in problems["system"]
    assert (
        "read from" in problems["system"]
        and "product_serial: permission denied" in problems["system"]
    )
    assert problems["memory"].startswith("modules unknown: dmidecode:")
    assert report["memory"]["modules"] is None
    assert report["memory"]["total_bytes"] == 3863892 * 1024


def test_missing_tools_degrade_field_by_field(machine: Machine) -> None:
    for argv in (DMIDECODE_ARGV, LSBLK_ARGV, SMART_SDA, SMART_SDB, ("dmesg",)):
        del machine.runner.answers[argv]
    report = _report(machine)
    # /sys/block stands in for lsblk; SMART is said to be missing once, not per disk.
    assert [d["name"] for d in report["disks"]] == ["sda"]
    sda = report["disks"][0]
    assert sda["size_bytes"] == 976773168 * 512
    assert sda["model"] == "WDC WD5000AAKX-60U6AA0"
    assert sda["smart"]["available"] is False
    assert sda["smart"]["message"] == "smartctl: not installed"
    assert (
        report["problems"]["disks"]
        == "lsblk: not installed; read from /sys/block; smartctl: not installed"
    )
    assert report["system"]["manufacturer"] == "LENOVO"
    # No dmesg, and the FADT is not there: the alarm range is unknown, and said so.
    assert report["rtc"]["max_ahead_s"] is None
    assert "alarm range unknown" in report["problems"]["rtc"]


@pytest.mark.parametrize(
    ("day", "month", "ahead"), [(0, 0, 86400), (0x7D, 0, 28 * 86400), (0x7D, 0x7E, 365 * 86400)]
)
def test_alarm_range_from_the_acpi_fadt(machine: Machine, day: int, month: int, ahead: int) -> None:
    del machine.runner.answers[("dmesg",)]
    fadt = bytearray(b"FACP" + bytes(252))
    fadt[106], fadt[107] = day, month
    write(machine.sysfs / "firmware" / "acpi" / "tables" / "FACP", bytes(fadt))
    report = _report(machine)
    assert report["rtc"]["max_ahead_s"] == ahead
    assert "rtc" not in report["problems"]


def test_one_broken_section_does_not_stop_the_others(machine: Machine) -> None:
    (machine.proc / "cpuinfo").unlink()
    machine.runner.answers[LSBLK_ARGV] = CommandTimeout("lsblk: no answer within 15 s")
    report = _report(machine)
    assert report["cpu"] == dict.fromkeys(
        ("model", "vendor", "cores", "threads", "mhz", "is_64bit", "arch")
    )
    assert report["problems"]["cpu"].startswith("FileNotFoundError: ")
    assert report["problems"]["disks"].startswith(
        "lsblk: no answer within 15 s; read from /sys/block"
    )
    assert report["memory"]["installed_bytes"] == 4 * 1024**3
    assert report["camera"]["present"] is True


def test_old_lsblk_strings(machine: Machine) -> None:
    old = {"blockdevices": [{"name": "sda", "model": "ST3250318AS     ", "serial": "9VY12345",
                             "size": "250059350016", "rota": "1", "type": "disk", "tran": "sata",
                             "rm": "0"}]}  # fmt: skip
    machine.runner.answers[LSBLK_ARGV] = result(LSBLK_ARGV, json.dumps(old))
    (disk,) = _report(machine)["disks"]
    assert (disk["model"], disk["size_bytes"], disk["rotational"], disk["removable"]) == (
        "ST3250318AS", 250059350016, True, False,
    )  # fmt: skip


def test_a_desktop_without_battery_camera_microphone_or_rtc(machine: Machine) -> None:
    for sub in ("class/power_supply/BAT0", "class/video4linux", "class/rtc"):
        shutil.rmtree(machine.sysfs / sub)
    for node in ("video0", "video1"):
        (machine.dev / node).unlink()
    write(machine.proc / "asound" / "pcm", "00-03: HDMI 0 : HDMI 0 : playback 1\n")
    report = _report(machine)
    assert report["battery"] is None
    assert report["camera"] == {"present": False, "devices": [], "working": None}
    assert report["microphone"]["present"] is False
    assert report["rtc"]["present"] is False
    assert report["problems"] == {}
    assert telecare_issues(report) == ["no_camera", "no_microphone", "no_rtc_wake"]


def _writes_to_last_arg(
    payload: bytes, returncode: int = 0, stderr: str = ""
) -> Callable[[Sequence[str]], CommandResult]:
    def run(argv: Sequence[str]) -> CommandResult:
        target = argv[-1].removeprefix("--stream-to=")
        if payload:
            Path(target).write_bytes(payload)
        return CommandResult(tuple(argv), returncode, "", stderr)

    return run


class _Capture:
    """Answers v4l2-ctl/arecord captures by writing the given bytes where they were asked to."""

    def __init__(self, machine: Machine, camera: bytes | None, mic: bytes | None) -> None:
        self.machine = machine
        self.camera, self.mic = camera, mic
        self.inner = machine.runner

    def __call__(self, argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
        if argv[0] == "v4l2-ctl" and self.camera is not None:
            return _writes_to_last_arg(
                self.camera, 0 if self.camera else 1, "VIDIOC_STREAMON: failed"
            )(argv)
        if argv[0] == "arecord" and self.mic is not None:
            return _writes_to_last_arg(self.mic)(argv)
        return self.inner(argv, timeout=timeout)


def test_device_checks_when_asked(machine: Machine) -> None:
    run = _Capture(machine, camera=b"\x10\x80" * 1000, mic=b"\x00\x00\x03\x00\xfd\xff" * 100)
    report = machine.report(run=run, clock=NOW, test_devices=True)
    assert report["camera"]["working"] is True
    assert report["microphone"]["working"] is True
    calls = [c for c in machine.runner.calls if c[0] in ("v4l2-ctl", "arecord")]
    assert calls == []  # captured by the wrapper, not the recorded tools


def test_device_checks_failures(machine: Machine) -> None:
    run = _Capture(machine, camera=b"", mic=b"\x00" * 64000)
    report = machine.report(run=run, clock=NOW, test_devices=True)
    assert report["camera"]["working"] is False
    assert report["problems"]["camera"] == "v4l2-ctl: VIDIOC_STREAMON: failed"
    assert report["microphone"]["working"] is False
    assert report["problems"]["microphone"] == "recorded only silence: muted or unplugged?"
    assert telecare_issues(report) == ["camera_not_working", "microphone_not_working"]


def test_device_checks_without_tools_stay_untested(machine: Machine) -> None:
    report = _report(machine, test_devices=True)
    assert report["camera"]["working"] is None
    assert report["microphone"]["working"] is None
    assert "neither v4l2-ctl nor ffmpeg" in report["problems"]["camera"]
    assert report["problems"]["microphone"] == "not tested: arecord is not installed"
    tried = [c[0] for c in machine.runner.calls if c[0] in ("v4l2-ctl", "ffmpeg", "arecord")]
    assert tried == ["v4l2-ctl", "ffmpeg", "arecord"]


def test_telecare_issues_flag_failing_disk_low_memory_and_32bit() -> None:
    report: dict[str, Any] = {
        "camera": {"present": True, "working": None},
        "microphone": {"present": True, "working": True},
        "disks": [{"smart": {"passed": True}}, {"smart": {"passed": False}}],
        "memory": {"installed_bytes": 1024**3, "total_bytes": 1000 * 1024**2},
        "cpu": {"is_64bit": False},
        "rtc": {"present": True, "wakealarm": True},
    }
    assert telecare_issues(report) == ["failing_disk", "low_memory", "cpu_32bit"]
    # Without modules, MemTotal is judged with room for what firmware reserves.
    report["memory"] = {"installed_bytes": None, "total_bytes": int(1.9 * 1024**3)}
    assert "low_memory" not in telecare_issues(report)
    assert "low_memory" in telecare_issues(report, min_memory_bytes=4 * 1024**3)
    # Unknown is not a problem for telecare, it is a problem for the report.
    assert telecare_issues({}) == []


def test_placeholder_only_tables_are_explained(machine: Machine) -> None:
    machine.runner.answers[DMIDECODE_ARGV] = result(DMIDECODE_ARGV, DMIDECODE_DESKTOP)
    report = _report(machine)
    assert report["system"]["manufacturer"] is None
    assert report["problems"]["system"] == "dmidecode: no record, or only vendor placeholders"
    assert report["board"]["product"] == "P8H61-M LX"
    assert report["memory"]["slots"] == 4
    assert report["memory"]["installed_bytes"] == 12 * 1024**3
