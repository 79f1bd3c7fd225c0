"""Remote jobs on the device: the runner and the operations it knows.

``runner`` handles each execution once and reports through the outbox; ``operations`` says
what an operation is; ``basic_ops``, ``config_ops`` and ``agent_update`` are the operations;
``guard`` (run as its own process) watches an agent update and rolls it back if needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig
from edge.wake import RecordingPower, SystemdPower

from .agent_update import AgentInstall, UpdateAgent
from .basic_ops import CollectLogs, Reboot, RunDiagnostics, TestWake
from .config_ops import RotateCredentials, SetConfig
from .device_http import DeviceHttp, HttpFailed
from .journal import ExecutionJournal
from .operations import (
    AwaitRestart,
    ExecutionContext,
    JobEnv,
    JobFailed,
    JobRejected,
    Operation,
    operation_table,
)
from .runner import JobRunner, Publish
from .vpn_ops import RotateVpnKey

__all__ = [
    "AgentInstall",
    "AwaitRestart",
    "DeviceHttp",
    "ExecutionContext",
    "ExecutionJournal",
    "HttpFailed",
    "JobEnv",
    "JobFailed",
    "JobRejected",
    "JobRunner",
    "Operation",
    "build_runner",
    "default_operations",
    "job_power",
]


def default_operations() -> dict[str, Operation]:
    """Every operation this agent knows, by name."""
    return operation_table(
        [
            Reboot(),
            UpdateAgent(),
            RunDiagnostics(),
            CollectLogs(),
            SetConfig(),
            TestWake(),
            RotateCredentials(),
            RotateVpnKey(),
        ]
    )


def job_power(config: EdgeConfig, clock: Callable[[], float]) -> SystemdPower | RecordingPower:
    """The power backend for jobs (reboot, power-off): systemd, or recorded (tests, demo)."""
    if config.power.backend == "record":
        record = config.power.record_file or str(config.state_dir / "power.jsonl")
        return RecordingPower(Path(record), clock=clock)
    return SystemdPower()


def build_runner(
    config: EdgeConfig,
    *,
    publish: Publish,
    next_seq: Callable[[], int],
    clock: Callable[[], float],
    config_path: Path | None = None,
    boot_time: float | None = None,
    boot_check: dict[str, Any] | None = None,
    pause_wake: Callable[[], Awaitable[None]] | None = None,
    on_config: Callable[[EdgeConfig], None] | None = None,
    on_busy: Callable[[bool], None] | None = None,
) -> JobRunner:
    """The daemon's job runner, its journal in ``state_dir/jobs.json``."""
    http = None
    if config.control_plane_url:
        # The password is read at each call: rotate-credentials changes it in place.
        http = DeviceHttp(
            config.control_plane_url,
            config.device_id,
            lambda: config.mqtt.password,
            ca_file=config.jobs.ca_file,
        )
    env = JobEnv(
        config=config,
        config_path=config_path,
        clock=clock,
        power=job_power(config, clock),
        http=http,
        boot_time=boot_time,
        boot_check=boot_check,
        pause_wake=pause_wake,
        on_config=on_config,
    )
    return JobRunner(
        journal_path=config.state_dir / "jobs.json",
        operations=default_operations(),
        env=env,
        publish=publish,
        next_seq=next_seq,
        on_busy=on_busy,
        clock=clock,
    )
