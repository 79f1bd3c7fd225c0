"""Waking the PC for its appointments: alarm planning, RTC and power backends, the service.

``planner`` and ``policy`` are pure; ``rtc`` and ``power`` are thin adapters to the kernel and
systemd (with fakes that behave like them); ``service`` ties them to the schedule.
"""

from edge.wake.planner import (
    AlarmPlan,
    RtcCapabilities,
    fallback_wakes,
    in_window,
    plan_alarm,
    plan_with_fallback,
    rtc_offset,
    utc_offset,
    wall_epoch,
)
from edge.wake.policy import BootReason, Decision, PowerState, boot_reason, decide
from edge.wake.power import PowerBackend, PowerError, RecordingPower, SystemdPower
from edge.wake.rtc import (
    FakeRtcDir,
    RtcBackend,
    RtcError,
    RtcwakeRtc,
    SysfsRtc,
    probe_capabilities,
)
from edge.wake.service import WakeService, validate_schedule

__all__ = [
    "AlarmPlan",
    "BootReason",
    "Decision",
    "FakeRtcDir",
    "PowerBackend",
    "PowerError",
    "PowerState",
    "RecordingPower",
    "RtcBackend",
    "RtcCapabilities",
    "RtcError",
    "RtcwakeRtc",
    "SysfsRtc",
    "SystemdPower",
    "WakeService",
    "boot_reason",
    "decide",
    "fallback_wakes",
    "in_window",
    "plan_alarm",
    "plan_with_fallback",
    "probe_capabilities",
    "rtc_offset",
    "utc_offset",
    "validate_schedule",
    "wall_epoch",
]
