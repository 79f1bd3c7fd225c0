"""The wake service: keeps the RTC alarm armed for the schedule and powers the PC off.

It owns three files' worth of state so a reboot without network still works: the last
accepted schedule (``schedule_path``) and the alarm it armed (``alarm_path``), from which
the next boot tells whether the alarm woke it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from edge.protocol import Event, ProtocolError, ScheduleDesired, decode, encode
from edge.protocol.messages import EventKind, Severity
from edge.wake.planner import (
    AlarmPlan,
    RtcCapabilities,
    plan_with_fallback,
    rtc_offset,
    windows_of,
)
from edge.wake.policy import (
    DEFAULT_GRACE_S,
    DEFAULT_IDLE_S,
    RTC_BOOT_EARLY_S,
    RTC_BOOT_LATE_S,
    BootReason,
    Decision,
    PowerPolicy,
    PowerState,
    boot_reason,
    decide,
)
from edge.wake.power import PowerBackend, PowerError
from edge.wake.rtc import RtcBackend, RtcError

log = logging.getLogger(__name__)

T = TypeVar("T")

# An armed alarm within this many seconds of the planned one is the planned one: the RTC
# time base is measured against the system clock, and the two tick a fraction apart.
MATCH_TOLERANCE_S = 2
# A window longer than this is a control-plane bug, and would keep the PC on for days.
MAX_WINDOW_S = 24 * 3600
# Ask for the same power action again only after this long: it may have been inhibited.
POWER_RETRY_S = 300
# A tick this late after a power request means the process was frozen: we were suspended.
RESUME_GAP_S = 60
# Twin field limits (edge.protocol.TwinReported).
_REASON_MAX = 500
_ERROR_MAX = 1000

Report = Callable[[dict[str, Any]], Awaitable[None]]
EmitEvent = Callable[[Event], Awaitable[None]]


def validate_schedule(
    sched: ScheduleDesired | Mapping[str, Any], *, current_version: int | None = None
) -> ScheduleDesired:
    """A checked copy of ``sched``, or ProtocolError naming the field at fault.

    Runs the contract's constraints (a Struct built in Python skips them) and the checks a
    schedule needs beyond them: not older than the one applied, windows of sane length and
    inside the horizon.
    """
    try:
        data = encode(sched) if isinstance(sched, ScheduleDesired) else msgspec.json.encode(sched)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError("$", f"not a schedule: {exc}") from None
    checked = decode(data, ScheduleDesired)
    if current_version is not None and checked.version < current_version:
        raise ProtocolError(
            "$.version", f"{checked.version} is older than the applied version {current_version}"
        )
    for i, wake in enumerate(checked.wakes):
        if wake.end - wake.start > MAX_WINDOW_S:
            raise ProtocolError(f"$.wakes[{i}].end", "window longer than 24 h")
        if wake.start > checked.horizon_end:
            raise ProtocolError(f"$.wakes[{i}].start", "after horizon_end")
    return checked


@dataclass(frozen=True, slots=True)
class _AlarmRecord:
    alarm_at: float | None  # UTC
    rtc_alarm: float | None  # as armed, in the RTC's time base
    kind: str
    armed_at: float


class WakeService:
    """Arms the RTC for the schedule, reports it, and applies the power policy every tick."""

    def __init__(
        self,
        *,
        rtc: RtcBackend,
        power: PowerBackend,
        tz: tzinfo,
        caps: RtcCapabilities,
        schedule_path: Path,
        report: Report,
        emit_event: EmitEvent,
        clock: Callable[[], float] = time.time,
        alarm_path: Path | None = None,
        lead_s: int = 120,
        idle_s: float = DEFAULT_IDLE_S,
        grace_s: float = DEFAULT_GRACE_S,
        policy: PowerPolicy = "poweroff",
        tick_s: float = 30.0,
        boot_time: float | None = None,
        button_boot: bool = False,
    ) -> None:
        self._rtc = rtc
        self._power = power
        self._tz = tz
        self._caps = caps
        self._schedule_path = Path(schedule_path)
        self._alarm_path = (
            Path(alarm_path)
            if alarm_path is not None
            else self._schedule_path.with_name(self._schedule_path.stem + ".alarm.json")
        )
        self._report_cb = report
        self._emit_cb = emit_event
        self._clock = clock
        # Used until a schedule says otherwise.
        self._default_lead_s = lead_s
        self._default_idle_s = idle_s
        self._default_policy: PowerPolicy = policy
        self._grace_s = grace_s
        self._tick_s = tick_s
        self._boot_time = boot_time
        self._button_boot = button_boot

        self._lock = asyncio.Lock()
        self._started = False
        self._boot_reason: BootReason | None = None
        self._schedule: ScheduleDesired | None = None
        self._plan: AlarmPlan | None = None
        self._armed_utc: float | None = None
        self._alarm_error: str | None = None
        self._schedule_error: str | None = None
        self._in_call = False
        self._job_running = False
        self._last_activity = boot_time if boot_time is not None else clock()
        self._last_report: dict[str, Any] | None = None
        self._last_error_event: str | None = None
        self._power_requested_at: float | None = None
        self._last_tick: float | None = None
        self._decision: Decision | None = None

    # --- what others read -----------------------------------------------------------------

    @property
    def boot_reason(self) -> BootReason:
        """Why this PC is on: worked out once, from the alarm the last session armed."""
        if self._boot_reason is None:
            self._boot_reason = self._detect_boot_reason()
        return self._boot_reason

    @property
    def schedule(self) -> ScheduleDesired | None:
        """The schedule in force (received, or loaded from disk)."""
        return self._schedule

    @property
    def plan(self) -> AlarmPlan | None:
        """The last plan made."""
        return self._plan

    @property
    def armed_alarm(self) -> float | None:
        """The alarm armed and read back, in UTC."""
        return self._armed_utc

    @property
    def decision(self) -> Decision | None:
        """The power decision of the last tick."""
        return self._decision

    # --- inputs ---------------------------------------------------------------------------

    def set_busy(self, call: bool | None = None, job: bool | None = None) -> None:
        """A call or job started (True) or ended (False); None leaves it as it is."""
        if call is not None:
            self._in_call = call
        if job is not None:
            self._job_running = job
        # Both edges count as use: idle time starts when the call or the job ends.
        self.note_activity()

    def note_activity(self) -> None:
        """Someone used the PC: a manual power-on's idle timer starts again."""
        self._last_activity = max(self._last_activity, self._clock())

    async def apply_schedule(self, sched: ScheduleDesired | Mapping[str, Any]) -> bool:
        """Validate, persist and plan ``sched``; False (error event) leaves the old one armed."""
        # The boot reason reads the alarm the last session left: settle it before re-arming.
        await self.start()
        current = self._schedule.version if self._schedule is not None else None
        try:
            checked = validate_schedule(sched, current_version=current)
        except ProtocolError as exc:
            message = f"schedule rejected: {exc}"
            log.warning("%s", message)
            self._schedule_error = message
            await self._emit(
                "error",
                message,
                severity="error",
                data={"field": exc.field, "reason": exc.reason, "applied_version": current},
            )
            await self._send_report()
            return False
        self._schedule_error = None
        self._schedule = checked
        try:
            self._save_schedule(checked)
        except OSError as exc:
            # Still applied for this session; the next boot plans from the older copy.
            log.warning("cannot persist the schedule to %s: %s", self._schedule_path, exc)
        async with self._lock:
            await self._replan()
        await self._send_report()
        return True

    # --- the loop -------------------------------------------------------------------------

    async def start(self) -> None:
        """Work out the boot reason, load the saved schedule, arm and report. Idempotent."""
        if self._started:
            return
        self._started = True
        reason = self.boot_reason  # before arming anything: it reads the last alarm
        record = self._load_alarm_record()
        if self._schedule is None:
            self._schedule = self._load_schedule()
        await self._emit(
            "woke",
            f"on: {reason}",
            data={
                "boot_reason": reason,
                "boot_time": self._boot_time,
                "alarm_before_boot": record.alarm_at if record else None,
            },
        )
        async with self._lock:
            await self._replan()
        await self._send_report()

    async def run(self) -> None:
        """Start, then re-plan and apply the power policy every tick, until cancelled."""
        await self.start()
        last_failure: str | None = None
        while True:
            try:
                await self.tick()
                last_failure = None
            except Exception as exc:
                # One bad tick (a full disk, a backend bug) must not end the service: the
                # next tick may well succeed, and a dead loop never powers off again. The
                # same failure every tick is logged in full once, then quietly.
                if repr(exc) != last_failure:
                    log.exception("wake tick failed")
                else:
                    log.debug("wake tick failed again: %r", exc)
                last_failure = repr(exc)
            await asyncio.sleep(self._tick_s)

    async def tick(self) -> Decision:
        """Re-plan, re-arm if needed, and power off or suspend when the policy says so."""
        if not self._started:
            await self.start()
        now = self._clock()
        if self._resumed(now):
            await self._on_resume(now)
        self._last_tick = now
        async with self._lock:
            plan = await self._replan()
        await self._send_report()
        state = PowerState(
            boot_reason=self.boot_reason,
            last_activity=self._last_activity,
            in_call=self._in_call,
            job_running=self._job_running,
            active_window=plan.active,
            plan_kind=plan.kind,
            alarm_armed=self._alarm_matches(plan),
            policy=self._schedule.policy if self._schedule else self._default_policy,
            idle_s=self._schedule.idle_s if self._schedule else self._default_idle_s,
            grace_s=self._grace_s,
        )
        decision = decide(now, state)
        if self._decision is None or decision.action != self._decision.action:
            log.info("power: %s (%s)", decision.action, decision.reason)
        self._decision = decision
        if decision.action != "stay" and self._may_request_power(now):
            await self._power_off(decision, now)
        return decision

    # --- planning and arming --------------------------------------------------------------

    async def _replan(self) -> AlarmPlan:
        now = self._clock()
        sched = self._schedule
        plan = plan_with_fallback(
            now,
            windows_of(sched.wakes) if sched else [],
            sched.lead_s if sched else self._default_lead_s,
            self._caps,
            self._tz,
            horizon_end=sched.horizon_end if sched else None,
        )
        if self._plan is None or plan.alarm_at != self._plan.alarm_at:
            log.info("plan: %s", plan.reason)
        self._plan = plan
        await self._arm(plan, now)
        return plan

    async def _arm(self, plan: AlarmPlan, now: float) -> None:
        offset = await self._rtc_offset(now)
        try:
            current = await self._call(self._rtc.read_alarm)
        except RtcError as exc:
            await self._rtc_failed(str(exc))
            return
        if plan.alarm_at is None:
            if current is not None:
                # A stale alarm would wake the PC at a time nobody expects it.
                try:
                    await self._call(self._rtc.disarm)
                except RtcError as exc:
                    await self._rtc_failed(str(exc))
                    return
            self._armed_utc = None
            self._alarm_error = None
            self._save_alarm_record(_AlarmRecord(None, None, plan.kind, now))
            return
        want = math.floor(plan.alarm_at) + offset
        if current is not None and abs(current - want) <= MATCH_TOLERANCE_S:
            if self._armed_utc is None or abs(self._armed_utc - plan.alarm_at) > (
                MATCH_TOLERANCE_S
            ):
                self._armed_utc = current - offset
            self._alarm_error = None
            return
        try:
            got = await self._call(self._rtc.arm, want)
        except RtcError as exc:
            # The backend put back what was armed before; report what is armed now.
            try:
                still = await self._call(self._rtc.read_alarm)
            except RtcError:
                still = None
            self._armed_utc = None if still is None else still - offset
            await self._rtc_failed(str(exc))
            return
        self._armed_utc = got - offset
        self._alarm_error = None
        self._last_error_event = None
        self._save_alarm_record(_AlarmRecord(self._armed_utc, got, plan.kind, now))
        log.info("armed %s alarm at %.0f (RTC %.0f)", plan.kind, self._armed_utc, got)
        await self._emit(
            "alarm_armed",
            plan.reason,
            data={"alarm_at": self._armed_utc, "rtc_alarm": got, "kind": plan.kind},
        )

    async def _rtc_offset(self, now: float) -> int:
        try:
            rtc_now: float | None = await self._call(self._rtc.now)
        except RtcError as exc:
            log.debug("RTC time unreadable, assuming its offset: %s", exc)
            rtc_now = None
        return rtc_offset(self._caps, self._tz, now=now, rtc_now=rtc_now)

    async def _rtc_failed(self, message: str) -> None:
        self._alarm_error = message
        # Every tick retries; the event goes out once per distinct failure.
        if message != self._last_error_event:
            self._last_error_event = message
            log.warning("RTC: %s", message)
            await self._emit("error", f"RTC alarm not armed: {message}", severity="error")

    def _alarm_matches(self, plan: AlarmPlan) -> bool:
        return (
            plan.alarm_at is not None
            and self._armed_utc is not None
            and abs(self._armed_utc - plan.alarm_at) <= MATCH_TOLERANCE_S
        )

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        # rtcwake is a subprocess and sysfs can stall on a sick RTC: keep the loop free.
        return await asyncio.to_thread(fn, *args)

    # --- power ----------------------------------------------------------------------------

    def _may_request_power(self, now: float) -> bool:
        return self._power_requested_at is None or now - self._power_requested_at >= (POWER_RETRY_S)

    async def _power_off(self, decision: Decision, now: float) -> None:
        self._power_requested_at = now
        await self._emit(
            "shutting_down",
            decision.reason,
            data={"action": decision.action, "alarm_at": self._armed_utc},
        )
        try:
            if decision.action == "suspend":
                await self._power.suspend()
            else:
                await self._power.poweroff()
        except PowerError as exc:
            log.warning("power: %s", exc)
            await self._emit("error", f"{decision.action} failed: {exc}", severity="error")

    def _resumed(self, now: float) -> bool:
        return (
            self._power_requested_at is not None
            and self._last_tick is not None
            and now - self._last_tick > max(RESUME_GAP_S, 3 * self._tick_s)
        )

    async def _on_resume(self, now: float) -> None:
        # Back from suspend (or a poweroff that never happened): a new wake session.
        alarm = self._armed_utc
        by_alarm = alarm is not None and alarm - RTC_BOOT_EARLY_S <= now <= alarm + RTC_BOOT_LATE_S
        self._boot_reason = "rtc" if by_alarm else "power"
        self._power_requested_at = None
        self._last_activity = now
        await self._emit("woke", f"resumed: {self._boot_reason}", data={"resumed": True})

    # --- reporting ------------------------------------------------------------------------

    def reported(self) -> dict[str, Any]:
        """The twin/reported fields this service owns."""
        plan = self._plan
        error = self._schedule_error or self._alarm_error
        return {
            "schedule_version": self._schedule.version if self._schedule else None,
            "armed_alarm": self._armed_utc,
            "alarm_reason": plan.reason[:_REASON_MAX] if plan else None,
            "alarm_error": error[:_ERROR_MAX] if error else None,
            "rtc_local_time": self._caps.local_time,
            "rtc_max_ahead_s": self._caps.max_ahead_s,
        }

    async def _send_report(self) -> None:
        fields = self.reported()
        if fields != self._last_report:
            self._last_report = fields
            await self._report_cb(fields)

    async def _emit(
        self,
        kind: EventKind,
        message: str,
        *,
        severity: Severity = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        event = Event(
            ts=self._clock(),
            id=uuid.uuid4().hex,
            kind=kind,
            severity=severity,
            message=message[:1000],
            data=data or {},
        )
        await self._emit_cb(event)

    # --- persistence ----------------------------------------------------------------------

    def _detect_boot_reason(self) -> BootReason:
        record = self._load_alarm_record()
        try:
            current = self._rtc.read_alarm()
        except RtcError:
            current = None
        still_armed = (
            record is not None
            and record.rtc_alarm is not None
            and current is not None
            and abs(current - record.rtc_alarm) <= MATCH_TOLERANCE_S
        )
        return boot_reason(
            self._boot_time,
            record.alarm_at if record else None,
            self._button_boot,
            alarm_still_armed=still_armed,
            record_available=record is not None,
        )

    def _load_schedule(self) -> ScheduleDesired | None:
        try:
            data = self._schedule_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read %s: %s", self._schedule_path, exc)
            return None
        try:
            return validate_schedule(decode(data, ScheduleDesired))
        except ProtocolError as exc:
            log.warning("ignoring the saved schedule %s: %s", self._schedule_path, exc)
            return None

    def _save_schedule(self, sched: ScheduleDesired) -> None:
        _write_atomic(self._schedule_path, encode(sched))

    def _load_alarm_record(self) -> _AlarmRecord | None:
        try:
            raw = json.loads(self._alarm_path.read_bytes())
            return _AlarmRecord(
                alarm_at=_opt_float(raw["alarm_at"]),
                rtc_alarm=_opt_float(raw["rtc_alarm"]),
                kind=str(raw["kind"]),
                armed_at=float(raw["armed_at"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the alarm record %s: %s", self._alarm_path, exc)
            return None

    def _save_alarm_record(self, record: _AlarmRecord) -> None:
        data = {
            "alarm_at": record.alarm_at,
            "rtc_alarm": record.rtc_alarm,
            "kind": record.kind,
            "armed_at": record.armed_at,
        }
        try:
            _write_atomic(self._alarm_path, json.dumps(data).encode())
        except OSError as exc:
            log.warning("cannot save the alarm record %s: %s", self._alarm_path, exc)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _write_atomic(path: Path, data: bytes) -> None:
    # The PC may lose power at any moment: write aside, flush to disk, then rename over.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
