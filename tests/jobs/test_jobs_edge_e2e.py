"""One real ``difronte-edge`` process, the real broker and control plane: the runner end to end.

A reboot goes through the recording power seam and finishes when the agent comes back; a
duplicated notify and the re-notify after the restart run nothing twice; an operation the
agent does not know is REJECTED with the reason; a job created while the device is off is
picked up when it comes back, and set-config rewrites its configuration file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from control_plane.jobs.models import Job, JobExecution
from control_plane.jobs.notifier import notify_message
from control_plane.jobs.service import new_execution_id
from edge import protocol as p
from edge.config import load_config
from tests.conftest import ControlPlane
from tests.jobs.jobs_support import Api
from tests.support.broker import CP_PASSWORD, CP_USER, Mosquitto
from tests.support.edge import EdgeProcess, write_edge_config
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def _reboots(power_file: Path) -> int:
    if not power_file.exists():
        return 0
    lines = power_file.read_text().splitlines()
    return sum(1 for line in lines if json.loads(line)["action"] == "reboot")


def _publish_as_cp(broker: Mosquitto, topic: str, payload: bytes) -> None:
    done = subprocess.run(
        [
            "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", CP_USER,
            "-P", CP_PASSWORD, "-t", topic, "-q", "1", "-s",
        ],
        input=payload,
        capture_output=True,
        timeout=15,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_agent_runs_jobs_once_across_restarts(
    quick_jobs: None, control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    api = Api(control_plane.client, control_plane.headers)
    device = "pc-e2e-jobs"
    config = write_edge_config(tmp_path, device, api.register(device), broker)
    power_file = tmp_path / device / "power.jsonl"
    edge = EdgeProcess(config, tmp_path / "edge1.log").start()
    try:
        wait_until(lambda: control_plane.device(device)["online"], timeout=20, message="online")
        api.create_job(id="reboot-e2e", operation="reboot", targets={"devices": [device]})
        running = wait_until(
            lambda: (
                (e := api.by_device("reboot-e2e")[device])["details"].get("step") == "rebooting"
                and e
            ),
            timeout=20,
            message="reboot requested",
        )
        assert running["status"] == "IN_PROGRESS"
        assert _reboots(power_file) == 1

        # The same notify again, as a QoS 1 redelivery would bring it.
        factory = control_plane.client.app.state.sessionmaker  # type: ignore[attr-defined]
        with factory() as session:
            topic, payload = notify_message(session, device)
        assert topic == p.topic(p.TopicKind.JOBS_NOTIFY, device)
        assert running["execution_id"].encode() in payload
        _publish_as_cp(broker, topic, payload)
        _publish_as_cp(broker, topic, payload)

        # A newer control plane's operation this agent does not know.
        with factory() as session:
            session.add(Job(id="future-op", operation="defragment", parameters={}, targets={}))
            session.flush()
            session.add(
                JobExecution(execution_id=new_execution_id(), job_id="future-op", device_id=device)
            )
            session.commit()
        rejected = wait_until(
            lambda: (e := api.by_device("future-op")[device])["status"] == "REJECTED" and e,
            timeout=20,
            message="unknown operation rejected",
        )
        assert "operation: unknown operation 'defragment'" in rejected["details"]["reason"]
        assert _reboots(power_file) == 1, "the duplicates ran nothing"
    finally:
        edge.stop()

    # The "reboot": a new process on the same state. Its jobs/get brings the reboot again.
    edge = EdgeProcess(config, tmp_path / "edge2.log").start()
    try:
        done = wait_until(
            lambda: (e := api.by_device("reboot-e2e")[device])["status"] == "SUCCEEDED" and e,
            timeout=20,
            message="reboot reported done after the restart",
        )
        assert done["details"]["rebooted"] == "yes"
        assert _reboots(power_file) == 1
        statuses = [
            e["status"] for e in api.execution("reboot-e2e", done["execution_id"])["events"]
        ]
        # Progress reports may overtake each other; seq keeps only the newest of them.
        assert statuses[0] == "QUEUED" and statuses[-1] == "SUCCEEDED"
        assert set(statuses[1:-1]) == {"IN_PROGRESS"}
    finally:
        edge.stop()
    wait_until(lambda: not control_plane.device(device)["online"], timeout=10, message="off")

    # While it is off, a job for it; it runs when the device is back.
    api.create_job(
        id="config-e2e",
        operation="set-config",
        parameters={"settings": {"telemetry.interval_s": 45}},
        targets={"devices": [device]},
    )
    wait_until(
        lambda: api.by_device("config-e2e")[device]["released_at"], timeout=10, message="released"
    )
    assert api.by_device("config-e2e")[device]["status"] == "QUEUED"
    edge = EdgeProcess(config, tmp_path / "edge3.log").start()
    try:
        done = wait_until(
            lambda: (e := api.by_device("config-e2e")[device])["status"] == "SUCCEEDED" and e,
            timeout=20,
            message="set-config done after connecting",
        )
        assert done["details"]["applied_now"] == "telemetry.interval_s"
        assert load_config(config).telemetry.interval_s == 45
        assert _reboots(power_file) == 1
    finally:
        edge.stop()
    # Nothing the device sent was refused by the control plane.
    errors = api.client.get(f"/api/v1/devices/{device}/ingest-errors", headers=api.headers)
    assert errors.json() == []
