"""build_report and the command for real, on whatever machine runs the tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from edge.diagnostics import build_report, format_summary, main, telecare_issues
from edge.diagnostics.command import run
from tests.diagnostics.test_diagnostics_upload import _args

SECTIONS = ("system", "board", "bios", "cpu", "memory", "disks", "network", "battery",
            "camera", "microphone", "rtc", "problems")  # fmt: skip


def test_real_machine_degrades_without_raising() -> None:
    report = build_report()
    json.loads(json.dumps(report))
    assert report["v"] == 1
    for section in SECTIONS:
        assert section in report
    # Whatever this machine lacks (dmidecode, camera, RTC...) is null or explained, not raised.
    assert isinstance(report["problems"], dict)
    assert all(isinstance(why, str) and why for why in report["problems"].values())
    assert report["cpu"]["threads"] is None or report["cpu"]["threads"] >= 1
    assert report["memory"]["total_bytes"] is None or report["memory"]["total_bytes"] > 0
    assert report["camera"]["working"] is None  # never captured unless asked
    assert isinstance(telecare_issues(report), list)
    assert format_summary(report).startswith("ΔiFronte — rapporto hardware del ")
    assert format_summary(report, lang="en").startswith("ΔiFronte — hardware report of ")


def test_real_command_writes_the_report(tmp_path: Path) -> None:
    out = io.StringIO()
    target = tmp_path / "report.json"
    assert run(_args("--json", "-o", str(target)), out=out) == 0
    assert json.loads(target.read_text())["v"] == 1
    assert json.loads(out.getvalue())["v"] == 1


def test_main_parses_its_own_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lang", "en", "-o", str(tmp_path / "r.json")]) == 0
    assert (tmp_path / "r.json").exists()
    assert capsys.readouterr().out.startswith("ΔiFronte — hardware report of ")
