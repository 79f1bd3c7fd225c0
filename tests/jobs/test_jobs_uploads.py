"""What devices upload over HTTPS (HTTP Basic with their MQTT credentials), on both databases."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.db import migrate
from control_plane.models import Role
from tests.conftest import add_user, make_settings
from tests.jobs.jobs_support import Api


@pytest.fixture
def api(db_url: str, manual_ticks: None) -> Iterator[Api]:
    migrate(db_url)
    token = add_user(db_url, "admin@example.org", Role.ADMIN)
    with TestClient(create_app(make_settings(db_url, None))) as client:
        yield Api(client, {"Authorization": f"Bearer {token}"})


def test_device_uploads_and_credentials(api: Api, db_url: str) -> None:
    password = api.register("pc-up-1")
    other = api.register("pc-up-2")
    me = ("pc-up-1", password)
    base = "/api/v1/devices/pc-up-1"
    report = {"v": 1, "generated_at": 1_709_288_553.5, "problems": {"camera": "no /dev/video0"}}

    # Who may upload: only the device itself, with its current password.
    assert api.client.post(f"{base}/diagnostics", json=report).status_code == 401
    r = api.client.post(f"{base}/diagnostics", json=report, auth=("pc-up-1", "wrong"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = api.client.post(f"{base}/diagnostics", json=report, auth=("pc-up-2", other))
    assert r.status_code == 403
    r = api.client.post(f"{base}/diagnostics", json=report, headers=api.headers)
    assert r.status_code == 401, "a person's token is not a device's credentials"

    r = api.client.post(f"{base}/diagnostics", json=report, auth=me, params={"execution_id": "e1"})
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    r = api.client.post(f"{base}/diagnostics", content=b"[1, 2]", auth=me)
    assert r.status_code == 422 and "JSON object" in r.json()["detail"]
    r = api.client.post(f"{base}/diagnostics", content=b"{oops", auth=me)
    assert r.status_code == 422 and r.json()["detail"].startswith("body:")
    r = api.client.post(f"{base}/diagnostics", content=b" " * (2 * 1024 * 1024 + 1), auth=me)
    assert r.status_code == 413
    second = api.client.post(f"{base}/diagnostics", json={**report, "problems": {}}, auth=me).json()

    listing = api.client.get(f"{base}/diagnostics", headers=api.headers).json()
    assert [x["id"] for x in listing] == [second["id"], first]
    assert listing[1]["execution_id"] == "e1"
    assert listing[1]["problems"] == {"camera": "no /dev/video0"}
    assert listing[1]["generated_at"].startswith("2024-03-01T10:22:33")
    one = api.client.get(f"{base}/diagnostics/{first}", headers=api.headers).json()
    assert one["report"] == report
    latest = api.client.get(f"{base}/diagnostics/latest", headers=api.headers).json()
    assert latest["id"] == second["id"]
    assert api.client.get(f"{base}/diagnostics/x", headers=api.headers).status_code == 422
    assert (
        api.client.get(
            f"/api/v1/devices/pc-up-2/diagnostics/{first}", headers=api.headers
        ).status_code
        == 404
    )
    carer = {"Authorization": f"Bearer {add_user(db_url, 'c@example.org', Role.CAREGIVER)}"}
    assert api.client.get(f"{base}/diagnostics", headers=carer).status_code == 403

    # Logs: gzip text, checked before it is stored.
    text = "".join(f"line {i}\n" for i in range(1000)).encode()
    r = api.client.post(
        f"{base}/logs", content=gzip.compress(text), auth=me, params={"execution_id": "e2"}
    )
    assert r.status_code == 201, r.text
    bundle = r.json()
    assert bundle["size"] < len(text)
    r = api.client.post(f"{base}/logs", content=b"plain text", auth=me)
    assert r.status_code == 422 and "gzip" in r.json()["detail"]
    r = api.client.post(f"{base}/logs", content=gzip.compress(text)[:-10], auth=me)
    assert r.status_code == 422
    bomb = gzip.compress(b"\0" * (51 * 1024 * 1024))
    assert api.client.post(f"{base}/logs", content=bomb, auth=me).status_code == 413
    logs = api.client.get(f"{base}/logs", headers=api.headers).json()
    assert [b["id"] for b in logs] == [bundle["id"]]
    r = api.client.get(f"{base}/logs/{bundle['id']}", headers=api.headers)
    assert r.status_code == 200 and r.content == text
    assert r.headers["content-type"].startswith("text/plain")

    # A new password, asked for with the current one; the old one stops working.
    new = "n3w-pass-word-for-pc-up-1-xyz"
    r = api.client.post(f"{base}/credentials", json={"password": "short"}, auth=me)
    assert r.status_code == 422 and "password" in r.json()["detail"]
    r = api.client.post(f"{base}/credentials", json={"password": new}, auth=me)
    assert r.status_code == 204
    assert (
        api.client.post(f"{base}/credentials", json={"password": new}, auth=me).status_code == 401
    )
    r = api.client.post(f"{base}/credentials", json={"password": new}, auth=("pc-up-1", new))
    assert r.status_code == 204, "idempotent with the new password"
    assert api.client.post(f"{base}/logs", content=gzip.compress(b"x"), auth=me).status_code == 401
    r = api.client.post(f"{base}/logs", content=gzip.compress(b"x"), auth=("pc-up-1", new))
    assert r.status_code == 201
    audit = api.client.get("/api/v1/devices/pc-up-1", headers=api.headers)
    assert audit.status_code == 200
    # Revoked devices are locked out.
    api.client.post("/api/v1/devices/pc-up-1/revoke", headers=api.headers)
    r = api.client.post(f"{base}/diagnostics", content=json.dumps(report), auth=("pc-up-1", new))
    assert r.status_code == 401
