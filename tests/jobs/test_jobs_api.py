"""The jobs API and the database side of rollouts, on SQLite and PostgreSQL, without a broker.

Device reports go through the real ingest (``Ingest.handle``) and the rollout through the
real tick (``run_tick``) at chosen instants, so every transition is checked through the API.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from control_plane.app import create_app
from control_plane.db import migrate, utcnow
from control_plane.jobs import register_busy_check, unregister_busy_check
from control_plane.models import Role
from tests.conftest import add_user, make_settings
from tests.jobs.jobs_support import Api


@pytest.fixture
def api(db_url: str, manual_ticks: None) -> Iterator[Api]:
    migrate(db_url)
    token = add_user(db_url, "admin@example.org", Role.ADMIN)
    with TestClient(create_app(make_settings(db_url, None))) as client:
        yield Api(client, {"Authorization": f"Bearer {token}"})


def _bearer(db_url: str, email: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {add_user(db_url, email, role)}"}


def test_dry_run_lists_targets_and_refusals_name_the_field(api: Api) -> None:
    for i in range(3):
        api.register(f"pc-roma-{i}", group="roma")
    api.register("pc-bari-0", group="bari")
    body = {
        "operation": "reboot",
        "targets": {"devices": ["pc-bari-0"], "groups": ["roma"]},
    }
    r = api.client.post("/api/v1/jobs/dry-run", json=body, headers=api.headers)
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["devices"] == ["pc-bari-0", "pc-roma-0", "pc-roma-1", "pc-roma-2"]
    assert dry["count"] == 4
    assert dry["offline"] == dry["devices"], "nobody has connected yet"
    assert dry["parameters"] == {"delay_s": 0}, "defaults filled in"
    listing = api.client.get("/api/v1/jobs", headers=api.headers).json()
    assert listing["total"] == 0, "a dry run stores nothing"

    r = api.client.post(
        "/api/v1/jobs/dry-run",
        json={"operation": "reboot", "targets": {"filter": {"id_prefix": "pc-roma-"}}},
        headers=api.headers,
    )
    assert r.json()["count"] == 3

    bad = [
        (
            {
                "operation": "update-agent",
                "parameters": {"url": "http://x/a.whl", "sha256": "0" * 64, "version": "2"},
                "targets": {"devices": ["pc-bari-0"]},
            },
            "parameters.url",
        ),
        (
            {"operation": "reboot", "targets": {"devices": ["pc-nope-9"]}},
            "targets.devices: unknown or revoked devices: pc-nope-9",
        ),
        ({"operation": "reboot", "targets": {}}, "targets"),
        ({"operation": "format-disk", "targets": {"groups": ["roma"]}}, "operation"),
        (
            {
                "operation": "set-config",
                "parameters": {"settings": {"device_id": "x"}},
                "targets": {"groups": ["roma"]},
            },
            "parameters.settings.device_id",
        ),
        ({"operation": "reboot", "targets": {"groups": ["nowhere"]}}, "targets: no device"),
    ]
    for body, field in bad:
        r = api.client.post("/api/v1/jobs", json=body, headers=api.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in r.json()["detail"], (field, r.json()["detail"])

    api.create_job(id="reboot-1", operation="reboot", targets={"groups": ["bari"]})
    r = api.client.post(
        "/api/v1/jobs",
        json={"id": "reboot-1", "operation": "reboot", "targets": {"groups": ["bari"]}},
        headers=api.headers,
    )
    assert r.status_code == 409


def test_rollout_rate_device_reports_and_completion(api: Api) -> None:
    for i in range(3):
        api.register(f"pc-rate-{i}")
    job = api.create_job(
        id="diag-1",
        operation="run-diagnostics",
        targets={"devices": ["pc-rate-0", "pc-rate-1", "pc-rate-2"]},
        rollout={"type": "rate", "max_per_minute": 2},
    )
    assert job["status"] == "IN_PROGRESS"
    assert job["counts"]["QUEUED"] == 3 and job["released"] == 0

    t0 = utcnow()
    assert api.tick(t0) == {"pc-rate-0", "pc-rate-1"}
    assert api.tick(t0 + dt.timedelta(seconds=30)) == set(), "the window is full"
    assert api.job("diag-1")["released"] == 2
    assert api.tick(t0 + dt.timedelta(seconds=61)) == {"pc-rate-2"}

    ex = api.by_device("diag-1")
    first = ex["pc-rate-0"]["execution_id"]
    api.report("pc-rate-0", first, "IN_PROGRESS", 1, progress=10, step="probing")
    api.report("pc-rate-0", first, "IN_PROGRESS", 1, progress=10)  # a QoS 1 duplicate
    api.report("pc-rate-0", first, "SUCCEEDED", 2, report_id="7")
    api.report("pc-rate-0", first, "FAILED", 3)  # too late: SUCCEEDED is final
    detail = api.execution("diag-1", first)
    assert detail["status"] == "SUCCEEDED"
    assert detail["progress"] == 100
    assert detail["details"] == {"step": "probing", "report_id": "7"}
    assert detail["operation"] == "run-diagnostics"
    assert [(e["status"], e["accepted"]) for e in detail["events"]] == [
        ("QUEUED", True),  # released
        ("IN_PROGRESS", True),
        ("SUCCEEDED", True),
        ("FAILED", False),
    ]
    assert "already SUCCEEDED" in detail["events"][-1]["note"]
    assert detail["started_at"] and detail["finished_at"] and detail["released_at"]

    second = ex["pc-rate-1"]["execution_id"]
    api.report("pc-rate-1", second, "FAILED", 1, reason="camera missing")
    third = ex["pc-rate-2"]["execution_id"]
    api.report("pc-rate-2", third, "REJECTED", 4, reason="parameters.x: unknown")
    # Another device cannot move an execution that is not its own.
    api.report("pc-rate-0", third, "SUCCEEDED", 9)
    order = [e["status"] for e in api.executions("diag-1")]
    assert order == ["FAILED", "REJECTED", "SUCCEEDED"], "failing devices first"

    api.tick(t0 + dt.timedelta(seconds=62))
    done = api.job("diag-1")
    assert done["status"] == "COMPLETED" and done["completed_at"]
    assert done["counts"] == {
        "QUEUED": 0,
        "IN_PROGRESS": 0,
        "SUCCEEDED": 1,
        "FAILED": 1,
        "TIMED_OUT": 0,
        "REJECTED": 1,
        "CANCELED": 0,
    }
    history = api.client.get("/api/v1/devices/pc-rate-1/executions", headers=api.headers)
    assert [e["execution_id"] for e in history.json()["items"]] == [second]


def test_timeout_retry_with_a_new_execution_id(api: Api) -> None:
    api.register("pc-retry-1")
    api.create_job(
        id="logs-1",
        operation="collect-logs",
        targets={"devices": ["pc-retry-1"]},
        timeout_s=10,
        retries=1,
    )
    t0 = utcnow()
    api.tick(t0)
    first = api.by_device("logs-1")["pc-retry-1"]["execution_id"]
    api.report("pc-retry-1", first, "IN_PROGRESS", 1)
    started = dt.datetime.fromisoformat(api.execution("logs-1", first)["started_at"])
    assert api.tick(started + dt.timedelta(seconds=9)) == set()
    assert api.tick(started + dt.timedelta(seconds=10)) == {"pc-retry-1"}
    retried = api.by_device("logs-1")["pc-retry-1"]
    assert retried["execution_id"] != first
    assert retried["attempt"] == 1 and retried["status"] == "QUEUED"
    assert retried["released_at"], "released again in the same tick"
    history = api.execution("logs-1", retried["execution_id"])["events"]
    assert [(e["status"], e["execution_id"] == first) for e in history] == [
        ("QUEUED", True),
        ("IN_PROGRESS", True),
        ("TIMED_OUT", True),
        ("QUEUED", False),
        ("QUEUED", False),
    ]
    assert "retry 1 of 1" in history[3]["note"]
    # The first attempt's late answer finds no execution: it changes nothing.
    api.report("pc-retry-1", first, "SUCCEEDED", 2)
    api.report("pc-retry-1", retried["execution_id"], "FAILED", 1, reason="journal unreadable")
    api.tick(utcnow() + dt.timedelta(seconds=30))
    final = api.job("logs-1")
    assert final["status"] == "COMPLETED"
    assert final["counts"]["FAILED"] == 1, "retries used up"


def test_abort_cancels_the_rest(api: Api) -> None:
    devices = [f"pc-abort-{i:02d}" for i in range(10)]
    for d in devices:
        api.register(d)
    api.create_job(
        id="upd-1",
        operation="update-agent",
        parameters={
            "url": "https://updates.example/difronte-2.0-py3-none-any.whl",
            "sha256": "a" * 64,
            "version": "2.0",
        },
        targets={"devices": devices},
        rollout={"type": "rate", "max_per_minute": 4},
        abort=[{"failure_type": "FAILED", "threshold_pct": 25, "min_executed": 4}],
    )
    t0 = utcnow()
    released = sorted(api.tick(t0))
    assert len(released) == 4
    ex = api.by_device("upd-1")
    for i, device in enumerate(released):
        outcome = "FAILED" if i < 2 else "SUCCEEDED"
        api.report(device, ex[device]["execution_id"], outcome, 1)
    assert api.tick(t0 + dt.timedelta(seconds=1)) == set()
    job = api.job("upd-1")
    assert job["status"] == "ABORTED"
    assert "2 of 4" in job["reason"]
    assert job["counts"]["CANCELED"] == 6
    assert api.tick(t0 + dt.timedelta(seconds=120)) == set(), "nothing released after abort"

    # The live view: server-sent events, ending once nothing is pending.
    with api.client.stream(
        "GET", "/api/v1/jobs/upd-1/stream", params={"interval_s": 0.1}, headers=api.headers
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert blocks[-1].startswith("event: end")
    progress = json.loads(blocks[0].split("data: ", 1)[1])
    assert progress["status"] == "ABORTED" and progress["pending"] == 0
    assert [f["status"] for f in progress["failing"]] == ["FAILED", "FAILED"]
    assert progress["failing"][0]["device_id"] in released[:2]
    assert api.client.get("/api/v1/jobs/nope/stream", headers=api.headers).status_code == 404


def test_cancel_job_and_one_execution(api: Api) -> None:
    for i in range(3):
        api.register(f"pc-cancel-{i}")
    api.create_job(
        id="wake-1", operation="test-wake", targets={"filter": {"id_prefix": "pc-cancel-"}}
    )
    api.tick()
    ex = api.by_device("wake-1")
    running = ex["pc-cancel-0"]["execution_id"]
    api.report("pc-cancel-0", running, "IN_PROGRESS", 1)
    one = ex["pc-cancel-1"]["execution_id"]
    r = api.client.post(
        f"/api/v1/jobs/wake-1/executions/{one}/cancel", json={}, headers=api.headers
    )
    assert r.status_code == 200 and r.json()["status"] == "CANCELED"
    assert r.json()["events"][-1]["source"].startswith("user:")
    r = api.client.post(
        f"/api/v1/jobs/wake-1/executions/{running}/cancel", json={}, headers=api.headers
    )
    assert r.status_code == 409 and "force" in r.json()["detail"]

    r = api.client.post(
        "/api/v1/jobs/wake-1/cancel", json={"reason": "wrong batch"}, headers=api.headers
    )
    assert r.status_code == 200
    job = r.json()
    assert job["status"] == "CANCELED" and job["reason"] == "wrong batch"
    assert job["counts"]["CANCELED"] == 2 and job["counts"]["IN_PROGRESS"] == 1
    # Canceled without force, the running one may still finish, and is reported.
    api.report("pc-cancel-0", running, "SUCCEEDED", 2)
    assert api.by_device("wake-1")["pc-cancel-0"]["status"] == "SUCCEEDED"
    r = api.client.post("/api/v1/jobs/wake-1/cancel", json={}, headers=api.headers)
    assert r.status_code == 409

    api.create_job(id="wake-2", operation="test-wake", targets={"devices": ["pc-cancel-2"]})
    api.tick()
    ex2 = api.by_device("wake-2")["pc-cancel-2"]["execution_id"]
    api.report("pc-cancel-2", ex2, "IN_PROGRESS", 1)
    r = api.client.post("/api/v1/jobs/wake-2/cancel", json={"force": True}, headers=api.headers)
    assert r.json()["counts"]["CANCELED"] == 1
    api.report("pc-cancel-2", ex2, "SUCCEEDED", 2)
    assert api.by_device("wake-2")["pc-cancel-2"]["status"] == "CANCELED"

    # A job canceled without force still times out what runs on.
    api.create_job(
        id="late-1", operation="reboot", targets={"devices": ["pc-cancel-2"]}, timeout_s=10
    )
    api.tick()
    ex3 = api.by_device("late-1")["pc-cancel-2"]["execution_id"]
    api.report("pc-cancel-2", ex3, "IN_PROGRESS", 1)
    api.client.post("/api/v1/jobs/late-1/cancel", json={}, headers=api.headers)
    api.tick(utcnow() + dt.timedelta(seconds=11))
    assert api.by_device("late-1")["pc-cancel-2"]["status"] == "TIMED_OUT"


def test_roles_per_job_checks_and_saved_queries(api: Api, db_url: str) -> None:
    api.register("pc-role-1")
    carer = _bearer(db_url, "carla@example.org", Role.CAREGIVER)
    tech = _bearer(db_url, "tina@example.org", Role.TECHNICIAN)
    tech2 = _bearer(db_url, "tom@example.org", Role.TECHNICIAN)
    fleet = _bearer(db_url, "fabio@example.org", Role.FLEET_MANAGER)
    body = {"operation": "reboot", "targets": {"devices": ["pc-role-1"]}}
    assert api.client.post("/api/v1/jobs", json=body).status_code == 401
    assert api.client.post("/api/v1/jobs", json=body, headers=carer).status_code == 403
    assert api.client.get("/api/v1/jobs", headers=carer).status_code == 403
    r = api.client.post("/api/v1/jobs", json=body, headers=tech)
    assert r.status_code == 403 and "technician" in r.json()["detail"]
    diag = {"id": "tech-diag", "operation": "run-diagnostics", "targets": body["targets"]}
    assert api.client.post("/api/v1/jobs", json=diag, headers=tech).status_code == 201
    assert api.client.get("/api/v1/jobs/tech-diag", headers=tech2).status_code == 200
    r = api.client.post("/api/v1/jobs/tech-diag/cancel", json={}, headers=tech2)
    assert r.status_code == 403
    assert (
        api.client.post("/api/v1/jobs/tech-diag/cancel", json={}, headers=tech).status_code == 200
    )
    assert api.client.post("/api/v1/jobs", json=body, headers=fleet).status_code == 201
    assert api.client.get("/api/v1/jobs/nope", headers=fleet).status_code == 404

    # Saved queries: the fleet manager's to make, anyone's in the fleet to use.
    api.register("pc-q-1", group="milano")
    api.register("pc-q-2", group="milano")
    api.register("pc-q-3", group="torino")
    body = {"name": "Milano", "description": "all of Milan", "filter": {"groups": ["milano"]}}
    r = api.client.post("/api/v1/device-queries", json=body, headers=api.headers)
    assert r.status_code == 201, r.text
    assert (
        api.client.post("/api/v1/device-queries", json=body, headers=api.headers).status_code == 409
    )
    bad = {"name": "Bad", "filter": {"colour": "red"}}
    r = api.client.post("/api/v1/device-queries", json=bad, headers=api.headers)
    assert r.status_code == 422 and "colour" in r.json()["detail"]
    tech = _bearer(db_url, "tess@example.org", Role.TECHNICIAN)
    assert api.client.post("/api/v1/device-queries", json=body, headers=tech).status_code == 403
    names = [q["name"] for q in api.client.get("/api/v1/device-queries", headers=tech).json()]
    assert names == ["Milano"]
    job = api.create_job(
        operation="collect-logs", targets={"query": "Milano", "devices": ["pc-q-3"]}
    )
    assert job["total"] == 3
    assert job["id"].startswith("job-")
    r = api.client.post(
        "/api/v1/jobs/dry-run",
        json={"operation": "reboot", "targets": {"query": "Roma"}},
        headers=api.headers,
    )
    assert r.status_code == 422 and "targets.query" in r.json()["detail"]
    assert (
        api.client.delete("/api/v1/device-queries/Milano", headers=api.headers).status_code == 204
    )
    assert (
        api.client.delete("/api/v1/device-queries/Milano", headers=api.headers).status_code == 404
    )


def test_maintenance_window_waits_for_an_awake_device_not_in_a_call(api: Api) -> None:
    for d in ("pc-mw-1", "pc-mw-2"):
        api.register(d)
    in_call: set[str] = set()

    def busy(session: Session, device_ids: Sequence[str]) -> set[str]:
        return in_call & set(device_ids)

    register_busy_check(busy)
    try:
        api.create_job(
            id="mw-1",
            operation="update-agent",
            parameters={"url": "https://u.example/a.whl", "sha256": "b" * 64, "version": "3"},
            targets={"devices": ["pc-mw-1", "pc-mw-2"]},
            maintenance_window=True,
        )
        assert api.tick() == set(), "both asleep"
        api.status("pc-mw-1", online=True)
        api.status("pc-mw-2", online=True)
        in_call.add("pc-mw-2")
        assert api.tick() == {"pc-mw-1"}
        assert api.tick() == set(), "pc-mw-2 is in a call"
        in_call.clear()
        assert api.tick() == {"pc-mw-2"}
    finally:
        unregister_busy_check(busy)
