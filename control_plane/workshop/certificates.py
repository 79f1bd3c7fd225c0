"""Erasure certificates: one per machine (every disk it had) and a summary per batch.

A donor or an auditor gets a PDF, Italian first with English underneath, that ties each
erased disk (serial, model, method, verification, operator, time) to the machine's serial
number and asset tag. The certificate carries a SHA-256 fingerprint of its data, so a
printed copy can be matched against the workshop's records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from fpdf.fonts import FontFace

from control_plane.workshop.documents import (
    Organization,
    WorkshopPDF,
    format_bytes,
    format_time,
)


class ErasureMethod(StrEnum):
    """How a disk was erased."""

    OVERWRITE = "overwrite"
    ATA_SECURE_ERASE = "ata_secure_erase"
    ATA_ENHANCED_SECURE_ERASE = "ata_enhanced_secure_erase"
    ATA_SANITIZE = "ata_sanitize"
    NVME_FORMAT = "nvme_format"
    NVME_SANITIZE = "nvme_sanitize"
    CRYPTOGRAPHIC_ERASE = "cryptographic_erase"
    PHYSICAL_DESTRUCTION = "physical_destruction"


_METHOD_NAMES: dict[ErasureMethod, tuple[str, str]] = {
    ErasureMethod.OVERWRITE: ("Sovrascrittura", "Overwrite"),
    ErasureMethod.ATA_SECURE_ERASE: ("ATA Secure Erase", "ATA Secure Erase"),
    ErasureMethod.ATA_ENHANCED_SECURE_ERASE: (
        "ATA Enhanced Secure Erase",
        "ATA Enhanced Secure Erase",
    ),
    ErasureMethod.ATA_SANITIZE: ("ATA Sanitize", "ATA Sanitize"),
    ErasureMethod.NVME_FORMAT: ("NVMe Format con cancellazione", "NVMe Format with erase"),
    ErasureMethod.NVME_SANITIZE: ("NVMe Sanitize", "NVMe Sanitize"),
    ErasureMethod.CRYPTOGRAPHIC_ERASE: ("Cancellazione crittografica", "Cryptographic erase"),
    ErasureMethod.PHYSICAL_DESTRUCTION: ("Distruzione fisica", "Physical destruction"),
}


class VerificationResult(StrEnum):
    """Whether reading the disk back after erasure found it clean."""

    PASSED = "passed"
    FAILED = "failed"


_VERIFICATION_NAMES = {
    VerificationResult.PASSED: ("Superata", "Passed"),
    VerificationResult.FAILED: ("Non superata", "Failed"),
}


def method_names(method: ErasureMethod | str) -> tuple[str, str]:
    """An erasure method's name in Italian and English, for forms and lists."""
    return _METHOD_NAMES[ErasureMethod(method)]


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: must carry a time zone")


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    """The erasure of one disk, as the operator recorded it."""

    disk_serial: str
    disk_model: str
    method: ErasureMethod
    verification: VerificationResult
    operator: str
    started_at: datetime
    finished_at: datetime
    passes: int | None = None  # for overwrites: how many passes
    size_bytes: int | None = None
    tool: str = ""  # e.g. "nwipe 0.34", "hdparm 9.65", "nvme-cli 2.4"
    verification_detail: str = ""  # e.g. "full read-back", "10 % random sample"
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.disk_serial.strip():
            raise ValueError("disk_serial: must not be empty")
        if not self.operator.strip():
            raise ValueError("operator: must not be empty")
        # Coerce so that rows read from the database (plain strings) are accepted.
        object.__setattr__(self, "method", ErasureMethod(self.method))
        object.__setattr__(self, "verification", VerificationResult(self.verification))
        _aware(self.started_at, "started_at")
        _aware(self.finished_at, "finished_at")
        if self.finished_at < self.started_at:
            raise ValueError("finished_at: is before started_at")
        if self.method is ErasureMethod.OVERWRITE and (self.passes is None or self.passes < 1):
            raise ValueError("passes: an overwrite needs the number of passes (1 or more)")
        if self.passes is not None and self.passes < 1:
            raise ValueError("passes: must be 1 or more")
        if self.size_bytes is not None and self.size_bytes < 0:
            raise ValueError("size_bytes: must not be negative")

    @property
    def passed(self) -> bool:
        """Whether the verification after erasure passed."""
        return self.verification is VerificationResult.PASSED

    def method_text(self) -> tuple[str, str]:
        """The method in Italian and English, with the passes for an overwrite."""
        it, en = _METHOD_NAMES[self.method]
        if self.passes is not None:
            it += f" ({self.passes} {'passaggio' if self.passes == 1 else 'passaggi'})"
            en += f" ({self.passes} {'pass' if self.passes == 1 else 'passes'})"
        return it, en

    def verification_text(self) -> tuple[str, str]:
        """The verification result in Italian and English."""
        return _VERIFICATION_NAMES[self.verification]


@dataclass(frozen=True, slots=True)
class MachineIdentity:
    """The machine a certificate is about."""

    asset_tag: str
    serial_number: str
    manufacturer: str = ""
    model: str = ""
    donor: str = ""
    received_on: date | None = None

    def __post_init__(self) -> None:
        if not self.asset_tag.strip():
            raise ValueError("asset_tag: must not be empty")

    @property
    def make_model(self) -> str:
        """Manufacturer and model in one string."""
        return " ".join(p for p in (self.manufacturer, self.model) if p)


@dataclass(frozen=True, slots=True)
class ErasureBatch:
    """A group of machines erased together, e.g. one donor's pallet."""

    reference: str
    description: str = ""
    donor: str = ""
    received_on: date | None = None


def certified_serials(records: Sequence[ErasureRecord]) -> frozenset[str]:
    """Serials of the disks with a passed verification (what the lifecycle rules need)."""
    return frozenset(r.disk_serial for r in records if r.passed)


def certificate_fingerprint(machine: MachineIdentity, records: Sequence[ErasureRecord]) -> str:
    """SHA-256 over the certificate's data in a canonical form, to match paper to records."""
    payload = {
        "machine": {"asset_tag": machine.asset_tag, "serial_number": machine.serial_number},
        "disks": sorted(
            (
                {
                    "serial": r.disk_serial,
                    "model": r.disk_model,
                    "method": r.method.value,
                    "passes": r.passes,
                    "verification": r.verification.value,
                    "operator": r.operator,
                    "started_at": r.started_at.astimezone(UTC).isoformat(),
                    "finished_at": r.finished_at.astimezone(UTC).isoformat(),
                }
                for r in records
            ),
            key=lambda d: (str(d["serial"]), str(d["started_at"])),
        ),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _grouped(fingerprint: str) -> str:
    return " ".join(fingerprint[i : i + 8] for i in range(0, len(fingerprint), 8))


def _check_records(records: Sequence[ErasureRecord], where: str) -> None:
    if not records:
        raise ValueError(f"{where}: at least one erasure record is needed for a certificate")


def _latest(records: Sequence[ErasureRecord]) -> datetime:
    return max(r.finished_at for r in records)


def erasure_certificate_pdf(
    machine: MachineIdentity,
    records: Sequence[ErasureRecord],
    org: Organization,
    *,
    issued_at: datetime | None = None,
) -> bytes:
    """The erasure certificate of one machine: every disk, how it was erased and verified."""
    _check_records(records, "records")
    issued = issued_at or _latest(records)
    _aware(issued, "issued_at")
    fingerprint = certificate_fingerprint(machine, records)
    number = f"CE-{machine.asset_tag}-{fingerprint[:8].upper()}"
    pdf = WorkshopPDF(
        org=org,
        title_it="Certificato di cancellazione dei dati",
        title_en="Data erasure certificate",
        created_at=issued,
    )
    pdf.add_page()
    pdf.heading("Certificato di cancellazione dei dati", "Data erasure certificate")
    pdf.field("Numero del certificato", "Certificate number", number)
    pdf.field("Data di emissione", "Issued on", format_time(issued, pdf.tz))
    pdf.field("Etichetta della macchina", "Machine asset tag", machine.asset_tag)
    pdf.field("Numero di serie della macchina", "Machine serial number", machine.serial_number)
    if machine.make_model:
        pdf.field("Marca e modello", "Make and model", machine.make_model)
    if machine.donor:
        pdf.field("Donatore", "Donor", machine.donor)
    if machine.received_on:
        pdf.field("Ricevuta il", "Received on", f"{machine.received_on:%d/%m/%Y}")

    failed = [r for r in records if not r.passed]
    if failed:
        serials = ", ".join(r.disk_serial for r in failed)
        outcome = (
            f"ATTENZIONE: verifica non superata per {serials}",
            f"WARNING: verification failed for {serials}",
        )
    else:
        outcome = (
            "Tutti i dischi sono stati cancellati e la verifica è superata",
            "Every disk was erased and passed verification",
        )
    pdf.field("Esito complessivo", "Overall result", f"{outcome[0]}\n{outcome[1]}")
    pdf.ln(2)
    pdf.paragraph(
        f"{org.name} certifica che i dischi elencati, appartenenti alla macchina indicata, "
        "sono stati cancellati con il metodo riportato e che il risultato è stato verificato "
        "come indicato per ciascun disco.",
        f"{org.name} certifies that the disks listed below, belonging to the machine above, "
        "were erased with the method stated and that the result was verified as shown "
        "for each disk.",
    )

    total = len(records)
    for index, record in enumerate(records, start=1):
        # A disk's block (about 75 mm) reads badly split over two pages.
        pdf.keep_space(80)
        pdf.ln(2)
        pdf.heading(f"Disco {index} di {total}", f"Disk {index} of {total}", size=12)
        method_it, method_en = record.method_text()
        verification_it, verification_en = record.verification_text()
        detail = f" — {record.verification_detail}" if record.verification_detail else ""
        tool = f" — {record.tool}" if record.tool else ""
        pdf.field("Numero di serie del disco", "Disk serial number", record.disk_serial)
        pdf.field(
            "Modello e capacità",
            "Model and capacity",
            f"{record.disk_model}, {format_bytes(record.size_bytes)}",
        )
        pdf.field("Metodo di cancellazione", "Erasure method", f"{method_it}{tool}\n{method_en}")
        pdf.field(
            "Inizio e fine",
            "Started and finished",
            f"{format_time(record.started_at, pdf.tz)} → {format_time(record.finished_at, pdf.tz)}",
        )
        pdf.field("Verifica", "Verification", f"{verification_it}{detail}\n{verification_en}")
        pdf.field("Operatore", "Operator", record.operator)
        if record.notes:
            pdf.field("Note", "Notes", record.notes)

    pdf.ln(3)
    pdf.field("Impronta SHA-256", "SHA-256 fingerprint", _grouped(fingerprint))
    operators = ", ".join(sorted({r.operator for r in records}))
    pdf.signature_block("Operatore", "Operator", operators)
    pdf.signature_block("Per l'organizzazione", "For the organisation")
    return pdf.to_bytes()


def batch_summary_pdf(
    batch: ErasureBatch,
    machines_with_records: Sequence[tuple[MachineIdentity, Sequence[ErasureRecord]]],
    org: Organization,
    *,
    issued_at: datetime | None = None,
) -> bytes:
    """A summary of a batch: one row per disk erased, with totals and anything not certified."""
    if not machines_with_records:
        raise ValueError("machines_with_records: the batch has no machines")
    all_records = [r for _, records in machines_with_records for r in records]
    issued = issued_at or (_latest(all_records) if all_records else datetime.now(UTC))
    _aware(issued, "issued_at")
    pdf = WorkshopPDF(
        org=org,
        title_it="Riepilogo delle cancellazioni",
        title_en="Erasure summary",
        created_at=issued,
        # Landscape: serial numbers are long and must never wrap in the middle.
        landscape=True,
    )
    pdf.add_page()
    pdf.heading("Riepilogo delle cancellazioni", "Erasure summary")
    pdf.field("Lotto", "Batch", batch.reference)
    if batch.description:
        pdf.field("Descrizione", "Description", batch.description)
    if batch.donor:
        pdf.field("Donatore", "Donor", batch.donor)
    if batch.received_on:
        pdf.field("Ricevuto il", "Received on", f"{batch.received_on:%d/%m/%Y}")
    pdf.field("Data di emissione", "Issued on", format_time(issued, pdf.tz))

    passed = sum(1 for r in all_records if r.passed)
    failed = len(all_records) - passed
    without = [m for m, records in machines_with_records if not records]
    pdf.field("Macchine", "Machines", str(len(machines_with_records)))
    pdf.field("Dischi cancellati", "Disks erased", str(len(all_records)))
    pdf.field("Verifiche superate", "Verifications passed", str(passed))
    pdf.field("Verifiche non superate", "Verifications failed", str(failed))
    if without:
        pdf.field(
            "Macchine senza certificato",
            "Machines without a certificate",
            ", ".join(m.asset_tag for m in without),
        )
    operators = sorted({r.operator for r in all_records})
    if operators:
        pdf.field("Operatori", "Operators", ", ".join(operators))
    pdf.ln(3)

    headings = (
        ("Etichetta", "Tag"),
        ("Seriale macchina", "Machine serial"),
        ("Seriale disco", "Disk serial"),
        ("Metodo", "Method"),
        ("Verifica", "Verification"),
        ("Operatore", "Operator"),
        ("Fine", "Finished"),
    )
    pdf.font(7.5)
    with pdf.table(
        col_widths=(30, 34, 44, 44, 26, 40, 43),
        text_align="LEFT",
        line_height=3.6,
        headings_style=FontFace(emphasis="BOLD", fill_color=(232, 232, 232)),
        padding=1,
    ) as table:
        head = table.row()
        for it, en in headings:
            head.cell(pdf.t(f"{it}\n{en}"))
        for machine, records in machines_with_records:
            if not records:
                row = table.row()
                for value in (machine.asset_tag, machine.serial_number):
                    row.cell(pdf.t(value))
                row.cell(pdf.t("nessun certificato\nno certificate"), colspan=5)
                continue
            for record in records:
                method_it, method_en = record.method_text()
                verification_it, verification_en = record.verification_text()
                row = table.row()
                for value in (
                    machine.asset_tag,
                    machine.serial_number,
                    record.disk_serial,
                    f"{method_it}\n{method_en}",
                    f"{verification_it}\n{verification_en}",
                    record.operator,
                    format_time(record.finished_at, pdf.tz),
                ):
                    row.cell(pdf.t(value))
    pdf.signature_block("Per l'organizzazione", "For the organisation")
    return pdf.to_bytes()
