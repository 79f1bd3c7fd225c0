"""Rollouts against the real broker with 50 simulated devices (aiomqtt clients in this process).

Each simulated device has its own broker credentials from the control plane, subscribes to
its ``jobs/notify``, asks ``jobs/get`` on connect and answers every new execution with
IN_PROGRESS and an outcome. The control plane runs its real periodic tick, with the rollout
"minute" shrunk to a couple of seconds (``quick_jobs``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from control_plane.jobs import TIMING
from edge import protocol as p
from tests.conftest import ControlPlane
from tests.jobs.jobs_support import Api, simulated_fleet
from tests.support.broker import Mosquitto
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def _api(cp: ControlPlane) -> Api:
    return Api(cp.client, cp.headers)


def _released(executions: list[dict[str, Any]]) -> list[dt.datetime]:
    return sorted(
        dt.datetime.fromisoformat(e["released_at"]) for e in executions if e["released_at"]
    )


def test_rollout_to_50_devices_respects_its_rate(
    quick_jobs: None, control_plane: ControlPlane, broker: Mosquitto
) -> None:
    api = _api(control_plane)
    devices = [f"pc-rate-{i:02d}" for i in range(50)]
    with simulated_fleet(broker) as fleet:
        for d in devices:
            fleet.connect(d, api.register(d, group="rollout"))
        rate = 10
        api.create_job(
            id="rate-50",
            operation="run-diagnostics",
            targets={"groups": ["rollout"]},
            rollout={"type": "rate", "max_per_minute": rate},
        )
        job = wait_until(
            lambda: (j := api.job("rate-50"))["status"] == "COMPLETED" and j,
            timeout=60,
            message="rollout complete",
        )
        assert job["counts"]["SUCCEEDED"] == 50
        executions = api.executions("rate-50")
        released = _released(executions)
        assert len(released) == 50
        window = dt.timedelta(seconds=TIMING.window_s)
        for start in released:
            in_window = [t for t in released if start <= t < start + window]
            assert len(in_window) <= rate, f"{len(in_window)} releases within {window} of {start}"
        # 50 at 10 per window: the last release cannot come before four windows have passed.
        assert released[-1] - released[0] >= 4 * window
        # Every device ran its execution exactly once, the one it was given.
        by_device = {e["device_id"]: e["execution_id"] for e in executions}
        assert {d: fleet.handled.get(d) for d in devices} == {d: [by_device[d]] for d in devices}
        detail = api.execution("rate-50", by_device["pc-rate-07"])
        steps = [(e["status"], e["source"]) for e in detail["events"]]
        # Two ingest workers may carry IN_PROGRESS and SUCCEEDED at once: if SUCCEEDED wins,
        # the older progress report is dropped (by its seq), never the outcome.
        assert steps[0] == ("QUEUED", "control-plane")
        assert steps[-1] == ("SUCCEEDED", "device")
        assert set(steps[1:-1]) <= {("IN_PROGRESS", "device")}
        assert detail["details"] == {"result": "ok"}


def _half_fail(device_id: str, execution: p.JobExecution) -> tuple[str, dict[str, str]]:
    index = int(device_id.rsplit("-", 1)[1])
    if index % 2 == 0:
        return "FAILED", {"reason": "checksum mismatch"}
    return "SUCCEEDED", {}


def test_rollout_aborts_past_its_failure_threshold_and_cancels_the_rest(
    quick_jobs: None, control_plane: ControlPlane, broker: Mosquitto
) -> None:
    TIMING.window_s = 30.0  # one release wave: the abort must come before any second one
    api = _api(control_plane)
    devices = [f"pc-abort-{i:02d}" for i in range(50)]
    with simulated_fleet(broker, _half_fail) as fleet:
        for d in devices:
            fleet.connect(d, api.register(d, group="abort"))
        api.create_job(
            id="abort-50",
            operation="update-agent",
            parameters={
                "url": "https://updates.example/difronte-2.0-py3-none-any.whl",
                "sha256": "c" * 64,
                "version": "2.0",
            },
            targets={"groups": ["abort"]},
            rollout={"type": "rate", "max_per_minute": 10},
            abort=[{"failure_type": "FAILED", "threshold_pct": 30, "min_executed": 10}],
        )
        job = wait_until(
            lambda: (j := api.job("abort-50"))["status"] == "ABORTED" and j,
            timeout=30,
            message="job aborted",
        )
        assert "5 of 10 executed (50.0%) exceed 30%" in job["reason"]
        assert job["counts"]["FAILED"] == 5 and job["counts"]["SUCCEEDED"] == 5
        assert job["counts"]["CANCELED"] == 40
        assert job["released"] == 10
        executions = api.executions("abort-50")
        assert [e["status"] for e in executions[:5]] == ["FAILED"] * 5, "failing first"
        canceled = [e for e in executions if e["status"] == "CANCELED"]
        assert all(e["released_at"] is None for e in canceled), "never sent to a device"
        events = api.execution("abort-50", canceled[0]["execution_id"])["events"]
        assert events[-1]["status"] == "CANCELED" and "job aborted" in events[-1]["note"]
        assert sum(len(v) for v in fleet.handled.values()) == 10


def test_an_offline_device_gets_its_execution_when_it_connects(
    quick_jobs: None, control_plane: ControlPlane, broker: Mosquitto
) -> None:
    api = _api(control_plane)
    with simulated_fleet(broker) as fleet:
        fleet.connect("pc-on-1", api.register("pc-on-1"))
        late = api.register("pc-off-1")
        api.create_job(
            id="later-1", operation="collect-logs", targets={"devices": ["pc-on-1", "pc-off-1"]}
        )
        wait_until(
            lambda: api.by_device("later-1")["pc-on-1"]["status"] == "SUCCEEDED",
            timeout=15,
            message="the online device done",
        )
        waiting = api.by_device("later-1")["pc-off-1"]
        assert waiting["status"] == "QUEUED" and waiting["released_at"], "released, unheard"
        assert api.job("later-1")["status"] == "IN_PROGRESS"
        fleet.connect("pc-off-1", late)  # asks jobs/get on connect: the answer lists it
        wait_until(
            lambda: api.job("later-1")["status"] == "COMPLETED",
            timeout=15,
            message="picked up on connect",
        )
        assert fleet.handled["pc-off-1"] == [waiting["execution_id"]]
