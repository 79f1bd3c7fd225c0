"""Why the PC is on, and whether it may go off now. Pure: the service supplies the facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from edge.wake.planner import AlarmKind, Window

BootReason = Literal["rtc", "button", "power", "unknown"]
PowerPolicy = Literal["poweroff", "suspend", "stay"]
Action = Literal["stay", "poweroff", "suspend"]

# After the alarm fires the BIOS runs its POST (and maybe a disk check) before the kernel
# starts the clock we call boot time: minutes on a tired old PC.
RTC_BOOT_LATE_S = 600
# The kernel's boot time is derived from the system clock, which the RTC itself set a
# moment earlier and NTP may then have stepped: allow a little the other way too.
RTC_BOOT_EARLY_S = 120
DEFAULT_IDLE_S = 600
DEFAULT_GRACE_S = 120


def boot_reason(
    boot_time: float | None,
    armed_alarm_before_boot: float | None,
    button_flag: bool,
    *,
    alarm_still_armed: bool = False,
    record_available: bool = True,
    late_s: float = RTC_BOOT_LATE_S,
    early_s: float = RTC_BOOT_EARLY_S,
) -> BootReason:
    """Why the PC came on: the RTC alarm, the help button, a person pressing power, unknown.

    ``armed_alarm_before_boot`` is the alarm (UTC) the previous session armed, None if it
    armed none; ``record_available`` False when that record is missing (first boot, lost
    state): then only the button can be told apart. An alarm that is still armed after boot
    did not fire, whatever the times say.
    """
    if button_flag:
        return "button"
    if boot_time is None or not record_available:
        return "unknown"
    if (
        armed_alarm_before_boot is not None
        and not alarm_still_armed
        and armed_alarm_before_boot - early_s <= boot_time <= armed_alarm_before_boot + late_s
    ):
        return "rtc"
    return "power"


@dataclass(frozen=True, slots=True)
class PowerState:
    """The facts ``decide`` needs, as the service sees them at one instant."""

    boot_reason: BootReason
    last_activity: float  # boot/resume, the end of a call or job, a touch of the screen
    in_call: bool = False
    job_running: bool = False
    active_window: Window | None = None
    plan_kind: AlarmKind = "none"
    alarm_armed: bool = False  # the plan's alarm is armed and read back
    policy: PowerPolicy = "poweroff"
    idle_s: float = DEFAULT_IDLE_S  # a person switched it on: stay this long after last use
    grace_s: float = DEFAULT_GRACE_S  # the alarm switched it on: linger this long, no more


@dataclass(frozen=True, slots=True)
class Decision:
    """Stay on, or power off / suspend now, and why; ``until`` when idleness may change it."""

    action: Action
    reason: str
    until: float | None = None


def decide(now: float, state: PowerState) -> Decision:
    """Apply the power policy: never during a call or job, never in a window, then idle."""
    if state.in_call:
        return Decision("stay", "a call is in progress")
    if state.job_running:
        return Decision("stay", "a job is running")
    if state.active_window is not None:
        return Decision("stay", f"in the wake window until {_utc(state.active_window[1])}")
    if state.policy == "stay":
        return Decision("stay", "the schedule's policy is to stay on")
    if state.plan_kind == "none":
        # Off with no alarm would be off for good: better reachable, waiting for a schedule.
        return Decision("stay", "no alarm to wake up with: staying on and reachable")
    if not state.alarm_armed:
        return Decision("stay", "the next alarm is not armed: going off now would miss it")
    if state.boot_reason == "rtc":
        limit, why = state.grace_s, "woken by the alarm"
    else:
        limit, why = state.idle_s, f"switched on by {_WHO[state.boot_reason]}"
    idle_for = now - state.last_activity
    if idle_for < limit:
        until = state.last_activity + limit
        return Decision("stay", f"{why}: idle {idle_for:.0f} s of {limit:.0f} s", until)
    action: Action = "suspend" if state.policy == "suspend" else "poweroff"
    relay = " (relay)" if state.plan_kind == "relay" else ""
    return Decision(action, f"{why}, idle {idle_for:.0f} s, next alarm{relay} armed")


_WHO: dict[BootReason, str] = {
    "rtc": "the alarm",
    "button": "the help button",
    "power": "a person",
    "unknown": "an unknown cause",
}


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
