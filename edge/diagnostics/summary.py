"""A readable summary of the diagnostics report for the technician: Italian first, English too."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from .report import telecare_issues

__all__ = ["format_summary"]

_TEXT: dict[str, dict[str, str]] = {
    "it": {
        "title": "ΔiFronte — rapporto hardware del {when}",
        "system": "Sistema",
        "board": "Scheda madre",
        "bios": "BIOS",
        "cpu": "Processore",
        "memory": "Memoria",
        "disk": "Disco",
        "disks": "Dischi",
        "network": "Rete",
        "battery": "Batteria",
        "camera": "Webcam",
        "microphone": "Microfono",
        "rtc": "Orologio (RTC)",
        "unknown": "non rilevabile",  # neutral: fits "Scheda" and "Sistema" alike
        "serial": "matricola {serial}",
        "dated": "del {date}",
        "cores": "{cores} core, {threads} thread",
        "only_32bit": "solo 32 bit",
        "module": "{n} modulo",
        "modules": "{n} moduli",
        "free_slots": "{n} slot liberi",
        "free_slot": "{n} slot libero",
        "smart_ok": "SMART OK",
        "smart_failed": "SMART GUASTO",
        "smart_na": "SMART non disponibile",
        "hours": "{n} ore",
        "reallocated": "{n} settori riallocati",
        "pending": "{n} settori instabili",
        "none_disk": "nessuno",
        "none_nic": "nessuna scheda",
        "wireless": "senza fili",
        "no_link": "scollegata",
        "absent": "assente",
        "battery_health": "salute {pct}% ({full} di {design} Wh)",
        "battery_present": "presente, capacità non leggibile",
        "camera_untested": "presente ({name}), non provata",
        "camera_ok": "presente ({name}), funziona",
        "camera_broken": "presente ({name}), NON funziona",
        "mic_untested": "presente ({name}), non provato",
        "mic_ok": "presente ({name}), funziona",
        "mic_broken": "presente ({name}), NON funziona",
        "rtc_wake": "presente, sveglia programmabile fino a {ahead} avanti",
        "rtc_wake_unknown": "presente, sveglia programmabile (limite non noto)",
        "rtc_no_wake": "presente, NON può accendere il PC",
        "rtc_local": "tiene l'ora locale",
        "rtc_battery_dead": "pila tampone scarica",
        "hours_unit": "{n} ore",
        "days_unit": "{n} giorni",
        "problems": "Non letto:",
        "verdict_ok": "Idoneità per la teleassistenza: sì",
        "verdict_no": "Idoneità per la teleassistenza: NO — {why}",
        "verdict_unknown": "Idoneità per la teleassistenza: da verificare — non rilevati: {what}",
        "no_camera": "manca la webcam",
        "camera_not_working": "la webcam non funziona",
        "no_microphone": "manca il microfono",
        "microphone_not_working": "il microfono non funziona",
        "failing_disk": "disco guasto",
        "low_memory": "memoria insufficiente",
        "cpu_32bit": "processore a 32 bit",
        "no_rtc_wake": "non si accende da solo (RTC)",
    },
    "en": {
        "title": "ΔiFronte — hardware report of {when}",
        "system": "System",
        "board": "Mainboard",
        "bios": "BIOS",
        "cpu": "CPU",
        "memory": "Memory",
        "disk": "Disk",
        "disks": "Disks",
        "network": "Network",
        "battery": "Battery",
        "camera": "Camera",
        "microphone": "Microphone",
        "rtc": "Clock (RTC)",
        "unknown": "unknown",
        "serial": "serial {serial}",
        "dated": "dated {date}",
        "cores": "{cores} cores, {threads} threads",
        "only_32bit": "32-bit only",
        "module": "{n} module",
        "modules": "{n} modules",
        "free_slots": "{n} free slots",
        "free_slot": "{n} free slot",
        "smart_ok": "SMART OK",
        "smart_failed": "SMART FAILING",
        "smart_na": "SMART not available",
        "hours": "{n} hours",
        "reallocated": "{n} reallocated sectors",
        "pending": "{n} pending sectors",
        "none_disk": "none",
        "none_nic": "no adapter",
        "wireless": "wireless",
        "no_link": "unplugged",
        "absent": "absent",
        "battery_health": "health {pct}% ({full} of {design} Wh)",
        "battery_present": "present, capacity unreadable",
        "camera_untested": "present ({name}), not tested",
        "camera_ok": "present ({name}), working",
        "camera_broken": "present ({name}), NOT working",
        "mic_untested": "present ({name}), not tested",
        "mic_ok": "present ({name}), working",
        "mic_broken": "present ({name}), NOT working",
        "rtc_wake": "present, wake alarm up to {ahead} ahead",
        "rtc_wake_unknown": "present, wake alarm (limit unknown)",
        "rtc_no_wake": "present, CANNOT power the PC on",
        "rtc_local": "keeps local time",
        "rtc_battery_dead": "CMOS battery flat",
        "hours_unit": "{n} hours",
        "days_unit": "{n} days",
        "problems": "Could not read:",
        "verdict_ok": "Fit for telecare: yes",
        "verdict_no": "Fit for telecare: NO — {why}",
        "verdict_unknown": "Fit for telecare: to be checked — could not read: {what}",
        "no_camera": "no camera",
        "camera_not_working": "camera not working",
        "no_microphone": "no microphone",
        "microphone_not_working": "microphone not working",
        "failing_disk": "failing disk",
        "low_memory": "not enough memory",
        "cpu_32bit": "32-bit CPU",
        "no_rtc_wake": "cannot wake itself (RTC)",
    },
}


class _Fmt:
    """Number and word formatting for one language."""

    def __init__(self, lang: str) -> None:
        if lang not in _TEXT:
            raise ValueError(f"lang: expected one of {sorted(_TEXT)}, got {lang!r}")
        self.lang = lang
        self.words = _TEXT[lang]

    def __call__(self, key: str, **values: Any) -> str:
        return self.words[key].format(**values)

    def num(self, value: float, decimals: int = 0) -> str:
        text = f"{value:,.{decimals}f}"
        if self.lang == "it":
            # Italian swaps the separators: 12.345,6
            text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return text

    def date(self, iso: str) -> str:
        try:
            day = date.fromisoformat(iso)
        except ValueError:
            return iso
        return day.strftime("%d/%m/%Y") if self.lang == "it" else day.isoformat()

    def memory(self, size: float) -> str:
        return f"{self.num(size / 1024**3, 1)} GB"  # RAM is sold in binary gigabytes

    def disk_size(self, size: float) -> str:
        gb = size / 1e9  # disks are sold in decimal gigabytes
        if gb >= 1000:
            return f"{self.num(gb / 1000, 1)} TB"
        return f"{self.num(gb, 0 if gb >= 100 else 1)} GB"


def _join(*parts: Any) -> str:
    return " ".join(str(p) for p in parts if p)


def _system(f: _Fmt, s: Mapping[str, Any]) -> str:
    name = _join(s.get("manufacturer"), s.get("product"))
    if s.get("version") and s.get("version") != s.get("product"):
        name = f"{name} ({s['version']})" if name else str(s["version"])
    text = name or f("unknown")
    return f"{text}, {f('serial', serial=s['serial'])}" if s.get("serial") else text


def _bios(f: _Fmt, b: Mapping[str, Any]) -> str:
    text = _join(b.get("vendor"), b.get("version")) or f("unknown")
    return f"{text}, {f('dated', date=f.date(b['date']))}" if b.get("date") else text


def _cpu(f: _Fmt, c: Mapping[str, Any]) -> str:
    parts = [c.get("model") or f("unknown")]
    if c.get("threads"):
        parts.append(f("cores", cores=c.get("cores") or "?", threads=c["threads"]))
    if c.get("mhz"):
        parts.append(f"{f.num(c['mhz'])} MHz")
    if c.get("is_64bit") is False:
        parts.append(f("only_32bit"))
    return ", ".join(parts)


def _memory(f: _Fmt, m: Mapping[str, Any]) -> str:
    size = m.get("installed_bytes") or m.get("total_bytes")
    if not size:
        return f("unknown")
    modules = m.get("modules")
    if modules is None:
        return f.memory(size)
    extra = [f("module" if len(modules) == 1 else "modules", n=len(modules))]
    free = (m.get("slots") or 0) - len(modules)
    if free > 0:
        extra.append(f("free_slot" if free == 1 else "free_slots", n=free))
    return f"{f.memory(size)} ({', '.join(extra)})"


def _disk(f: _Fmt, d: Mapping[str, Any]) -> str:
    smart = d.get("smart") or {}
    if not smart.get("available"):
        parts = [f("smart_na")]
    else:
        parts = [f("smart_failed") if smart.get("passed") is False else f("smart_ok")]
        if smart.get("power_on_hours") is not None:
            parts.append(f("hours", n=f.num(smart["power_on_hours"])))
        if smart.get("reallocated_sectors"):
            parts.append(f("reallocated", n=f.num(smart["reallocated_sectors"])))
        if smart.get("pending_sectors"):
            parts.append(f("pending", n=f.num(smart["pending_sectors"])))
    what = _join(f.disk_size(d["size_bytes"]) if d.get("size_bytes") else "", d.get("model"))
    text = f"{f('disk')} {d.get('name')}: {', '.join(parts)}"
    return f"{text} ({what})" if what else text


def _nic(f: _Fmt, n: Mapping[str, Any]) -> str:
    details = [n.get("driver")]
    if n.get("wireless"):
        details.append(f("wireless"))
    if n.get("speed_mbps"):
        details.append(f"{f.num(n['speed_mbps'])} Mbit/s")
    elif not n.get("wireless") and n.get("link_up") is False:
        details.append(f("no_link"))
    inner = ", ".join(str(d) for d in details if d)
    return f"{n.get('name')} ({inner})" if inner else str(n.get("name"))


def _battery(f: _Fmt, b: Mapping[str, Any] | None) -> str:
    if not b:
        return f("absent")
    if b.get("health_pct") is None:
        return f("battery_present")
    return f(
        "battery_health",
        pct=f.num(b["health_pct"]),
        full=f.num(b["full_wh"], 1),
        design=f.num(b["design_wh"], 1),
    )


def _media(f: _Fmt, section: Mapping[str, Any], prefix: str, name: str | None) -> str:
    if section.get("present") is None:
        return f("unknown")
    if not section.get("present"):
        return f("absent")
    working = section.get("working")
    state = "untested" if working is None else ("ok" if working else "broken")
    return f(f"{prefix}_{state}", name=name or "?")


def _rtc(f: _Fmt, r: Mapping[str, Any]) -> str:
    if r.get("present") is None:
        return f("unknown")
    if not r.get("present"):
        return f("absent")
    ahead = r.get("max_ahead_s")
    if not r.get("wakealarm"):
        parts = [f("rtc_no_wake")]
    elif ahead:
        unit = (
            f("hours_unit", n=ahead // 3600)
            if ahead < 2 * 86400
            else f("days_unit", n=ahead // 86400)
        )
        parts = [f("rtc_wake", ahead=unit)]
    else:
        parts = [f("rtc_wake_unknown")]
    if r.get("local_time"):
        parts.append(f("rtc_local"))
    if r.get("battery_ok") is False:
        parts.append(f("rtc_battery_dead"))
    return ", ".join(parts)


def format_summary(report: Mapping[str, Any], lang: str = "it") -> str:
    """The report as a few plain lines a technician can read, in Italian or English."""
    f = _Fmt(lang)
    when = report.get("generated_at")
    stamp = (
        datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")
        if isinstance(when, int | float)
        else f("unknown")
    )
    lines = [f("title", when=stamp)]

    def line(label: str, text: str) -> None:
        lines.append(f"{f(label)}: {text}")

    line("system", _system(f, report.get("system") or {}))
    board = report.get("board") or {}
    line("board", _join(board.get("manufacturer"), board.get("product")) or f("unknown"))
    line("bios", _bios(f, report.get("bios") or {}))
    line("cpu", _cpu(f, report.get("cpu") or {}))
    line("memory", _memory(f, report.get("memory") or {}))
    disks = report.get("disks")
    if disks is None:
        line("disks", f("unknown"))
    elif not disks:
        line("disks", f("none_disk"))
    lines.extend(_disk(f, d) for d in disks or [])
    nics = report.get("network")
    line("network", "; ".join(_nic(f, n) for n in nics) if nics else f("none_nic"))
    line("battery", _battery(f, report.get("battery")))
    camera = report.get("camera") or {}
    cam_name = next((d.get("name") for d in camera.get("devices") or [] if d.get("name")), None)
    line("camera", _media(f, camera, "camera", cam_name))
    mic = report.get("microphone") or {}
    mic_name = next(
        (c.get("name") for c in mic.get("cards") or [] if c.get("capture_devices")), None
    )
    line("microphone", _media(f, mic, "mic", mic_name))
    line("rtc", _rtc(f, report.get("rtc") or {}))
    problems = report.get("problems") or {}
    if problems:
        lines.append(f("problems"))
        lines.extend(f"  - {section}: {why}" for section, why in problems.items())
    issues = telecare_issues(dict(report))
    memory = report.get("memory") or {}
    # A "yes" needs the facts that could make it a "no"; unread ones make it "to be checked".
    unknown = [
        label
        for label, value in (
            ("camera", camera.get("present")),
            ("microphone", mic.get("present")),
            ("memory", memory.get("installed_bytes") or memory.get("total_bytes")),
            ("disks", report.get("disks")),
            ("rtc", (report.get("rtc") or {}).get("present")),
        )
        if value is None
    ]
    if issues:
        lines.append(f("verdict_no", why=", ".join(f(code) for code in issues)))
    elif unknown:
        lines.append(f("verdict_unknown", what=", ".join(f(label).lower() for label in unknown)))
    else:
        lines.append(f("verdict_ok"))
    return "\n".join(lines)
