"""Erasure certificates and batch summaries: the PDFs say what an auditor needs to read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from control_plane.workshop import documents
from control_plane.workshop.certificates import (
    ErasureBatch,
    ErasureMethod,
    ErasureRecord,
    MachineIdentity,
    VerificationResult,
    batch_summary_pdf,
    certificate_fingerprint,
    certified_serials,
    erasure_certificate_pdf,
)
from control_plane.workshop.documents import Organization, transliterate
from control_plane.workshop.lifecycle import (
    MachineFacts,
    MachineState,
    TransitionError,
    TransitionParams,
    check_transition,
)
from tests.workshop.pdf_helpers import base_fonts, pdf_text, reader

ORG = Organization(
    name="Cooperativa ΔiFronte",
    address="Via della Pace 1, Città di Castello",
    tax_code="P.IVA 01234567890",
)
T0 = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)

MACHINE = MachineIdentity(
    asset_tag="DF-2026-000123",
    serial_number="PC0ABCDE",
    manufacturer="Lenovo",
    model="ThinkCentre M700",
    donor="Università degli Studi di Perugia",
    received_on=date(2026, 3, 2),
)

HDD = ErasureRecord(
    disk_serial="WD-WCC4N1234567",
    disk_model="WDC WD5000AAKX",
    method=ErasureMethod.OVERWRITE,
    passes=1,
    verification=VerificationResult.PASSED,
    verification_detail="rilettura completa",
    operator="Giulia Bianchi",
    started_at=T0,
    finished_at=T0 + timedelta(hours=2, minutes=30),
    size_bytes=500_107_862_016,
    tool="nwipe 0.34",
)

SSD = ErasureRecord(
    disk_serial="S3Z9NB0K123456",
    disk_model="Samsung SSD 860 EVO",
    method=ErasureMethod.NVME_SANITIZE,
    verification=VerificationResult.PASSED,
    operator="Marco Rossi",
    started_at=T0,
    finished_at=T0 + timedelta(minutes=4),
    size_bytes=250_059_350_016,
)


def squashed(data: bytes) -> str:
    """PDF text with line breaks and runs of spaces folded, so wrapping doesn't matter."""
    return " ".join(pdf_text(data).split())


def test_certificate_names_disks_methods_operator_and_verification() -> None:
    data = erasure_certificate_pdf(MACHINE, [HDD, SSD], ORG)
    text = squashed(data)
    for expected in (
        "Certificato di cancellazione dei dati",
        "Data erasure certificate",
        "Cooperativa ΔiFronte",
        "Città di Castello",
        "DF-2026-000123",
        "PC0ABCDE",  # the machine's serial ties the certificate to the hardware
        "Lenovo ThinkCentre M700",
        "Università degli Studi di Perugia",
        "WD-WCC4N1234567",
        "S3Z9NB0K123456",
        "WDC WD5000AAKX, 500 GB",
        "Sovrascrittura (1 passaggio)",
        "Overwrite (1 pass)",
        "nwipe 0.34",
        "NVMe Sanitize",
        "Superata — rilettura completa",
        "Giulia Bianchi",
        "Marco Rossi",
        "Tutti i dischi sono stati cancellati e la verifica è superata",
        "Disco 1 di 2",
        "Disk 2 of 2",
        # 08:00 UTC shown in the organisation's zone, Rome in winter
        "05/03/2026 09:00 CET",
        "Pagina 1 di",
    ):
        assert expected in text, expected
    fingerprint = certificate_fingerprint(MACHINE, [HDD, SSD])
    assert f"CE-DF-2026-000123-{fingerprint[:8].upper()}" in text
    assert fingerprint[:8] in text


def test_italian_comes_before_english() -> None:
    text = squashed(erasure_certificate_pdf(MACHINE, [HDD], ORG))
    assert text.index("Metodo di cancellazione") < text.index("Erasure method")
    assert text.index("Verifica") < text.index("Verification")
    assert text.index("Superata") < text.index("Passed")


def test_failed_verification_is_stated_not_hidden() -> None:
    failed = dataclasses.replace(SSD, verification=VerificationResult.FAILED)
    text = squashed(erasure_certificate_pdf(MACHINE, [HDD, failed], ORG))
    assert "ATTENZIONE: verifica non superata per S3Z9NB0K123456" in text
    assert "WARNING: verification failed for S3Z9NB0K123456" in text
    assert "Non superata" in text
    assert "Tutti i dischi" not in text


def test_certificate_is_deterministic_and_fingerprint_tracks_the_data() -> None:
    first = erasure_certificate_pdf(MACHINE, [HDD, SSD], ORG)
    assert erasure_certificate_pdf(MACHINE, [HDD, SSD], ORG) == first
    # The order the records come in doesn't change what is certified.
    assert certificate_fingerprint(MACHINE, [SSD, HDD]) == certificate_fingerprint(
        MACHINE, [HDD, SSD]
    )
    other = dataclasses.replace(HDD, operator="Someone Else")
    assert certificate_fingerprint(MACHINE, [other, SSD]) != certificate_fingerprint(
        MACHINE, [HDD, SSD]
    )


def test_certificate_for_many_disks_spans_pages() -> None:
    records = [
        dataclasses.replace(HDD, disk_serial=f"WD-{i:04d}", started_at=T0, finished_at=T0)
        for i in range(6)
    ]
    data = erasure_certificate_pdf(MACHINE, records, ORG)
    pages = reader(data).pages
    assert len(pages) >= 2
    text = squashed(data)
    assert all(f"WD-{i:04d}" in text for i in range(6))
    assert f"Pagina {len(pages)} di {len(pages)}" in text


def test_certificate_needs_records() -> None:
    with pytest.raises(ValueError, match="records"):
        erasure_certificate_pdf(MACHINE, [], ORG)
    with pytest.raises(ValueError, match="issued_at"):
        erasure_certificate_pdf(MACHINE, [HDD], ORG, issued_at=datetime(2026, 3, 5))


def test_batch_summary() -> None:
    second = MachineIdentity("DF-2026-000124", "5XYZ123", "Dell", "Latitude E7450")
    third = MachineIdentity("DF-2026-000125", "CZC4411")
    failed = dataclasses.replace(SSD, disk_serial="S3ZFAIL", verification=VerificationResult.FAILED)
    batch = ErasureBatch(
        reference="LOT-2026-03",
        description="Pallet Università",
        donor="Università degli Studi di Perugia",
        received_on=date(2026, 3, 2),
    )
    data = batch_summary_pdf(batch, [(MACHINE, [HDD, SSD]), (second, [failed]), (third, [])], ORG)
    text = squashed(data)
    for expected in (
        "Riepilogo delle cancellazioni",
        "LOT-2026-03",
        "Pallet Università",
        "DF-2026-000123",
        "PC0ABCDE",
        "5XYZ123",
        "WD-WCC4N1234567",
        "S3Z9NB0K123456",
        "S3ZFAIL",
        "Sovrascrittura",
        "NVMe Sanitize",
        "Superata",
        "Non superata",
        "Giulia Bianchi",
        "Marco Rossi",
        "nessun certificato",
    ):
        assert expected in text, expected
    # Totals: 3 machines, 3 disks, 2 passed, 1 failed; the uncertified machine is named.
    assert "Macchine Machines 3" in text
    assert "Dischi cancellati Disks erased 3" in text
    assert "Verifiche superate Verifications passed 2" in text
    assert "Verifiche non superate Verifications failed 1" in text
    assert "Machines without a certificate DF-2026-000125" in text


def test_batch_summary_needs_machines() -> None:
    with pytest.raises(ValueError, match="machines_with_records"):
        batch_summary_pdf(ErasureBatch("LOT-1"), [], ORG)


def test_certificates_fall_back_to_core_fonts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(documents, "FONT_DIRS", (tmp_path,))
    data = erasure_certificate_pdf(MACHINE, [HDD, SSD], ORG)
    assert all(name.startswith("Helvetica") for name in base_fonts(data))
    text = squashed(data)
    # Latin-1 keeps the Italian accents; only the Δ is spelled out.
    assert "Cooperativa DiFronte" in text
    assert "Città di Castello" in text
    assert "Superata - rilettura completa" in text
    assert "WD-WCC4N1234567" in text
    summary = batch_summary_pdf(ErasureBatch("LOT-1"), [(MACHINE, [HDD])], ORG)
    assert "WD-WCC4N1234567" in squashed(summary)


def test_unicode_font_is_embedded_when_present() -> None:
    if documents.find_unicode_fonts() is None:
        pytest.skip("fonts-dejavu-core is not installed")
    assert any(
        n.startswith("DejaVu") for n in base_fonts(erasure_certificate_pdf(MACHINE, [HDD], ORG))
    )


def test_transliterate() -> None:
    assert transliterate("ΔiFronte — perché… “sì” €5 →") == 'DiFronte - perché... "sì" EUR5 ->'
    assert transliterate("Łódź") == "Lódz"  # ó is Latin-1, ź is not
    assert transliterate("日") == "?"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"disk_serial": " "}, "disk_serial"),
        ({"operator": ""}, "operator"),
        ({"started_at": datetime(2026, 3, 5, 8, 0)}, "started_at"),
        ({"finished_at": T0 - timedelta(minutes=1)}, "finished_at"),
        ({"passes": None}, "passes"),
        ({"passes": 0}, "passes"),
        ({"size_bytes": -1}, "size_bytes"),
    ],
)
def test_record_validation_names_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        dataclasses.replace(HDD, **change)  # type: ignore[arg-type]


def test_record_accepts_database_strings_and_any_zone() -> None:
    rome = timezone(timedelta(hours=1))
    record = ErasureRecord(
        disk_serial="X1",
        disk_model="M",
        method="ata_secure_erase",  # type: ignore[arg-type]
        verification="passed",  # type: ignore[arg-type]
        operator="op",
        started_at=datetime(2026, 3, 5, 9, 0, tzinfo=rome),
        finished_at=datetime(2026, 3, 5, 8, 30, tzinfo=UTC),
    )
    assert record.method is ErasureMethod.ATA_SECURE_ERASE
    assert record.passed


def test_organization_validation() -> None:
    with pytest.raises(ValueError, match="name"):
        Organization(name=" ")
    with pytest.raises(ValueError, match="timezone"):
        Organization(name="Coop", timezone="Mars/Olympus")


def test_certificates_feed_the_lifecycle_rule() -> None:
    failed = dataclasses.replace(SSD, verification=VerificationResult.FAILED)
    disks = frozenset({HDD.disk_serial, SSD.disk_serial})
    params = TransitionParams(actor="giulia", at=T0)

    passing = MachineFacts(
        state=MachineState.WIPED,
        disk_serials=disks,
        certified_disk_serials=certified_serials([HDD, SSD]),
        diagnostics_present=True,
    )
    check_transition(passing, MachineState.TESTED, params)

    # A failed verification is no certificate: the disk must be erased again.
    failing = dataclasses.replace(passing, certified_disk_serials=certified_serials([HDD, failed]))
    with pytest.raises(TransitionError) as caught:
        check_transition(failing, MachineState.TESTED, params)
    assert caught.value.code == "certificate_missing"
    assert SSD.disk_serial in caught.value.message_it
