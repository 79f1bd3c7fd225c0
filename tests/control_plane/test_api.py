"""The HTTP API: token auth on every route, problem+json errors naming the field, roles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.db import migrate
from control_plane.models import Role
from tests.conftest import add_user, make_settings


@pytest.fixture
def api(db_url: str) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    migrate(db_url)
    admin = add_user(db_url, "admin@example.org", Role.ADMIN, password="admin-pw-1")
    carer = add_user(db_url, "anna@example.org", Role.CAREGIVER)
    with TestClient(create_app(make_settings(db_url, None))) as client:
        yield client, {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {carer}"}


def test_every_api_route_needs_a_token(
    api: tuple[TestClient, dict[str, str], dict[str, str]],
) -> None:
    client, _, _ = api
    for method, path in [
        ("GET", "/api/v1/devices"),
        ("POST", "/api/v1/devices"),
        ("GET", "/api/v1/devices/pc-001"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/devices/pc-001/revoke"),
    ]:
        r = client.request(method, path, json={})
        assert r.status_code == 401, (method, path)
        assert r.headers["content-type"] == "application/problem+json"
    r = client.get("/api/v1/devices", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_openapi_lists_only_authenticated_routes(
    api: tuple[TestClient, dict[str, str], dict[str, str]],
) -> None:
    client, _, _ = api
    spec = client.get("/api/v1/openapi.json").json()
    public = {"/api/v1/auth/token", "/api/v1/enroll"}  # the enrollment token is the secret
    for path, ops in spec["paths"].items():
        if path in public:
            continue
        for op in ops.values():
            assert op.get("security"), f"{path} has no security requirement"


def test_token_login_and_me(api: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    client, _, _ = api
    bad = client.post("/api/v1/auth/token", json={"email": "admin@example.org", "password": "x"})
    assert bad.status_code == 401
    r = client.post(
        "/api/v1/auth/token", json={"email": "admin@example.org", "password": "admin-pw-1"}
    )
    assert r.status_code == 200
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    ).json()
    assert me["role"] == "admin"


def test_register_list_and_errors(api: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    client, admin, carer = api
    r = client.post("/api/v1/devices", json={"id": "pc-001", "group": "roma"}, headers=admin)
    assert r.status_code == 201
    assert r.json()["mqtt_username"] == "pc-001" and len(r.json()["mqtt_password"]) >= 24
    assert client.post("/api/v1/devices", json={"id": "pc-001"}, headers=admin).status_code == 409
    client.post("/api/v1/devices", json={"id": "pc-002", "group": "milano"}, headers=admin)

    bad = client.post("/api/v1/devices", json={"id": "PC+1"}, headers=admin)
    assert bad.status_code == 422
    body = bad.json()
    assert body["errors"][0]["field"] == "id" and "id" in body["detail"]
    wrong = client.post("/api/v1/devices", json={"name": 3}, headers=admin)
    assert {e["field"] for e in wrong.json()["errors"]} == {"id", "name"}

    page = client.get("/api/v1/devices?group=roma", headers=admin).json()
    assert page["total"] == 1 and page["items"][0]["id"] == "pc-001"
    page = client.get("/api/v1/devices?limit=1&offset=1", headers=admin).json()
    assert page["total"] == 2 and [d["id"] for d in page["items"]] == ["pc-002"]
    assert client.get("/api/v1/devices?limit=0", headers=admin).status_code == 422
    assert client.get("/api/v1/devices/pc-404", headers=admin).status_code == 404
    # A caregiver has no business with the fleet registry.
    r = client.get("/api/v1/devices", headers=carer)
    assert r.status_code == 403 and "caregiver" in r.json()["detail"]

    twin = client.put(
        "/api/v1/devices/pc-001/twin/desired/telemetry", json={"interval_s": 2}, headers=admin
    )
    assert twin.status_code == 422 and "interval_s" in twin.json()["detail"]
    twin = client.put(
        "/api/v1/devices/pc-001/twin/desired/telemetry", json={"interval_s": 20}, headers=admin
    )
    assert twin.status_code == 200 and twin.json()["desired_version"] == 1

    revoked = client.post("/api/v1/devices/pc-001/revoke", headers=admin).json()
    assert revoked["revoked"] is True and revoked["online"] is False
