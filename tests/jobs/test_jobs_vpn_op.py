"""rotate-vpn-key hands the rotation to the tunnel manager and reports the outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from control_plane.jobs.documents import OPERATIONS, PARAMETERS
from edge import protocol as p
from edge.config import EdgeConfig, MqttConfig
from edge.jobs import default_operations
from edge.jobs.operations import ExecutionContext, JobEnv, JobFailed, decode_params
from edge.vpn.manager import RotationError


class FakeTunnel:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.timeouts: list[float] = []

    async def rotate_key(self, *, timeout: float = 300.0) -> str:
        self.timeouts.append(timeout)
        if self.fail:
            raise RotationError("the hub did not accept the new key within 5 s; old key kept")
        return "N" * 43 + "="


def _run(env: JobEnv, timeout_s: int = 120) -> dict[str, str]:
    op = default_operations()["rotate-vpn-key"]
    progress: list[int] = []

    async def _progress(pct: int, **_: Any) -> None:
        progress.append(pct)

    execution = p.JobExecution(
        execution_id="ex-1", job_id="j", operation=op.name, timeout_s=timeout_s
    )
    ctx = ExecutionContext(execution, env, _progress, lambda note: None)
    return asyncio.run(op.run(ctx, decode_params(op.params, {})))


def _env(tmp_path: Path, tunnel: FakeTunnel | None) -> JobEnv:
    config = EdgeConfig(device_id="pc-001", mqtt=MqttConfig(password="x"))
    env = JobEnv(config=config)
    if tunnel is not None:
        env.extra["vpn"] = tunnel
    return env


def test_the_control_plane_knows_the_operation() -> None:
    assert "rotate-vpn-key" in OPERATIONS and "rotate-vpn-key" in PARAMETERS


def test_rotation_succeeds_with_the_new_key(tmp_path: Path) -> None:
    tunnel = FakeTunnel()
    assert _run(_env(tmp_path, tunnel), timeout_s=90) == {"public_key": "N" * 43 + "="}
    assert tunnel.timeouts == [90.0]  # the execution's own timeout bounds the rotation


def test_rotation_failure_and_missing_tunnel_fail_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(JobFailed, match="old key kept"):
        _run(_env(tmp_path, FakeTunnel(fail=True)))
    with pytest.raises(JobFailed, match="no VPN tunnel"):
        _run(_env(tmp_path, None))
