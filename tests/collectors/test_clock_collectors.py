"""RTC drift against the system clock, and the NTP sync state with its fallbacks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.collectors.clock import (
    NtpCollector,
    RtcCollector,
    kernel_clock_synced,
    read_rtc_time,
    rtc_keeps_local_time,
)
from edge.collectors.runner import CommandTimeout
from tests.collectors.collector_fakes import FakeRunner, result

TIMEDATECTL = ("timedatectl", "show", "-p", "NTPSynchronized", "--value")
NOW = 1_709_287_200.0  # 2024-03-01 10:00:00 UTC


@pytest.fixture
def rtc(tmp_path: Path) -> Path:
    rtc_dir = tmp_path / "rtc0"
    rtc_dir.mkdir()
    return rtc_dir


@pytest.fixture
def rome_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Rome")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_drift_from_since_epoch(rtc: Path) -> None:
    (rtc / "since_epoch").write_text(f"{int(NOW) - 95}\n")
    collector = RtcCollector(rtc, clock=lambda: NOW + 0.25)
    assert collector.collect() == {"rtc.drift_s": -95.25}


def test_drift_from_date_and_time_files(rtc: Path) -> None:
    (rtc / "date").write_text("2024-03-01\n")
    (rtc / "time").write_text("10:02:00\n")
    assert RtcCollector(rtc, clock=lambda: NOW).collect() == {"rtc.drift_s": 120.0}


def test_rtc_keeping_local_time(rtc: Path, rome_tz: None) -> None:
    # At 10:00 UTC Rome (CET, UTC+1) reads 11:00; a LOCAL RTC shows that wall clock.
    (rtc / "since_epoch").write_text(f"{int(NOW) + 3600}\n")
    assert read_rtc_time(rtc, local=True) == NOW
    assert RtcCollector(rtc, local=True, clock=lambda: NOW).collect() == {"rtc.drift_s": 0.0}


def test_unreadable_rtc_names_the_file(rtc: Path) -> None:
    (rtc / "since_epoch").write_text("garbage\n")
    with pytest.raises(ValueError, match="since_epoch: not an integer"):
        RtcCollector(rtc).collect()
    (rtc / "since_epoch").unlink()
    with pytest.raises(FileNotFoundError):
        RtcCollector(rtc).collect()
    (rtc / "date").write_text("2024-13-45\n")
    (rtc / "time").write_text("99:00:00\n")
    with pytest.raises(ValueError, match="unreadable date/time"):
        RtcCollector(rtc).collect()


def test_adjtime_local_or_utc(tmp_path: Path) -> None:
    adjtime = tmp_path / "adjtime"
    assert rtc_keeps_local_time(adjtime) is False
    adjtime.write_text("0.000000 1709287200 0.000000\n1709287200\nLOCAL\n")
    assert rtc_keeps_local_time(adjtime) is True
    adjtime.write_text("0.0 0 0.0\n0\nUTC\n")
    assert rtc_keeps_local_time(adjtime) is False


def _ntp(run: FakeRunner, timesync: Path, kernel: bool | None = None) -> NtpCollector:
    return NtpCollector(run, timesync_dir=timesync, kernel=lambda: kernel)


@pytest.mark.parametrize(("kernel", "synced"), [(True, 1.0), (False, 0.0)])
def test_ntp_from_the_kernel_spawns_nothing(tmp_path: Path, kernel: bool, synced: float) -> None:
    run = FakeRunner({TIMEDATECTL: result(TIMEDATECTL, "yes\n" if not kernel else "no\n")})
    assert _ntp(run, tmp_path, kernel=kernel).collect() == {"ntp.synced": synced}
    assert run.calls == []


@pytest.mark.parametrize(("answer", "synced"), [("yes\n", 1.0), ("no\n", 0.0)])
def test_ntp_from_timedatectl_without_adjtimex(tmp_path: Path, answer: str, synced: float) -> None:
    run = FakeRunner({TIMEDATECTL: result(TIMEDATECTL, answer)})
    assert _ntp(run, tmp_path).collect() == {"ntp.synced": synced}
    assert run.calls == [TIMEDATECTL]


def test_ntp_without_systemd_falls_back_to_the_timesync_file(tmp_path: Path) -> None:
    no_systemd = result(
        TIMEDATECTL, "", 1, "System has not been booted with systemd as init system (PID 1)."
    )
    run = FakeRunner({TIMEDATECTL: no_systemd})
    with pytest.raises(RuntimeError, match="cannot tell"):
        _ntp(run, tmp_path).collect()
    (tmp_path / "synchronized").touch()
    assert _ntp(run, tmp_path).collect() == {"ntp.synced": 1.0}


def test_ntp_timeout_and_missing_tool_degrade(tmp_path: Path) -> None:
    timeout = FakeRunner({TIMEDATECTL: CommandTimeout("timedatectl: no answer within 5 s")})
    with pytest.raises(RuntimeError, match="cannot tell: no timedatectl"):
        _ntp(timeout, tmp_path).collect()
    (tmp_path / "synchronized").touch()
    assert _ntp(FakeRunner(), tmp_path).collect() == {"ntp.synced": 1.0}


def test_kernel_clock_state_is_readable_here() -> None:
    assert kernel_clock_synced() in (True, False, None)
