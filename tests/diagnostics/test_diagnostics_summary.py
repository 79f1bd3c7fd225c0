"""format_summary: the technician's readable report, Italian first and English."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.diagnostics import format_summary
from tests.diagnostics.machine import t430

NOW = 1_709_288_553.0  # 2024-03-01 10:22:33 UTC


@pytest.fixture
def report(tmp_path: Path) -> dict[str, Any]:
    m = t430(tmp_path)
    return m.report(clock=NOW)


def test_italian_summary(report: dict[str, Any]) -> None:
    assert format_summary(report).splitlines() == [
        "ΔiFronte — rapporto hardware del 2024-03-01 10:22 UTC",
        "Sistema: LENOVO 2349KV5 (ThinkPad T430), matricola R9ABCDE",
        "Scheda madre: LENOVO 2349KV5",
        "BIOS: LENOVO G1ETB2WW (2.72 ), del 25/02/2019",
        "Processore: Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz, 2 core, 4 thread, 3.300 MHz",
        "Memoria: 4,0 GB (2 moduli)",
        "Disco sda: SMART OK, 12.345 ore (500 GB WDC WD5000AAKX-60U6AA0)",
        "Disco sdb: SMART non disponibile (15,5 GB USB3.0 Disk)",
        "Rete: enp0s25 (e1000e, 1.000 Mbit/s); wlp3s0 (iwlwifi, senza fili)",
        "Batteria: salute 73% (41,2 di 56,2 Wh)",
        "Webcam: presente (Integrated Camera: Integrated C), non provata",
        "Microfono: presente (HDA Intel PCH), non provato",
        "Orologio (RTC): presente, sveglia programmabile fino a 28 giorni avanti",
        "Idoneità per la teleassistenza: sì",
    ]


def test_english_summary(report: dict[str, Any]) -> None:
    lines = format_summary(report, lang="en").splitlines()
    assert lines[0] == "ΔiFronte — hardware report of 2024-03-01 10:22 UTC"
    assert "CPU: Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz, 2 cores, 4 threads, 3,300 MHz" in lines
    assert "Memory: 4.0 GB (2 modules)" in lines
    assert "Disk sda: SMART OK, 12,345 hours (500 GB WDC WD5000AAKX-60U6AA0)" in lines
    assert "BIOS: LENOVO G1ETB2WW (2.72 ), dated 2019-02-25" in lines
    assert lines[-1] == "Fit for telecare: yes"


def test_summary_of_a_poor_machine(report: dict[str, Any]) -> None:
    report["camera"] = {"present": False, "devices": [], "working": None}
    report["microphone"]["working"] = False
    report["disks"][0]["smart"].update(passed=False, reallocated_sectors=1234, pending_sectors=8)
    report["memory"].update(installed_bytes=1024**3, slots=4, modules=[{"size_bytes": 1024**3}])
    report["cpu"]["is_64bit"] = False
    report["rtc"].update(max_ahead_s=86400, local_time=True, battery_ok=False)
    report["battery"] = None
    report["problems"] = {"system": "dmidecode: not installed; read from /sys/class/dmi/id"}
    text = format_summary(report)
    for expected in (
        "Disco sda: SMART GUASTO, 12.345 ore, 1.234 settori riallocati, 8 settori instabili",
        "Memoria: 1,0 GB (1 modulo, 3 slot liberi)",
        "solo 32 bit",
        "Batteria: assente",
        "Webcam: assente",
        "Microfono: presente (HDA Intel PCH), NON funziona",
        "Orologio (RTC): presente, sveglia programmabile fino a 24 ore avanti, tiene l'ora locale,"
        " pila tampone scarica",
        "Non letto:\n  - system: dmidecode: not installed; read from /sys/class/dmi/id",
        "Idoneità per la teleassistenza: NO — manca la webcam, il microfono non funziona, "
        "disco guasto, memoria insufficiente, processore a 32 bit",
    ):
        assert expected in text


def test_summary_of_an_empty_report_never_fails() -> None:
    text = format_summary({"v": 1})
    assert "Sistema: non rilevabile" in text
    assert "Dischi: non rilevabile" in text
    assert text.endswith(
        "Idoneità per la teleassistenza: da verificare — non rilevati: "
        "webcam, microfono, memoria, dischi, orologio (rtc)"
    )
    assert "Disks: none" in format_summary({"disks": []}, lang="en")


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="lang: expected one of"):
        format_summary({}, lang="fr")
