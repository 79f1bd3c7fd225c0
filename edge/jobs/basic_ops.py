"""The everyday operations: reboot, run-diagnostics, collect-logs, test-wake."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from edge.collectors.runner import CommandError
from edge.wake import PowerError

from .device_http import HttpFailed
from .operations import AwaitRestart, BaseOperation, ExecutionContext, JobFailed, Rebooter

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class _Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


def _power(ctx: ExecutionContext) -> Rebooter:
    if ctx.env.power is None:
        raise JobFailed("no power backend on this device")
    return ctx.env.power


# --- reboot -------------------------------------------------------------------------------


class RebootParams(_Params, kw_only=True):
    delay_s: Annotated[int, Meta(ge=0, le=3600)] = 0


class Reboot(BaseOperation):
    """Reboot the PC; SUCCEEDED once the agent is back."""

    name = "reboot"
    params = RebootParams

    async def run(self, ctx: ExecutionContext, params: RebootParams) -> dict[str, str]:
        """Write down the boot we are leaving, then ask for the reboot."""
        power = _power(ctx)
        ctx.note(
            {
                "boot_time": ctx.env.boot_time,
                "boot_id": ctx.env.extra.get("boot_id"),
                "requested_at": ctx.env.clock(),
            }
        )
        if params.delay_s:
            await ctx.progress(10, step=f"rebooting in {params.delay_s} s")
            await asyncio.sleep(params.delay_s)
        await ctx.progress(50, step="rebooting")
        try:
            await power.reboot()
        except PowerError as exc:
            raise JobFailed(f"reboot refused: {exc}") from exc
        raise AwaitRestart("rebooting", step="rebooting")

    async def resume(self, ctx: ExecutionContext, note: dict[str, Any]) -> dict[str, str]:
        """Back after the reboot: say whether the machine really restarted."""
        before, now = note.get("boot_time"), ctx.env.boot_time
        old_id, new_id = note.get("boot_id"), ctx.env.extra.get("boot_id")
        if old_id and new_id:
            # The kernel's boot id is exact; boot times computed from uptime jitter by ~1 s.
            same_boot = old_id == new_id
        else:
            same_boot = isinstance(before, int | float) and now is not None and now <= before + 1
        if same_boot:
            # The agent came back on the same boot: the reboot did not happen.
            raise JobFailed("the agent restarted but the PC did not reboot", boot_time=str(now))
        return {"rebooted": "yes", "boot_time": "" if now is None else f"{now:.0f}"}


# --- test-wake ----------------------------------------------------------------------------


class TestWakeParams(_Params, kw_only=True):
    delay_s: Annotated[int, Meta(ge=60, le=3600)] = 120


class TestWake(BaseOperation):
    """The commissioning wake test: arm the RTC, power off, check the next boot's time."""

    name = "test-wake"
    params = TestWakeParams

    async def run(self, ctx: ExecutionContext, params: TestWakeParams) -> dict[str, str]:
        """Arm the test alarm (``edge.commission``) and power off."""
        from edge.commission import CommissionError, arm_test

        power = _power(ctx)
        if ctx.env.pause_wake is not None:
            # The wake service re-arms the RTC for the schedule: it must not undo our alarm.
            await ctx.env.pause_wake()
        try:
            record = await asyncio.to_thread(
                arm_test, ctx.env.config, minutes=params.delay_s / 60, clock=ctx.env.clock
            )
        except CommissionError as exc:
            raise JobFailed(str(exc)) from exc
        alarm_at = float(record["alarm_at"])
        ctx.note({"alarm_at": alarm_at})
        await ctx.progress(50, step="powering off", alarm_at=f"{alarm_at:.0f}")
        try:
            await power.poweroff()
        except PowerError as exc:
            raise JobFailed(f"power-off refused: {exc}", alarm_at=f"{alarm_at:.0f}") from exc
        raise AwaitRestart("powered off for the wake test", alarm_at=f"{alarm_at:.0f}")

    async def resume(self, ctx: ExecutionContext, note: dict[str, Any]) -> dict[str, str]:
        """Judge the boot (``check_commission`` ran at this start and left its result)."""
        result = ctx.env.boot_check
        if result is None:
            raise JobFailed("no wake-test record at this start: the test did not complete")
        details = {
            "alarm_at": f"{result['alarm_at']:.0f}",
            "boot_time": "" if result.get("boot_time") is None else f"{result['boot_time']:.0f}",
            "mode": str(result.get("mode", "poweroff")),
        }
        if not result.get("ok"):
            raise JobFailed(str(result.get("detail", "the alarm did not wake the PC")), **details)
        return {**details, "result": str(result.get("detail", "woke on time"))}


# --- run-diagnostics ----------------------------------------------------------------------


class DiagnosticsParams(_Params, kw_only=True):
    test_devices: bool = False


class RunDiagnostics(BaseOperation):
    """Build the hardware report and upload it to the control plane."""

    name = "run-diagnostics"
    params = DiagnosticsParams
    cancellable = True

    async def run(self, ctx: ExecutionContext, params: DiagnosticsParams) -> dict[str, str]:
        """Probe, upload, and sum up the issues for the job's details."""
        from edge.diagnostics import build_report, format_summary, telecare_issues

        if ctx.env.http is None:
            raise JobFailed("control_plane_url is not configured: nowhere to upload the report")
        build = ctx.env.build_report or build_report
        await ctx.progress(10, step="probing the hardware")
        report = await asyncio.to_thread(build, test_devices=params.test_devices)
        await ctx.progress(70, step="uploading")
        try:
            answer = await ctx.env.http.upload_report(json.dumps(report).encode(), ctx.execution_id)
        except HttpFailed as exc:
            raise JobFailed(str(exc)) from exc
        issues = telecare_issues(report)
        return {
            "report_id": str((answer or {}).get("id", "")),
            "issues": ",".join(issues) or "none",
            "problems": str(len(report.get("problems") or {})),
            "summary": format_summary(report, lang="en")[:1500],
        }


# --- collect-logs -------------------------------------------------------------------------


class LogsParams(_Params, kw_only=True):
    since_s: Annotated[int, Meta(ge=60, le=30 * 86400)] = 86400
    max_bytes: Annotated[int, Meta(ge=1024, le=10 * MIB)] = MIB


def _tail(data: bytes, limit: int) -> bytes:
    """The newest ``limit`` bytes, starting at a line boundary when there is one."""
    if len(data) <= limit:
        return data
    cut = data[len(data) - limit :]
    newline = cut.find(b"\n")
    return cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut


def cap_sections(sections: list[tuple[str, bytes]], max_bytes: int) -> tuple[bytes, bool]:
    """Join ``(title, text)`` sections within ``max_bytes``, keeping each one's newest lines.

    Budget is shared fairly: small sections keep everything, the rest split what is left.
    """
    headers = [f"===== {title} =====\n".encode() for title, _ in sections]
    budget = max(0, max_bytes - sum(len(h) + 1 for h in headers))
    sizes = [len(text) for _, text in sections]
    allowed = [0] * len(sections)
    remaining = sorted(range(len(sections)), key=lambda i: sizes[i])
    while remaining:
        share = budget // len(remaining)
        i = remaining.pop(0)
        allowed[i] = min(sizes[i], share)
        budget -= allowed[i]
    truncated = any(a < s for a, s in zip(allowed, sizes, strict=True))
    out = b"".join(
        h + _tail(text, a) + b"\n"
        for h, (_, text), a in zip(headers, sections, allowed, strict=True)
    )
    return out[:max_bytes], truncated


class CollectLogs(BaseOperation):
    """The journal of the agent's units and its log files, size-capped, gzip, uploaded."""

    name = "collect-logs"
    params = LogsParams
    cancellable = True

    def _journal(self, ctx: ExecutionContext, unit: str, since: float) -> bytes:
        argv = [
            "journalctl",
            "--no-pager",
            "--quiet",
            "--output=short-iso",
            f"--unit={unit}",
            f"--since=@{int(since)}",
        ]
        try:
            result = ctx.env.run(argv, timeout=60)
        except CommandError as exc:
            return f"(journal not read: {exc})\n".encode()
        if result.returncode != 0:
            return f"(journalctl failed: {result.first_error_line()})\n".encode()
        return result.stdout.encode("utf-8", "replace")

    @staticmethod
    def _file(path: Path, limit: int) -> bytes:
        try:
            with path.open("rb") as fh:
                size = fh.seek(0, 2)
                # Read only the end: a log file may be far larger than what we may send.
                fh.seek(max(0, size - limit))
                return fh.read()
        except OSError as exc:
            return f"(not read: {exc.strerror or exc})\n".encode()

    def _collect(self, ctx: ExecutionContext, params: LogsParams) -> tuple[bytes, bool, str]:
        jobs = ctx.env.config.jobs
        since = ctx.env.clock() - params.since_s
        sections: list[tuple[str, bytes]] = []
        for unit in jobs.journal_units:
            sections.append((f"journal {unit}", self._journal(ctx, unit, since)))
        for name in jobs.log_files:
            sections.append((f"file {name}", self._file(Path(name), params.max_bytes)))
        text, truncated = cap_sections(sections, params.max_bytes)
        return text, truncated, ",".join(title for title, _ in sections)

    async def run(self, ctx: ExecutionContext, params: LogsParams) -> dict[str, str]:
        """Collect, compress, upload."""
        if ctx.env.http is None:
            raise JobFailed("control_plane_url is not configured: nowhere to upload the logs")
        await ctx.progress(10, step="collecting")
        text, truncated, sources = await asyncio.to_thread(self._collect, ctx, params)
        gz = gzip.compress(text, compresslevel=6)
        await ctx.progress(60, step="uploading", bytes=str(len(text)))
        try:
            answer = await ctx.env.http.upload_logs(gz, ctx.execution_id)
        except HttpFailed as exc:
            raise JobFailed(str(exc)) from exc
        return {
            "bundle_id": str((answer or {}).get("id", "")),
            "bytes": str(len(text)),
            "compressed": str(len(gz)),
            "truncated": "yes" if truncated else "no",
            "sources": sources,
        }
