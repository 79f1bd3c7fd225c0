"""Telecare peripherals: camera, microphone (with optional short captures) and the RTC alarm."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from edge.collectors.clock import rtc_keeps_local_time
from edge.collectors.runner import CommandError, ToolNotFound

from .probe import ProbeEnv

__all__ = ["camera_section", "microphone_section", "rtc_section"]

_CARD_RE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(.+?)\s+-\s+(.+?)\s*$")
_PCM_RE = re.compile(r"^(\d+)-(\d+):\s*(.*)$")
_DMESG_RTC_RE = re.compile(r"rtc_cmos \S+: (no alarms|alarms up to one (day|month|year))")

_DAY = 86_400
# What rtc-cmos accepts (cmos_validate_alarm): one day without a day-of-month alarm register,
# within the next month with one (28 days is safe in February), a year with a month register.
_ALARM_RANGE = {"day": _DAY, "month": 28 * _DAY, "year": 365 * _DAY}
# Offsets in the ACPI FADT of the CMOS indexes of the day and month alarm registers
# (0 = not supported); rtc-cmos follows exactly these.
_FADT_DAY_ALRM = 106
_FADT_MON_ALRM = 107

_CAMERA_TIMEOUT = 20.0
_MIC_SECONDS = 2


def _natural(name: str) -> tuple[str, int]:
    match = re.match(r"^(\D*)(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def _capture_camera(env: ProbeEnv, node: Path) -> bool | None:
    """Grab one frame; None when no capture tool is installed."""
    with tempfile.TemporaryDirectory(prefix="difronte-diag-") as tmp:
        out = Path(tmp) / "frame"
        attempts = (
            ["v4l2-ctl", "--device", str(node), "--stream-mmap", "--stream-count=1",
             f"--stream-to={out}"],
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "v4l2", "-i", str(node),
             "-frames:v", "1", "-f", "rawvideo", "-y", str(out)],
        )  # fmt: skip
        for argv in attempts:
            try:
                result = env.run(argv, timeout=_CAMERA_TIMEOUT)
            except ToolNotFound:
                continue
            except CommandError as exc:
                env.note("camera", str(exc))  # a camera that hangs is not working
                return False
            got = out.stat().st_size if out.exists() else 0
            if result.returncode == 0 and got > 0:
                return True
            env.note("camera", f"{argv[0]}: {result.first_error_line()}")
            return False
    env.note("camera", "not tested: neither v4l2-ctl nor ffmpeg is installed")
    return None


def camera_section(env: ProbeEnv) -> dict[str, Any]:
    """Video4Linux devices, and whether the first one gives a frame (only if asked to test)."""
    devices: dict[str, dict[str, Any]] = {}
    v4l = env.sysfs / "class" / "video4linux"
    if v4l.is_dir():
        for entry in v4l.iterdir():
            devices[entry.name] = {
                "node": f"/dev/{entry.name}",
                "name": env.read(entry / "name", "camera"),
                "index": env.read_int(entry / "index", "camera"),
            }
    for node in env.dev.glob("video*"):
        devices.setdefault(node.name, {"node": f"/dev/{node.name}", "name": None, "index": None})
    listed = [devices[k] for k in sorted(devices, key=_natural)]
    # A UVC webcam shows two nodes; the second (index 1) carries metadata, not pictures.
    capture = [d for d in listed if d["index"] in (0, None)]
    working: bool | None = None
    if env.test_devices and capture:
        working = _capture_camera(env, env.dev / Path(capture[0]["node"]).name)
    return {"present": bool(capture), "devices": listed, "working": working}


def _parse_cards(text: str) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = []
    for line in text.splitlines():
        match = _CARD_RE.match(line)
        if match:
            cards.append(
                {
                    "index": int(match.group(1)),
                    "id": match.group(2),
                    "driver": match.group(3),
                    "name": match.group(4),
                    "capture_devices": [],
                    "playback_devices": [],
                }
            )
    return cards


def _parse_pcm(text: str, cards: list[dict[str, Any]]) -> None:
    by_index = {c["index"]: c for c in cards}
    for line in text.splitlines():
        match = _PCM_RE.match(line.strip())
        if not match or int(match.group(1)) not in by_index:
            continue
        card, device = by_index[int(match.group(1))], int(match.group(2))
        parts = [p.strip() for p in match.group(3).split(" : ")]
        if any(p.startswith("capture") for p in parts):
            card["capture_devices"].append(device)
        if any(p.startswith("playback") for p in parts):
            card["playback_devices"].append(device)


def _capture_microphone(env: ProbeEnv, card: int, device: int) -> bool | None:
    """Record two seconds; digital silence means muted or unplugged. None without arecord."""
    with tempfile.TemporaryDirectory(prefix="difronte-diag-") as tmp:
        out = Path(tmp) / "mic.raw"
        argv = ["arecord", "-q", "-D", f"plughw:{card},{device}", "-f", "S16_LE", "-r", "16000",
                "-c", "1", "-d", str(_MIC_SECONDS), "-t", "raw", str(out)]  # fmt: skip
        try:
            result = env.run(argv, timeout=_MIC_SECONDS + 10.0)
        except ToolNotFound:
            env.note("microphone", "not tested: arecord is not installed")
            return None
        except CommandError as exc:
            env.note("microphone", str(exc))
            return False
        audio = out.read_bytes() if out.exists() else b""
    if result.returncode != 0 or not audio:
        env.note("microphone", f"arecord: {result.first_error_line()}")
        return False
    if not audio.strip(b"\x00"):
        env.note("microphone", "recorded only silence: muted or unplugged?")
        return False
    return True


def microphone_section(env: ProbeEnv) -> dict[str, Any]:
    """ALSA cards with their capture devices, and whether the first one records sound."""
    cards_file = env.proc / "asound" / "cards"
    if not cards_file.exists():
        # No ALSA at all (no sound card, or the driver is not loaded): nothing to capture with.
        return {"present": False, "cards": [], "working": None}
    cards = _parse_cards(cards_file.read_text())
    pcm = env.read(env.proc / "asound" / "pcm", "microphone")
    if pcm is not None:
        _parse_pcm(pcm, cards)
    capture = [(c["index"], d) for c in cards for d in c["capture_devices"]]
    working: bool | None = None
    if env.test_devices and capture:
        working = _capture_microphone(env, *capture[0])
    return {"present": bool(capture), "cards": cards, "working": working}


def _alarm_range_from_dmesg(env: ProbeEnv) -> int | None:
    try:
        result = env.run(["dmesg"], timeout=10.0)
    except CommandError:
        return None
    for match in _DMESG_RTC_RE.finditer(result.stdout):
        return _ALARM_RANGE[match.group(2)] if match.group(2) else 0
    return None


def _alarm_range_from_fadt(env: ProbeEnv) -> int | None:
    try:
        fadt = (env.sysfs / "firmware" / "acpi" / "tables" / "FACP").read_bytes()
    except OSError:
        return None  # no ACPI, or not root
    if len(fadt) <= _FADT_MON_ALRM:
        return None
    if fadt[_FADT_MON_ALRM]:
        return _ALARM_RANGE["year"]
    return _ALARM_RANGE["month"] if fadt[_FADT_DAY_ALRM] else _ALARM_RANGE["day"]


def _proc_rtc(text: str | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def rtc_section(env: ProbeEnv) -> dict[str, Any]:
    """Whether the RTC can wake the PC, how far ahead an alarm may be set, and its time zone."""
    rtc = env.sysfs / "class" / "rtc" / "rtc0"
    local = rtc_keeps_local_time(env.etc / "adjtime")
    if not rtc.exists():
        return {
            "present": False,
            "name": None,
            "wakealarm": False,
            "wakeup_enabled": None,
            "max_ahead_s": None,
            "local_time": local,
            "battery_ok": None,
        }
    name = env.read(rtc / "name", "rtc")
    wakealarm = (rtc / "wakealarm").exists()
    wakeup = env.read(rtc / "device" / "power" / "wakeup", "rtc")
    proc = _proc_rtc(env.read(env.proc / "driver" / "rtc", "rtc"))
    max_ahead: int | None = None
    if wakealarm and name is not None and "cmos" in name:
        max_ahead = _alarm_range_from_dmesg(env)
        if max_ahead is None:
            max_ahead = _alarm_range_from_fadt(env)
        if max_ahead is None:
            env.note("rtc", "alarm range unknown: neither dmesg nor the ACPI FADT was readable")
    return {
        "present": True,
        "name": name,
        "wakealarm": wakealarm,
        "wakeup_enabled": {"enabled": True, "disabled": False}.get(wakeup or ""),
        "max_ahead_s": max_ahead,
        "local_time": local,
        # rtc-cmos reads the CMOS "valid RAM and time" bit: "dead" means a flat coin cell.
        "battery_ok": {"okay": True, "dead": False}.get(proc.get("batt_status", "")),
    }
