"""Judge a machine from its diagnostics report: can it serve telecare, and what to fix.

Findings are *blockers* (the machine can't go into a home as it is: no camera, a failing
disk, too little memory, no wake from the RTC) or *warnings* (it can, but someone should
look), each with a fix in plain words, Italian and English. The codes of the blockers the
edge also reports (``edge.diagnostics.telecare_issues``) are the same, so the device and the
workshop speak of one problem by one name.

Unknowns are warnings, never blockers: a report that could not read the camera says
"check the camera", not "no camera".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from control_plane.workshop.inventory import DiskInfo, Inventory, ReportError, read_inventory

__all__ = [
    "GIB",
    "Assessment",
    "DiskInfo",
    "Finding",
    "Inventory",
    "ReportError",
    "Severity",
    "Thresholds",
    "assess",
]

GIB = 1024**3

# MemTotal is below the installed memory by what firmware and the integrated GPU reserve;
# the edge applies the same allowance when only the usable figure is known.
_USABLE_SHARE = 0.9


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
    subject: str | None = None  # the disk or report section the finding is about, if any


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
class Assessment:
    """The inventory and the findings of one diagnostics report."""

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
        """Every built-in disk that needs an erasure certificate (see ``DiskInfo.identifier``)."""
        return frozenset(d.identifier for d in self.inventory.fixed_disks)


def _blocker(
    code: str, m_it: str, m_en: str, f_it: str, f_en: str, subject: str | None = None
) -> Finding:
    return Finding(code, Severity.BLOCKER, m_it, m_en, f_it, f_en, subject)


def _warning(
    code: str, m_it: str, m_en: str, f_it: str, f_en: str, subject: str | None = None
) -> Finding:
    return Finding(code, Severity.WARNING, m_it, m_en, f_it, f_en, subject)


_RERUN_IT = "Ripetere la diagnostica."
_RERUN_EN = "Run the diagnostics again."
_RERUN_AV_IT = "Ripetere la diagnostica con la prova di webcam e microfono."
_RERUN_AV_EN = "Run the diagnostics again with the camera and microphone test."


def _because(inv: Inventory, section: str) -> tuple[str, str]:
    why = inv.unreadable.get(section)
    return (f" ({why})", f" ({why})") if why else ("", "")


def _gib(size: float) -> str:
    return f"{size / GIB:.1f} GiB"


def _camera(inv: Inventory) -> list[Finding]:
    present, working = inv.camera_present, inv.camera_working
    fix_it, fix_en = "Collegare una webcam USB (UVC).", "Connect a USB (UVC) webcam."
    if present is None and working is None:
        why_it, why_en = _because(inv, "camera")
        return [
            _warning(
                "camera_unknown",
                f"La webcam non è stata verificata{why_it}.",
                f"The camera was not checked{why_en}.",
                _RERUN_AV_IT,
                _RERUN_AV_EN,
            )
        ]
    if present is False:
        return [
            _blocker(
                "no_camera",
                "Manca la webcam: senza non si fa la videochiamata.",
                "There is no camera: the video call needs one.",
                fix_it,
                fix_en,
            )
        ]
    if working is False:
        return [
            _blocker(
                "camera_not_working",
                "La webcam c'è ma non funziona.",
                "The camera is there but does not work.",
                "Controllare cavo e driver; altrimenti collegare una webcam USB (UVC).",
                "Check the cable and driver; otherwise connect a USB (UVC) webcam.",
            )
        ]
    if working is None:
        return [
            _warning(
                "camera_untested",
                "La webcam c'è ma non è stata provata.",
                "The camera is there but was not tested.",
                _RERUN_AV_IT,
                _RERUN_AV_EN,
            )
        ]
    return []


def _microphone(inv: Inventory) -> list[Finding]:
    present, working = inv.microphone_present, inv.microphone_working
    if present is None and working is None:
        why_it, why_en = _because(inv, "microphone")
        return [
            _warning(
                "microphone_unknown",
                f"Il microfono non è stato verificato{why_it}.",
                f"The microphone was not checked{why_en}.",
                _RERUN_AV_IT,
                _RERUN_AV_EN,
            )
        ]
    if present is False:
        return [
            _blocker(
                "no_microphone",
                "Manca il microfono: l'assistito non potrebbe parlare.",
                "There is no microphone: the person could not speak.",
                "Collegare una webcam USB con microfono o una cuffia USB.",
                "Connect a USB webcam with a microphone, or a USB headset.",
            )
        ]
    if working is False:
        return [
            _blocker(
                "microphone_not_working",
                "Il microfono c'è ma non funziona.",
                "The microphone is there but does not work.",
                "Controllare il volume di acquisizione; altrimenti collegare un microfono USB.",
                "Check the capture volume; otherwise connect a USB microphone.",
            )
        ]
    if working is None:
        return [
            _warning(
                "microphone_untested",
                "Il microfono c'è ma non è stato provato.",
                "The microphone is there but was not tested.",
                _RERUN_AV_IT,
                _RERUN_AV_EN,
            )
        ]
    return []


def _memory(inv: Inventory, th: Thresholds) -> list[Finding]:
    installed, usable = inv.memory_installed_bytes, inv.memory_usable_bytes
    if installed is None and usable is None:
        why_it, why_en = _because(inv, "memory")
        return [
            _warning(
                "memory_unknown",
                f"La quantità di memoria non è nota{why_it}.",
                f"The amount of memory is unknown{why_en}.",
                _RERUN_IT,
                _RERUN_EN,
            )
        ]

    def below(limit: int) -> bool:
        if installed is not None:
            return installed < limit
        return usable is not None and usable < _USABLE_SHARE * limit

    shown = _gib(installed if installed is not None else usable or 0)
    kind = f" {inv.memory_type}" if inv.memory_type else ""
    target = _gib(th.recommended_memory_bytes)
    free = None
    if inv.memory_slots is not None and inv.memory_modules is not None:
        free = max(inv.memory_slots - inv.memory_modules, 0)
    if free:
        how_it = f"Aggiungere moduli{kind} negli slot liberi ({free}) fino ad almeno {target}."
        how_en = f"Add{kind} modules in the free slots ({free}) to reach at least {target}."
    else:
        how_it = f"Sostituire i moduli con moduli{kind} più grandi, fino ad almeno {target}."
        how_en = f"Replace the modules with larger{kind} ones, to reach at least {target}."
    if below(th.min_memory_bytes):
        return [
            _blocker(
                "low_memory",
                f"Memoria insufficiente: {shown}, ne servono almeno {_gib(th.min_memory_bytes)}.",
                f"Too little memory: {shown}; at least {_gib(th.min_memory_bytes)} needed.",
                how_it,
                how_en,
            )
        ]
    if below(th.recommended_memory_bytes):
        return [
            _warning(
                "memory_below_recommended",
                f"Memoria scarsa: {shown}; la videochiamata può essere lenta.",
                f"Little memory: {shown}; the video call may be slow.",
                how_it,
                how_en,
            )
        ]
    return []


def _disk_health(disk: DiskInfo, th: Thresholds) -> list[Finding]:
    who = disk.identifier
    label = f"{disk.name} ({who})"
    replace_it = f"Sostituire il disco {label} con un SSD."
    replace_en = f"Replace disk {label} with an SSD."
    out: list[Finding] = []
    if disk.serial is None:
        out.append(
            _warning(
                "disk_serial_unknown",
                f"Il disco {disk.name} non ha comunicato il numero di serie.",
                f"Disk {disk.name} did not report its serial number.",
                f"Leggere il numero di serie sull'etichetta; nel certificato di "
                f"cancellazione il disco si chiama «{who}».",
                f"Read the serial off the disk's label; the erasure certificate calls the "
                f"disk '{who}'.",
                who,
            )
        )
    reallocated = disk.reallocated_sectors or 0
    if disk.smart_passed is False:
        out.append(
            _blocker(
                "failing_disk",
                f"Il disco {label} segnala un guasto (SMART).",
                f"Disk {label} reports a failure (SMART).",
                replace_it,
                replace_en,
                who,
            )
        )
    elif reallocated >= th.reallocated_sectors_blocker:
        out.append(
            _blocker(
                "failing_disk",
                f"Il disco {label} ha {reallocated} settori riallocati: si sta guastando.",
                f"Disk {label} has {reallocated} reallocated sectors: it is failing.",
                replace_it,
                replace_en,
                who,
            )
        )
    elif reallocated > 0 or (disk.pending_sectors or 0) > 0:
        pending = disk.pending_sectors or 0
        out.append(
            _warning(
                "disk_bad_sectors",
                f"Il disco {label} ha {reallocated} settori riallocati e {pending} instabili.",
                f"Disk {label} has {reallocated} reallocated and {pending} pending sectors.",
                "Ricontrollare dopo la cancellazione; se i numeri crescono, sostituirlo.",
                "Check again after the erasure; if the counts grow, replace it.",
                who,
            )
        )
    if disk.smart_available is False:
        out.append(
            _warning(
                "disk_smart_unavailable",
                f"La salute del disco {label} non è leggibile (SMART assente).",
                f"The health of disk {label} can't be read (no SMART).",
                "Fare una scansione di superficie prima di usarlo.",
                "Run a surface scan before using it.",
                who,
            )
        )
    hours = disk.power_on_hours
    if hours is not None and hours >= th.max_power_on_hours and disk.smart_passed is not False:
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
    return out


def _disks(inv: Inventory, th: Thresholds) -> list[Finding]:
    if inv.disks is None:
        why_it, why_en = _because(inv, "disks")
        return [
            _warning(
                "disks_unknown",
                f"I dischi non sono stati elencati{why_it}.",
                f"The disks were not listed{why_en}.",
                _RERUN_IT,
                _RERUN_EN,
            )
        ]
    out: list[Finding] = []
    for disk in inv.removable_disks:
        # The workshop boots its diagnostics from a USB stick, so removable media are
        # expected; but a donor's memory card left in a slot is not covered by any certificate.
        out.append(
            _warning(
                "removable_media",
                f"Supporto rimovibile {disk.name} ({disk.model or 'modello ignoto'}).",
                f"Removable medium {disk.name} ({disk.model or 'unknown model'}).",
                "Se non è la chiavetta del laboratorio, toglierlo e cancellarlo a parte.",
                "Unless it is the workshop's own stick, remove it and erase it separately.",
                disk.identifier,
            )
        )
    fixed = inv.fixed_disks
    if not fixed:
        out.append(
            _blocker(
                "no_disk",
                "Nessun disco interno trovato.",
                "No internal disk found.",
                "Montare un SSD di almeno 32 GB.",
                "Fit an SSD of 32 GB or more.",
            )
        )
        return out
    for disk in fixed:
        out += _disk_health(disk, th)
    sizes = [d.size_bytes for d in fixed]
    if all(size is not None for size in sizes):
        largest = max(size or 0 for size in sizes)
        if largest < th.min_disk_bytes:
            out.append(
                _blocker(
                    "disk_too_small",
                    f"Il disco più grande è di {largest / 10**9:.0f} GB; ne servono almeno "
                    f"{th.min_disk_bytes / 10**9:.0f}.",
                    f"The largest disk holds {largest / 10**9:.0f} GB; at least "
                    f"{th.min_disk_bytes / 10**9:.0f} GB are needed.",
                    "Montare un SSD di almeno 32 GB.",
                    "Fit an SSD of 32 GB or more.",
                )
            )
    return out


def _rtc(inv: Inventory, th: Thresholds) -> list[Finding]:
    if inv.rtc_present is None and inv.rtc_wakealarm is None:
        why_it, why_en = _because(inv, "rtc")
        return [
            _warning(
                "rtc_unknown",
                f"La sveglia del BIOS (RTC) non è stata verificata{why_it}.",
                f"The BIOS wake alarm (RTC) was not checked{why_en}.",
                "Ripetere la diagnostica con la prova di accensione programmata.",
                "Run the diagnostics again with the timed wake test.",
            )
        ]
    out: list[Finding] = []
    if inv.rtc_present is False:
        out.append(
            _blocker(
                "no_rtc_wake",
                "L'orologio di sistema (RTC) non risponde: il PC non può accendersi da solo.",
                "The real-time clock does not answer: the PC can't power itself on.",
                "Controllare il BIOS e la pila tampone; se non basta, la macchina va venduta "
                "o donata, non in una casa.",
                "Check the BIOS and the CMOS battery; if that fails, sell or donate the "
                "machine rather than place it in a home.",
            )
        )
        return out
    if inv.rtc_wakealarm is False:
        out.append(
            _blocker(
                "no_rtc_wake",
                "Il PC non può accendersi all'ora programmata (sveglia RTC assente).",
                "The PC can't power on at a set time (no RTC wake alarm).",
                "Nel BIOS attivare «Resume by RTC Alarm» / «Power On by RTC» e ripetere la prova.",
                "In the BIOS enable 'Resume by RTC Alarm' / 'Power On by RTC' and test again.",
            )
        )
    if inv.rtc_battery_ok is False:
        # A flat coin cell loses the clock at the first power cut, and with it every alarm.
        out.append(
            _blocker(
                "rtc_battery_dead",
                "La pila tampone del BIOS è scarica: dopo un blackout il PC non si sveglierebbe.",
                "The CMOS battery is flat: after a power cut the PC would not wake.",
                "Sostituire la pila a bottone (di solito CR2032).",
                "Replace the coin cell (usually a CR2032).",
            )
        )
    ahead = inv.rtc_max_ahead_s
    if inv.rtc_wakealarm and ahead is not None and ahead < th.min_rtc_ahead_s:
        out.append(
            _warning(
                "rtc_short_horizon",
                f"La sveglia si può programmare solo {ahead // 3600} ore avanti: il PC farà "
                "accensioni intermedie.",
                f"The alarm can only be set {ahead // 3600} hours ahead: the PC will make "
                "relay wakes.",
                "Aggiornare il BIOS se possibile; altrimenti può restare così.",
                "Update the BIOS if possible; otherwise it can stay as it is.",
            )
        )
    return out


def _cpu_and_battery(inv: Inventory, th: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    if inv.cpu_64bit is False:
        out.append(
            _blocker(
                "cpu_32bit",
                "Il processore è solo a 32 bit: il sistema di teleassistenza non si installa.",
                "The CPU is 32-bit only: the telecare system can't be installed.",
                "Destinare la macchina alla vendita, alla donazione o al riciclo.",
                "Sell, donate on or recycle the machine.",
            )
        )
    if inv.cpu_cores is not None and inv.cpu_cores < th.min_cpu_cores:
        out.append(
            _warning(
                "cpu_few_cores",
                f"Il processore ha {inv.cpu_cores} core: la videochiamata può scattare.",
                f"The CPU has {inv.cpu_cores} core(s): the video call may stutter.",
                "Provare una videochiamata completa prima della consegna.",
                "Try a full video call before deployment.",
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


def _unreadable(inv: Inventory, covered: set[str]) -> list[Finding]:
    # What the edge could not read and no finding above already explains.
    return [
        _warning(
            "diagnostics_incomplete",
            f"La diagnostica non ha letto tutto di «{section}»: {why}",
            f"The diagnostics could not fully read '{section}': {why}",
            _RERUN_IT,
            _RERUN_EN,
            section,
        )
        for section, why in inv.unreadable.items()
        if section not in covered
    ]


def assess(report: Mapping[str, Any], thresholds: Thresholds | None = None) -> Assessment:
    """The inventory and findings of an edge diagnostics report (ReportError if malformed)."""
    th = thresholds or Thresholds()
    inv = read_inventory(report)
    findings = _camera(inv) + _microphone(inv) + _memory(inv, th) + _disks(inv, th)
    findings += _rtc(inv, th) + _cpu_and_battery(inv, th)
    # The "*_unknown" findings already carry the edge's reason for their section.
    unknown_sections = {
        f.code.removesuffix("_unknown") for f in findings if f.code.endswith("_unknown")
    }
    findings += _unreadable(inv, unknown_sections)
    # Blockers first: the page shows what stops the machine before what merely needs a look.
    findings.sort(key=lambda f: f.severity is not Severity.BLOCKER)
    return Assessment(inventory=inv, findings=tuple(findings))
