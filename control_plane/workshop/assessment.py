"""Read an edge diagnose report: the machine's inventory and what keeps it out of a home.

The report is the JSON the edge's ``diagnose`` command produces::

    {"system": {...}, "cpu": {...}, "memory": {"total_bytes", "modules": [...]},
     "disks": [{"name", "model", "serial", "size_bytes",
                "smart": {"available", "passed", "power_on_hours", "reallocated_sectors"}}],
     "camera": {"present", "working"}, "microphone": {"present", "working"},
     "battery": {...} | None, "rtc": {"present", "wakealarm", "max_ahead_s"},
     "problems": {...}}

A missing section or key means "not checked", never "absent": a report from an old agent
must not declare a camera missing. ``"battery": null`` does mean "no battery" (a desktop).
A field of the wrong type is refused with :class:`ReportError` naming its path.

Findings are *blockers* (the machine can't serve telecare as it is, e.g. no camera) or
*warnings* (it can, but someone should look), each with a fix in plain words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

GIB = 1024**3

_32BIT_ARCHES = frozenset({"i386", "i486", "i586", "i686", "x86", "ia32"})


class ReportError(ValueError):
    """A diagnose report that can't be read; ``field`` is the path of the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Severity(StrEnum):
    """How much a finding matters for telecare."""

    BLOCKER = "blocker"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in the report, with what to do about it, in Italian and English."""

    code: str
    severity: Severity
    message_it: str
    message_en: str
    fix_it: str
    fix_en: str
    subject: str | None = None  # the disk or edge problem the finding is about, if any


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits the assessment applies; the workshop lead may tune them."""

    min_memory_bytes: int = 2 * GIB
    recommended_memory_bytes: int = 4 * GIB
    min_disk_bytes: int = 16 * 10**9
    reallocated_sectors_blocker: int = 100
    max_power_on_hours: int = 50_000
    min_battery_health_pct: float = 50.0
    min_rtc_ahead_s: int = 6 * 3600
    min_cpu_cores: int = 2


@dataclass(frozen=True, slots=True)
class DiskInfo:
    """One disk as the report describes it; None where the report doesn't say."""

    name: str
    model: str | None
    serial: str | None
    size_bytes: int | None
    smart_available: bool | None
    smart_passed: bool | None
    power_on_hours: int | None
    reallocated_sectors: int | None

    @property
    def identifier(self) -> str:
        """The serial, or a stand-in naming the device when the disk didn't report one."""
        return self.serial or f"unknown-serial:{self.name}"


@dataclass(frozen=True, slots=True)
class Inventory:
    """The hardware summary the workshop shows and stores; None means "not checked"."""

    manufacturer: str | None = None
    product: str | None = None
    serial_number: str | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = None
    cpu_64bit: bool | None = None
    memory_bytes: int | None = None
    memory_modules: int | None = None
    memory_type: str | None = None
    disks: tuple[DiskInfo, ...] | None = None
    camera_present: bool | None = None
    camera_working: bool | None = None
    microphone_present: bool | None = None
    microphone_working: bool | None = None
    battery_present: bool | None = None
    battery_health_pct: float | None = None
    rtc_present: bool | None = None
    rtc_wakealarm: bool | None = None
    rtc_max_ahead_s: int | None = None


@dataclass(frozen=True, slots=True)
class Assessment:
    """The inventory and the findings of one diagnose report."""

    inventory: Inventory
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def blockers(self) -> tuple[Finding, ...]:
        """Findings that rule the machine out for telecare until fixed."""
        return tuple(f for f in self.findings if f.severity is Severity.BLOCKER)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Findings worth a look that don't rule the machine out."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def suitable_for_telecare(self) -> bool:
        """Whether nothing found rules the machine out for a home."""
        return not self.blockers

    @property
    def blocker_codes(self) -> frozenset[str]:
        """Codes of the blockers, for the lifecycle's ``MachineFacts.telecare_blockers``."""
        return frozenset(f.code for f in self.blockers)

    @property
    def disk_serials(self) -> frozenset[str]:
        """Every disk that needs an erasure certificate (see ``DiskInfo.identifier``)."""
        return frozenset(d.identifier for d in self.inventory.disks or ())


# -- reading the report -------------------------------------------------------------------


def _section(report: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = report.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ReportError(key, f"expected an object, got {type(value).__name__}")
    return value


def _str(section: Mapping[str, Any], key: str, path: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReportError(f"{path}.{key}", f"expected text, got {type(value).__name__}")
    return value.strip() or None


def _bool(section: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ReportError(f"{path}.{key}", f"expected true or false, got {value!r}")
    return value


def _number(section: Mapping[str, Any], key: str, path: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    # bool is an int in Python; a "true" where a count belongs is a bug in the report.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportError(f"{path}.{key}", f"expected a number, got {value!r}")
    if value < 0:
        raise ReportError(f"{path}.{key}", f"must not be negative, got {value}")
    return float(value)


def _int(section: Mapping[str, Any], key: str, path: str) -> int | None:
    value = _number(section, key, path)
    return None if value is None else int(value)


def _list(value: Any, path: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise ReportError(path, f"expected a list, got {type(value).__name__}")
    return value


def _first_str(section: Mapping[str, Any], keys: Sequence[str], path: str) -> str | None:
    for key in keys:
        value = _str(section, key, path)
        if value is not None:
            return value
    return None


def _read_disks(report: Mapping[str, Any]) -> tuple[DiskInfo, ...] | None:
    if report.get("disks") is None:
        return None
    disks: list[DiskInfo] = []
    for index, raw in enumerate(_list(report["disks"], "disks")):
        path = f"disks[{index}]"
        if not isinstance(raw, Mapping):
            raise ReportError(path, f"expected an object, got {type(raw).__name__}")
        smart = raw.get("smart") or {}
        if not isinstance(smart, Mapping):
            raise ReportError(f"{path}.smart", "expected an object")
        smart_path = f"{path}.smart"
        disks.append(
            DiskInfo(
                name=_str(raw, "name", path) or f"disk{index}",
                model=_str(raw, "model", path),
                serial=_str(raw, "serial", path),
                size_bytes=_int(raw, "size_bytes", path),
                smart_available=_bool(smart, "available", smart_path),
                smart_passed=_bool(smart, "passed", smart_path),
                power_on_hours=_int(smart, "power_on_hours", smart_path),
                reallocated_sectors=_int(smart, "reallocated_sectors", smart_path),
            )
        )
    return tuple(disks)


def _battery_health(battery: Mapping[str, Any]) -> float | None:
    health = _number(battery, "health_pct", "battery")
    if health is not None:
        return health
    full = _number(battery, "energy_full_wh", "battery")
    design = _number(battery, "energy_full_design_wh", "battery")
    if full is not None and design:
        return round(100.0 * full / design, 1)
    return None


def _read_inventory(report: Mapping[str, Any]) -> Inventory:
    system = _section(report, "system") or {}
    cpu = _section(report, "cpu") or {}
    memory = _section(report, "memory")
    camera = _section(report, "camera")
    microphone = _section(report, "microphone")
    rtc = _section(report, "rtc")

    modules: Sequence[Any] | None = None
    memory_type: str | None = None
    if memory is not None and memory.get("modules") is not None:
        modules = _list(memory["modules"], "memory.modules")
        for index, module in enumerate(modules):
            if not isinstance(module, Mapping):
                raise ReportError(f"memory.modules[{index}]", "expected an object")
            memory_type = memory_type or _str(module, "type", f"memory.modules[{index}]")

    arch = _str(cpu, "arch", "cpu")
    cpu_64bit: bool | None = None
    if arch is not None:
        cpu_64bit = arch.lower() not in _32BIT_ARCHES
    elif cpu.get("flags") is not None:
        flags = _list(cpu["flags"], "cpu.flags")
        cpu_64bit = "lm" in flags  # "long mode": the CPU can run a 64-bit system

    if "battery" in report and report["battery"] is None:
        battery_present: bool | None = False
        battery_health = None
    else:
        battery = _section(report, "battery")
        battery_present = None if battery is None else _bool(battery, "present", "battery")
        if battery is not None and battery_present is None:
            battery_present = True  # a battery section without "present" describes one
        battery_health = _battery_health(battery) if battery and battery_present else None

    return Inventory(
        manufacturer=_first_str(system, ("manufacturer", "vendor"), "system"),
        product=_first_str(system, ("product_name", "product", "model"), "system"),
        serial_number=_first_str(system, ("serial_number", "serial"), "system"),
        cpu_model=_first_str(cpu, ("model", "model_name"), "cpu"),
        cpu_cores=_int(cpu, "cores", "cpu"),
        cpu_64bit=cpu_64bit,
        memory_bytes=None if memory is None else _int(memory, "total_bytes", "memory"),
        memory_modules=None if modules is None else len(modules),
        memory_type=memory_type,
        disks=_read_disks(report),
        camera_present=None if camera is None else _bool(camera, "present", "camera"),
        camera_working=None if camera is None else _bool(camera, "working", "camera"),
        microphone_present=None
        if microphone is None
        else _bool(microphone, "present", "microphone"),
        microphone_working=None
        if microphone is None
        else _bool(microphone, "working", "microphone"),
        battery_present=battery_present,
        battery_health_pct=battery_health,
        rtc_present=None if rtc is None else _bool(rtc, "present", "rtc"),
        rtc_wakealarm=None if rtc is None else _bool(rtc, "wakealarm", "rtc"),
        rtc_max_ahead_s=None if rtc is None else _int(rtc, "max_ahead_s", "rtc"),
    )


# -- the rules ------------------------------------------------------------------------------


def _gib(size: float) -> str:
    return f"{size / GIB:.1f} GiB"


def _blocker(
    code: str, m_it: str, m_en: str, f_it: str, f_en: str, subject: str | None = None
) -> Finding:
    return Finding(code, Severity.BLOCKER, m_it, m_en, f_it, f_en, subject)


def _warning(
    code: str, m_it: str, m_en: str, f_it: str, f_en: str, subject: str | None = None
) -> Finding:
    return Finding(code, Severity.WARNING, m_it, m_en, f_it, f_en, subject)


def _av_findings(kind: str, present: bool | None, working: bool | None) -> list[Finding]:
    # kind is "camera" or "microphone"; the words differ, the rules don't.
    it_name, en_name = (
        ("La webcam", "The camera")
        if kind == "camera"
        else (
            "Il microfono",
            "The microphone",
        )
    )
    fix_it = (
        "Collegare una webcam USB (UVC)"
        if kind == "camera"
        else "Collegare una webcam USB con microfono o una cuffia USB"
    )
    fix_en = (
        "Connect a USB (UVC) webcam"
        if kind == "camera"
        else "Connect a USB webcam with a microphone or a USB headset"
    )
    if present is None and working is None:
        return [
            _warning(
                f"{kind}_unknown",
                f"{it_name} non è stata verificata dalla diagnostica."
                if kind == "camera"
                else f"{it_name} non è stato verificato dalla diagnostica.",
                f"{en_name} was not checked by the diagnostics.",
                "Ripetere la diagnostica con la prova audio e video.",
                "Run the diagnostics again with the audio and video test.",
            )
        ]
    if present is False:
        return [
            _blocker(
                f"{kind}_missing",
                f"{it_name} manca: senza non si può fare la videochiamata."
                if kind == "camera"
                else f"{it_name} manca: senza non si può parlare con l'assistito.",
                f"{en_name} is missing: the video call needs it.",
                f"{fix_it}.",
                f"{fix_en}.",
            )
        ]
    if working is False:
        return [
            _blocker(
                f"{kind}_not_working",
                f"{it_name} c'è ma non funziona.",
                f"{en_name} is there but does not work.",
                f"Controllare cavo e driver; altrimenti: {fix_it.lower()}.",
                f"Check the cable and driver; otherwise: {fix_en.lower()}.",
            )
        ]
    if present is True and working is None:
        return [
            _warning(
                f"{kind}_untested",
                f"{it_name} c'è ma non è stata provata."
                if kind == "camera"
                else f"{it_name} c'è ma non è stato provato.",
                f"{en_name} is there but was not tested.",
                "Ripetere la diagnostica con la prova audio e video.",
                "Run the diagnostics again with the audio and video test.",
            )
        ]
    return []


def _memory_findings(inv: Inventory, th: Thresholds) -> list[Finding]:
    if inv.memory_bytes is None:
        return [
            _warning(
                "memory_unknown",
                "La quantità di memoria non è nota.",
                "The amount of memory is unknown.",
                "Ripetere la diagnostica.",
                "Run the diagnostics again.",
            )
        ]
    kind = f" {inv.memory_type}" if inv.memory_type else ""
    if inv.memory_bytes < th.min_memory_bytes:
        return [
            _blocker(
                "memory_too_low",
                f"Memoria insufficiente: {_gib(inv.memory_bytes)}, ne servono almeno "
                f"{_gib(th.min_memory_bytes)}.",
                f"Too little memory: {_gib(inv.memory_bytes)}, at least "
                f"{_gib(th.min_memory_bytes)} needed.",
                f"Aggiungere o sostituire moduli RAM{kind} fino ad almeno "
                f"{_gib(th.recommended_memory_bytes)}.",
                f"Add or replace{kind} RAM modules to reach at least "
                f"{_gib(th.recommended_memory_bytes)}.",
            )
        ]
    if inv.memory_bytes < th.recommended_memory_bytes:
        return [
            _warning(
                "memory_low",
                f"Memoria scarsa: {_gib(inv.memory_bytes)}; la videochiamata può essere lenta.",
                f"Little memory: {_gib(inv.memory_bytes)}; the video call may be slow.",
                f"Se ci sono moduli{kind} di recupero, portarla a "
                f"{_gib(th.recommended_memory_bytes)}.",
                f"If spare{kind} modules are at hand, bring it to "
                f"{_gib(th.recommended_memory_bytes)}.",
            )
        ]
    return []


def _disk_findings(inv: Inventory, th: Thresholds) -> list[Finding]:
    if inv.disks is None:
        return [
            _warning(
                "disks_unknown",
                "I dischi non sono stati elencati dalla diagnostica.",
                "The diagnostics did not list the disks.",
                "Ripetere la diagnostica.",
                "Run the diagnostics again.",
            )
        ]
    if not inv.disks:
        return [
            _blocker(
                "no_disk",
                "Nessun disco trovato.",
                "No disk found.",
                "Montare un SSD di almeno 32 GB.",
                "Fit an SSD of 32 GB or more.",
            )
        ]
    out: list[Finding] = []
    for disk in inv.disks:
        who = disk.identifier
        label = f"{disk.name} ({who})"
        replace_it = f"Sostituire il disco {label} con un SSD."
        replace_en = f"Replace disk {label} with an SSD."
        if disk.serial is None:
            out.append(
                _warning(
                    "disk_serial_unknown",
                    f"Il disco {disk.name} non ha comunicato il numero di serie.",
                    f"Disk {disk.name} did not report its serial number.",
                    f"Leggere il numero di serie sull'etichetta del disco; per il certificato "
                    f"di cancellazione si usa «{who}».",
                    f"Read the serial off the disk's label; the erasure certificate uses '{who}'.",
                    who,
                )
            )
        if disk.smart_passed is False:
            out.append(
                _blocker(
                    "disk_failing",
                    f"Il disco {label} segnala un guasto (SMART).",
                    f"Disk {label} reports a failure (SMART).",
                    replace_it,
                    replace_en,
                    who,
                )
            )
        elif disk.smart_available is False:
            out.append(
                _warning(
                    "disk_smart_unavailable",
                    f"Lo stato di salute del disco {label} non è leggibile (SMART assente).",
                    f"The health of disk {label} can't be read (no SMART).",
                    "Provare il disco con una scansione di superficie prima di usarlo.",
                    "Run a surface scan on the disk before using it.",
                    who,
                )
            )
        reallocated = disk.reallocated_sectors or 0
        if reallocated >= th.reallocated_sectors_blocker and disk.smart_passed is not False:
            out.append(
                _blocker(
                    "disk_reallocated_sectors",
                    f"Il disco {label} ha {reallocated} settori riallocati: si sta rovinando.",
                    f"Disk {label} has {reallocated} reallocated sectors: it is failing.",
                    replace_it,
                    replace_en,
                    who,
                )
            )
        elif 0 < reallocated < th.reallocated_sectors_blocker:
            out.append(
                _warning(
                    "disk_reallocated_sectors",
                    f"Il disco {label} ha {reallocated} settori riallocati.",
                    f"Disk {label} has {reallocated} reallocated sectors.",
                    "Ricontrollare dopo la cancellazione; se il numero cresce, sostituirlo.",
                    "Check again after the erasure; if the count grows, replace it.",
                    who,
                )
            )
        hours = disk.power_on_hours
        if hours is not None and hours >= th.max_power_on_hours:
            out.append(
                _warning(
                    "disk_worn",
                    f"Il disco {label} ha lavorato {hours} ore: è vicino a fine vita.",
                    f"Disk {label} has run for {hours} hours: it is near the end of its life.",
                    replace_it,
                    replace_en,
                    who,
                )
            )
    if all(d.size_bytes is not None for d in inv.disks):
        largest = max(d.size_bytes or 0 for d in inv.disks)
        if largest < th.min_disk_bytes:
            out.append(
                _blocker(
                    "disk_too_small",
                    f"Il disco più grande è di {largest / 10**9:.0f} GB, ne servono almeno "
                    f"{th.min_disk_bytes / 10**9:.0f}.",
                    f"The largest disk holds {largest / 10**9:.0f} GB; at least "
                    f"{th.min_disk_bytes / 10**9:.0f} GB are needed.",
                    "Montare un SSD di almeno 32 GB.",
                    "Fit an SSD of 32 GB or more.",
                )
            )
    return out


def _rtc_findings(inv: Inventory, th: Thresholds) -> list[Finding]:
    if inv.rtc_present is None and inv.rtc_wakealarm is None:
        return [
            _warning(
                "rtc_unknown",
                "La sveglia del BIOS (RTC) non è stata provata.",
                "The BIOS wake alarm (RTC) was not tested.",
                "Ripetere la diagnostica con la prova di accensione programmata.",
                "Run the diagnostics again with the timed wake test.",
            )
        ]
    if inv.rtc_present is False:
        return [
            _blocker(
                "rtc_missing",
                "L'orologio di sistema (RTC) non risponde: il PC non può accendersi da solo.",
                "The real-time clock does not answer: the PC can't power itself on.",
                "Sostituire la batteria tampone (CR2032) e ripetere la prova; se non basta, "
                "la macchina va venduta o donata, non in una casa.",
                "Replace the CMOS battery (CR2032) and test again; if that fails, sell or "
                "donate the machine rather than place it in a home.",
            )
        ]
    out: list[Finding] = []
    if inv.rtc_wakealarm is False:
        out.append(
            _blocker(
                "rtc_no_wake",
                "Il PC non si accende all'ora programmata (sveglia RTC non disponibile).",
                "The PC does not power on at the set time (no RTC wake alarm).",
                "Nel BIOS attivare «Resume by RTC Alarm» / «Power On by RTC» e ripetere la prova.",
                "In the BIOS enable 'Resume by RTC Alarm' / 'Power On by RTC' and test again.",
            )
        )
    ahead = inv.rtc_max_ahead_s
    if inv.rtc_wakealarm and ahead is not None and ahead < th.min_rtc_ahead_s:
        out.append(
            _warning(
                "rtc_short_horizon",
                f"La sveglia si può programmare solo {ahead // 3600} ore avanti: il PC dovrà "
                "accendersi più spesso.",
                f"The alarm can only be set {ahead // 3600} hours ahead: the PC will need "
                "extra wakes.",
                "Aggiornare il BIOS se possibile; altrimenti va bene così.",
                "Update the BIOS if possible; otherwise it can stay as it is.",
            )
        )
    return out


def _other_findings(inv: Inventory, th: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    if inv.cpu_64bit is False:
        out.append(
            _warning(
                "cpu_32bit",
                "Il processore è a 32 bit: il sistema a 64 bit non si può installare.",
                "The CPU is 32-bit only: the 64-bit system can't be installed.",
                "Usare l'immagine a 32 bit e preferire la macchina per la vendita.",
                "Use the 32-bit image and prefer the machine for sale.",
            )
        )
    if inv.cpu_cores is not None and inv.cpu_cores < th.min_cpu_cores:
        out.append(
            _warning(
                "cpu_few_cores",
                f"Il processore ha {inv.cpu_cores} core: la videochiamata può scattare.",
                f"The CPU has {inv.cpu_cores} core(s): the video call may stutter.",
                "Provare una videochiamata prima della consegna.",
                "Try a video call before deployment.",
            )
        )
    health = inv.battery_health_pct
    if inv.battery_present and health is not None and health < th.min_battery_health_pct:
        out.append(
            _warning(
                "battery_worn",
                f"La batteria tiene il {health:.0f} % della carica originale.",
                f"The battery holds {health:.0f} % of its original charge.",
                "Sostituire la batteria, o lasciare il portatile sempre collegato alla rete.",
                "Replace the battery, or keep the laptop plugged in at all times.",
            )
        )
    return out


def _problem_findings(report: Mapping[str, Any]) -> list[Finding]:
    # The edge lists what its own checks tripped over; the texts come from the device
    # untranslated, so both languages carry the same words.
    raw = report.get("problems")
    if raw is None:
        return []
    items: list[tuple[str, str]] = []
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            if isinstance(value, Mapping):
                text = value.get("message")
                items.append((str(key), str(text) if text is not None else str(key)))
            else:
                items.append((str(key), str(value)))
    elif isinstance(raw, list | tuple):
        for index, value in enumerate(raw):
            if not isinstance(value, str):
                raise ReportError(f"problems[{index}]", "expected text")
            items.append((value, value))
    else:
        raise ReportError("problems", f"expected an object or a list, got {type(raw).__name__}")
    return [
        _warning(
            "edge_problem",
            f"La diagnostica segnala: {text}",
            f"The diagnostics report: {text}",
            "Leggere il dettaglio nel rapporto di diagnostica.",
            "See the detail in the diagnostics report.",
            key,
        )
        for key, text in items
    ]


def assess(report: Mapping[str, Any], thresholds: Thresholds | None = None) -> Assessment:
    """The inventory and findings of an edge diagnose report (ReportError if malformed)."""
    if not isinstance(report, Mapping):
        raise ReportError("report", f"expected an object, got {type(report).__name__}")
    th = thresholds or Thresholds()
    inv = _read_inventory(report)
    findings: list[Finding] = []
    findings += _av_findings("camera", inv.camera_present, inv.camera_working)
    findings += _av_findings("microphone", inv.microphone_present, inv.microphone_working)
    findings += _memory_findings(inv, th)
    findings += _disk_findings(inv, th)
    findings += _rtc_findings(inv, th)
    findings += _other_findings(inv, th)
    findings += _problem_findings(report)
    # Blockers first: the page shows what stops the machine before what merely needs a look.
    findings.sort(key=lambda f: f.severity is not Severity.BLOCKER)
    return Assessment(inventory=inv, findings=tuple(findings))
