"""The pure power policy and boot-reason detection, and the power backends."""

from __future__ import annotations

import asyncio
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edge.wake.policy import PowerState, boot_reason, decide
from edge.wake.power import PowerError, RecordingPower, SystemdPower

T0 = 1_716_000_000.0
ALARM = T0 + 3600


@pytest.mark.parametrize(
    ("boot_time", "alarm", "button", "kwargs", "expected"),
    [
        (ALARM + 40, ALARM, False, {}, "rtc"),  # POST took 40 s
        (ALARM - 30, ALARM, False, {}, "rtc"),  # clocks a little apart
        (ALARM + 40, ALARM, True, {}, "button"),  # the help button wins
        (ALARM - 3 * 3600, ALARM, False, {}, "power"),  # long before the alarm
        (ALARM + 3 * 3600, ALARM, False, {}, "power"),  # long after: it never fired
        (ALARM + 40, None, False, {}, "power"),  # no alarm was armed
        (ALARM + 40, ALARM, False, {"alarm_still_armed": True}, "power"),
        (ALARM + 40, None, False, {"record_available": False}, "unknown"),
        (None, ALARM, False, {}, "unknown"),
    ],
)
def test_boot_reason(
    boot_time: float | None,
    alarm: float | None,
    button: bool,
    kwargs: dict[str, bool],
    expected: str,
) -> None:
    assert boot_reason(boot_time, alarm, button, **kwargs) == expected


BASE = PowerState(
    boot_reason="rtc",
    last_activity=T0,
    plan_kind="wake",
    alarm_armed=True,
    idle_s=600,
    grace_s=120,
)


@pytest.mark.parametrize(
    ("changes", "now", "action", "reason"),
    [
        ({}, T0 + 121, "poweroff", "woken by the alarm"),
        ({}, T0 + 60, "stay", "idle 60 s of 120 s"),
        ({"policy": "suspend"}, T0 + 121, "suspend", "next alarm armed"),
        ({"plan_kind": "relay"}, T0 + 121, "poweroff", "(relay)"),
        ({"in_call": True, "active_window": None}, T0 + 9999, "stay", "call"),
        ({"job_running": True}, T0 + 9999, "stay", "job"),
        ({"active_window": (T0, T0 + 1800)}, T0 + 9999, "stay", "wake window"),
        ({"policy": "stay"}, T0 + 9999, "stay", "policy"),
        ({"plan_kind": "none"}, T0 + 9999, "stay", "no alarm"),
        ({"alarm_armed": False}, T0 + 9999, "stay", "not armed"),
        ({"boot_reason": "power"}, T0 + 300, "stay", "switched on by a person"),
        ({"boot_reason": "power"}, T0 + 600, "poweroff", "switched on by a person"),
        ({"boot_reason": "button"}, T0 + 599, "stay", "help button"),
        ({"boot_reason": "unknown"}, T0 + 601, "poweroff", "unknown"),
    ],
)
def test_decide(changes: dict[str, object], now: float, action: str, reason: str) -> None:
    decision = decide(now, replace(BASE, **changes))  # type: ignore[arg-type]
    assert decision.action == action
    assert reason in decision.reason


def test_a_call_outranks_everything() -> None:
    state = replace(BASE, in_call=True, job_running=True, policy="poweroff")
    assert decide(T0 + 10**6, state).reason == "a call is in progress"
    stay = decide(T0 + 10, replace(BASE, boot_reason="power"))
    assert stay.until == T0 + 600


# --- power backends -----------------------------------------------------------------------


def test_recording_power_appends_json_lines(tmp_path: Path) -> None:
    ts = iter([T0, T0 + 5])
    power = RecordingPower(tmp_path / "sub" / "power.jsonl", clock=lambda: next(ts))
    asyncio.run(power.suspend())
    asyncio.run(power.poweroff())
    assert power.actions() == [
        {"action": "suspend", "ts": T0},
        {"action": "poweroff", "ts": T0 + 5},
    ]
    assert RecordingPower(tmp_path / "none.jsonl").actions() == []


FAKE_SYSTEMCTL = """\
#!{python}
import os, sys
with open(os.environ["SYSTEMCTL_LOG"], "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "suspend":
    sys.stderr.write("Call to Suspend failed: Access denied\\n")
    sys.exit(1)
"""


def test_systemd_power_runs_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "systemctl"
    script.write_text(FAKE_SYSTEMCTL.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("SYSTEMCTL_LOG", str(tmp_path / "log"))
    power = SystemdPower(str(script))
    asyncio.run(power.poweroff())
    with pytest.raises(PowerError, match="suspend: Call to Suspend failed: Access denied"):
        asyncio.run(power.suspend())
    assert (tmp_path / "log").read_text().splitlines() == ["poweroff", "suspend"]
    with pytest.raises(PowerError, match="missing"):
        asyncio.run(SystemdPower(str(tmp_path / "missing")).poweroff())
