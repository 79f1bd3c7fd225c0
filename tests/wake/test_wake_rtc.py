"""RTC backends: the fake kernel's semantics, SysfsRtc on a directory, rtcwake, the probe."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pytest

from edge.wake.planner import ONE_DAY_S, ONE_MONTH_S, ONE_YEAR_S
from edge.wake.rtc import FakeRtcDir, RtcError, RtcwakeRtc, SysfsRtc, probe_capabilities

T0 = 1_716_000_000


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(tmp_path: Path, clock: Clock) -> FakeRtcDir:
    return FakeRtcDir(tmp_path / "rtc0", clock=clock)


# --- the fake kernel ----------------------------------------------------------------------


def test_fake_write_while_armed_is_ebusy(fake: FakeRtcDir) -> None:
    fake.write("wakealarm", str(T0 + 600))
    assert fake.read("wakealarm") == f"{T0 + 600}\n"
    with pytest.raises(OSError) as info:
        fake.write("wakealarm", str(T0 + 900))
    assert info.value.errno == errno.EBUSY
    fake.write("wakealarm", "0")
    assert fake.read("wakealarm") == ""
    fake.write("wakealarm", str(T0 + 900))
    assert fake.read_alarm() == T0 + 900


def test_fake_past_times_disarm_and_relative_times_arm(fake: FakeRtcDir) -> None:
    fake.write("wakealarm", str(T0 + 600))
    fake.write("wakealarm", str(T0 - 5))  # past: disarms, no EBUSY
    assert fake.read_alarm() is None
    fake.write("wakealarm", "+60")
    assert fake.read_alarm() == T0 + 60
    with pytest.raises(OSError) as info:
        fake.write("wakealarm", "soon")
    assert info.value.errno == errno.EINVAL


def test_fake_alarm_is_one_shot(fake: FakeRtcDir, clock: Clock) -> None:
    fake.arm(T0 + 600)
    clock.now = T0 + 599
    assert fake.read_alarm() == T0 + 600
    clock.now = T0 + 600
    assert fake.read_alarm() is None
    assert fake.fired() == [T0 + 600]
    fake.arm(T0 + 1200)  # spent, so no EBUSY
    assert fake.read_alarm() == T0 + 1200


def test_fake_state_survives_a_restart(tmp_path: Path, fake: FakeRtcDir, clock: Clock) -> None:
    fake.arm(T0 + 600)
    again = FakeRtcDir(tmp_path / "rtc0", clock=clock)
    assert again.read_alarm() == T0 + 600
    assert (tmp_path / "rtc0" / "wakealarm").read_text() == f"{T0 + 600}\n"
    with pytest.raises(OSError):
        again.write("wakealarm", str(T0 + 700))


def test_fake_local_time_rtc_runs_ahead(tmp_path: Path, clock: Clock) -> None:
    rtc = FakeRtcDir(tmp_path / "rtc", clock=clock, offset_s=7200)
    assert rtc.now() == T0 + 7200
    assert rtc.read("since_epoch") == f"{T0 + 7200}\n"
    rtc.arm(T0 + 7200 + 60)
    clock.now = T0 + 60
    assert rtc.fired() == [] and rtc.read_alarm() is None
    assert rtc.fired() == [T0 + 7260]


def test_fake_refuses_alarms_beyond_its_reach(tmp_path: Path, clock: Clock) -> None:
    rtc = FakeRtcDir(tmp_path / "rtc", clock=clock, max_ahead_s=ONE_DAY_S)
    rtc.arm(T0 + 3600)
    with pytest.raises(RtcError, match="beyond the RTC's reach"):
        rtc.arm(T0 + 2 * ONE_DAY_S)
    assert rtc.read_alarm() == T0 + 3600  # the previous alarm stays armed


# --- SysfsRtc -----------------------------------------------------------------------------


def test_sysfs_rtc_on_a_plain_directory(tmp_path: Path) -> None:
    (tmp_path / "wakealarm").write_text("")
    (tmp_path / "since_epoch").write_text(f"{T0}\n")
    rtc = SysfsRtc(tmp_path)
    assert rtc.read_alarm() is None
    assert rtc.now() == T0
    assert rtc.arm(T0 + 86_399.7) == T0 + 86_399
    assert (tmp_path / "wakealarm").read_text() == str(T0 + 86_399)
    assert rtc.arm(T0 + 5) == T0 + 5  # shorter value: the file is truncated, not overlaid
    rtc.disarm()
    assert rtc.read_alarm() is None


def test_sysfs_rtc_errors_name_the_file(tmp_path: Path) -> None:
    rtc = SysfsRtc(tmp_path / "missing")
    with pytest.raises(RtcError, match="missing/wakealarm"):
        rtc.arm(T0)
    with pytest.raises(RtcError, match="since_epoch"):
        rtc.now()
    with pytest.raises(RtcError, match="alarm: must be finite"):
        rtc.arm(float("nan"))
    (tmp_path / "wakealarm").write_text("garbage")
    with pytest.raises(RtcError, match="unexpected value 'garbage'"):
        SysfsRtc(tmp_path).read_alarm()


def test_arm_replaces_an_alarm_set_by_someone_else(fake: FakeRtcDir) -> None:
    fake.write("wakealarm", str(T0 + 60))  # e.g. a technician's rtcwake
    assert fake.arm(T0 + 600) == T0 + 600


def test_arm_retries_once_on_ebusy(tmp_path: Path, clock: Clock) -> None:
    class Racing(FakeRtcDir):
        """Another process arms between our "0" and our value, once."""

        raced = False

        def _write_attr(self, name: str, text: str) -> None:
            super()._write_attr(name, text)
            if text == "0" and not self.raced:
                self.raced = True
                super()._write_attr(name, str(T0 + 42))

    rtc = Racing(tmp_path / "rtc", clock=clock)
    assert rtc.arm(T0 + 600) == T0 + 600
    assert rtc.raced


def test_arm_verifies_the_read_back(fake: FakeRtcDir) -> None:
    fake.arm(T0 + 600)
    with pytest.raises(RtcError, match=r"read back nothing \(a time in the past disarms"):
        fake.arm(T0 - 60)
    assert fake.read_alarm() == T0 + 600


# --- rtcwake ------------------------------------------------------------------------------

FAKE_RTCWAKE = """\
#!{python}
# Stands in for util-linux rtcwake: arms the fake sysfs directory as the real one would.
import os, sys
args = sys.argv[1:]
with open(os.environ["RTCWAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if os.environ.get("RTCWAKE_FAIL"):
    sys.stderr.write("rtcwake: set rtc wake alarm failed: Invalid argument\\n")
    sys.exit(1)
rtc = os.path.join(os.environ["RTCWAKE_SYSFS"], args[args.index("-d") + 1])
mode = args[args.index("-m") + 1]
with open(os.path.join(rtc, "wakealarm"), "w") as f:
    if mode == "no":
        now = int(open(os.path.join(rtc, "since_epoch")).read())
        f.write(str(now + int(args[args.index("-s") + 1]) + 1))
    elif mode == "disable":
        f.write("")
"""


@pytest.fixture
def rtcwake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "rtcwake"
    script.write_text(FAKE_RTCWAKE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    sysfs = tmp_path / "sysfs"
    (sysfs / "rtc0").mkdir(parents=True)
    (sysfs / "rtc0" / "wakealarm").write_text("")
    (sysfs / "rtc0" / "since_epoch").write_text(f"{T0}\n")
    monkeypatch.setenv("RTCWAKE_SYSFS", str(sysfs))
    monkeypatch.setenv("RTCWAKE_LOG", str(tmp_path / "rtcwake.log"))
    return script


def test_rtcwake_arms_relative_to_the_rtc_clock(tmp_path: Path, rtcwake: Path) -> None:
    rtc = RtcwakeRtc("rtc0", sysfs_root=tmp_path / "sysfs", rtcwake=str(rtcwake))
    assert rtc.now() == T0
    assert rtc.arm(T0 + 3600) == T0 + 3600
    rtc.disarm()
    assert rtc.read_alarm() is None
    calls = (tmp_path / "rtcwake.log").read_text().splitlines()
    assert calls == ["-d rtc0 -m no --utc -s 3599", "-d rtc0 -m disable"]
    with pytest.raises(RtcError, match="not in the RTC's future"):
        rtc.arm(T0)


def test_rtcwake_failure_is_an_rtc_error(
    tmp_path: Path, rtcwake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTCWAKE_FAIL", "1")
    rtc = RtcwakeRtc("rtc0", sysfs_root=tmp_path / "sysfs", rtcwake=str(rtcwake))
    with pytest.raises(RtcError, match="Invalid argument"):
        rtc.arm(T0 + 3600)
    missing = RtcwakeRtc("rtc0", sysfs_root=tmp_path / "sysfs", rtcwake=str(tmp_path / "nope"))
    with pytest.raises(RtcError, match="nope"):
        missing.disarm()


# --- capability probe ---------------------------------------------------------------------

PROC_OLD_CMOS = """\
rtc_time\t: 10:21:07
rtc_date\t: 2024-05-18
alrm_time\t: 06:58:00
alrm_date\t: ****-**-**
alarm_IRQ\t: no
24hr\t\t: yes
periodic_IRQ\t: no
batt_status\t: okay
"""


def _adjtime(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / "adjtime"
    path.write_text(f"0.000000 1716000000 0.000000\n1716000000\n{mode}\n")
    return path


@pytest.mark.parametrize(
    ("line", "reach"),
    [
        ("alarms up to one day, y3k, 242 bytes nvram, hpet irqs", ONE_DAY_S),
        ("alarms up to one month, y3k, 114 bytes nvram", ONE_MONTH_S),
        ("alarms up to one year, y3k, 242 bytes nvram, hpet irqs", ONE_YEAR_S),
    ],
)
def test_probe_reads_the_kernel_log(tmp_path: Path, line: str, reach: int) -> None:
    dmesg = (
        "[    0.612345] rtc_cmos 00:01: RTC can wake from S4\n"
        f"[    0.612400] rtc_cmos 00:01: {line}\n"
    )
    caps = probe_capabilities(tmp_path / "no-proc", dmesg, _adjtime(tmp_path, "UTC"))
    assert (caps.max_ahead_s, caps.local_time) == (reach, False)


def test_probe_falls_back_to_proc_then_to_one_day(tmp_path: Path) -> None:
    proc = tmp_path / "rtc"
    proc.write_text(PROC_OLD_CMOS)
    adjtime = _adjtime(tmp_path, "LOCAL")
    assert probe_capabilities(proc, "", adjtime).max_ahead_s == ONE_DAY_S
    proc.write_text(PROC_OLD_CMOS.replace("****-**-**", "2024-**-18"))
    assert probe_capabilities(proc, "", adjtime).max_ahead_s == ONE_MONTH_S
    proc.write_text(PROC_OLD_CMOS.replace("****-**-**", "2024-05-18"))
    # A full date says little on new kernels (they fill it in): stay with the safe default.
    caps = probe_capabilities(proc, "no rtc lines here", adjtime)
    assert (caps.max_ahead_s, caps.local_time) == (ONE_DAY_S, True)


def test_probe_adjtime(tmp_path: Path) -> None:
    proc = tmp_path / "absent"
    assert probe_capabilities(proc, "", _adjtime(tmp_path, "LOCAL")).local_time
    assert not probe_capabilities(proc, "", _adjtime(tmp_path, "UTC")).local_time
    assert not probe_capabilities(proc, "", tmp_path / "no-adjtime").local_time
    short = tmp_path / "short"
    short.write_text("0.0 0 0.0\n0\n")
    assert not probe_capabilities(proc, "", short).local_time


@pytest.mark.skipif(not os.path.exists("/sys/class/rtc/rtc0"), reason="no RTC here")
def test_real_rtc_is_readable_without_arming() -> None:
    rtc = SysfsRtc()
    assert rtc.now() > 0
    rtc.read_alarm()  # reading never changes anything
