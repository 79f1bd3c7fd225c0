"""The fleet API on SQLite and PostgreSQL: enrollment tokens, events, series, alert pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from control_plane import alerts
from control_plane.app import create_app
from control_plane.db import migrate, transaction
from control_plane.fleet.series import Point, downsample
from control_plane.models import Role
from edge import protocol as p
from tests.conftest import add_user, make_settings


@dataclass
class Api:
    client: TestClient
    admin: dict[str, str]
    manager: dict[str, str]
    caregiver: dict[str, str]

    def ingest(self, *messages: tuple[str, bytes]) -> None:
        self.client.app.state.ingest.handle_many(list(messages))  # type: ignore[attr-defined]


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    migrate(db_url)
    tokens = {
        role: {"Authorization": f"Bearer {add_user(db_url, f'{role.value}@example.org', role)}"}
        for role in (Role.ADMIN, Role.FLEET_MANAGER, Role.CAREGIVER)
    }
    settings = make_settings(db_url, None, device_mqtt_host="mqtt.example.org")
    with TestClient(create_app(settings)) as client:
        yield Api(client, tokens[Role.ADMIN], tokens[Role.FLEET_MANAGER], tokens[Role.CAREGIVER])


def _problem(r: object, status: int, *words: str) -> None:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    detail = r.json()["detail"]  # type: ignore[attr-defined]
    for word in words:
        assert word in detail, detail


def test_enrollment_tokens_are_single_use_and_listed_without_secrets(api: Api) -> None:
    c = api.client
    _problem(c.post("/api/v1/enrollment-tokens", json={}, headers=api.caregiver), 403, "role")
    r = c.post(
        "/api/v1/enrollment-tokens",
        json={"device_id": "pc-api-01", "name": "Casa Verdi", "group": "torino"},
        headers=api.manager,
    )
    assert r.status_code == 201, r.text
    first = r.json()
    _problem(
        c.post("/api/v1/enrollment-tokens", json={"device_id": "pc-api-01"}, headers=api.manager),
        409,
        "device_id",
        "pending",
    )
    generated = c.post("/api/v1/enrollment-tokens", json={}, headers=api.manager).json()
    assert generated["device_id"].startswith("pc-")
    r = c.post("/api/v1/enrollment-tokens", json={"device_id": "Bad Id"}, headers=api.manager)
    assert r.status_code == 422 and "device_id" in r.json()["detail"]

    r = c.post("/api/v1/enroll", json={"token": first["token"]})
    assert r.status_code == 200, r.text
    enrolled = r.json()
    assert enrolled["device_id"] == "pc-api-01"
    assert enrolled["mqtt_host"] == "mqtt.example.org" and enrolled["tls_ca_pem"] is None
    assert len(enrolled["mqtt_password"]) >= 20
    device = c.get("/api/v1/devices/pc-api-01", headers=api.manager).json()
    assert (device["name"], device["group"]) == ("Casa Verdi", "torino")
    _problem(c.post("/api/v1/enroll", json={"token": first["token"]}), 410, "already used")
    _problem(c.post("/api/v1/enroll", json={"token": "x" * 40}), 401, "not a valid")
    _problem(
        c.post("/api/v1/enrollment-tokens", json={"device_id": "pc-api-01"}, headers=api.manager),
        409,
        "already enrolled",
    )

    listing = c.get("/api/v1/enrollment-tokens", headers=api.manager).json()
    assert listing["total"] == 2
    assert {t["state"] for t in listing["items"]} == {"used", "pending"}
    assert all("token" not in t for t in listing["items"])
    page = c.get("/api/v1/enrollment-tokens", params={"limit": 1}, headers=api.manager).json()
    assert (page["total"], len(page["items"]), page["limit"]) == (2, 1, 1)
    pending = c.get(
        "/api/v1/enrollment-tokens", params={"state": "pending"}, headers=api.manager
    ).json()["items"]
    assert [t["device_id"] for t in pending] == [generated["device_id"]]
    r = c.get("/api/v1/enrollment-tokens", params={"state": "lost"}, headers=api.manager)
    assert r.status_code == 422 and "state" in r.json()["detail"]

    # Withdrawn before use: the PC can no longer enroll with it.
    assert (
        c.delete(f"/api/v1/enrollment-tokens/{pending[0]['id']}", headers=api.manager).status_code
        == 204
    )
    _problem(c.post("/api/v1/enroll", json={"token": generated["token"]}), 401, "not a valid")
    _problem(
        c.delete(f"/api/v1/enrollment-tokens/{first['id']}", headers=api.manager), 409, "revoke"
    )
    _problem(c.delete("/api/v1/enrollment-tokens/9999", headers=api.manager), 404, "token_id")


def _register(api: Api, device_id: str) -> None:
    r = api.client.post("/api/v1/devices", json={"id": device_id}, headers=api.admin)
    assert r.status_code == 201, r.text


def test_events_newest_first_filtered_and_paged(api: Api) -> None:
    _register(api, "pc-api-02")
    topic = p.topic(p.TopicKind.EVENTS, "pc-api-02")
    now = p.now()
    api.ingest(
        *[
            (
                topic,
                p.encode(
                    p.Event(
                        ts=now - 100 + i,
                        id=f"ev-{i}",
                        kind="help" if i == 3 else "info",
                        severity="urgent" if i == 3 else "info",
                        message=f"event {i}",
                        data={"i": i},
                    )
                ),
            )
            for i in range(5)
        ]
    )
    c = api.client
    events = c.get("/api/v1/devices/pc-api-02/events", headers=api.manager).json()
    assert events["total"] == 5
    assert [e["id"] for e in events["items"]] == ["ev-4", "ev-3", "ev-2", "ev-1", "ev-0"]
    helps = c.get(
        "/api/v1/devices/pc-api-02/events", params={"kind": "help"}, headers=api.manager
    ).json()
    assert [(e["id"], e["severity"], e["data"]) for e in helps["items"]] == [
        ("ev-3", "urgent", {"i": 3})
    ]
    page = c.get(
        "/api/v1/devices/pc-api-02/events", params={"limit": 2, "offset": 2}, headers=api.manager
    ).json()
    assert [e["id"] for e in page["items"]] == ["ev-2", "ev-1"]
    _problem(c.get("/api/v1/devices/nope-404/events", headers=api.manager), 404, "device_id")
    _problem(c.get("/api/v1/devices/pc-api-02/events", headers=api.caregiver), 403, "role")


def test_telemetry_series_over_a_range(api: Api) -> None:
    _register(api, "pc-api-03")
    topic = p.topic(p.TopicKind.TELEMETRY, "pc-api-03")
    now = p.now()
    # Two hours of one sample a minute, grouped as an offline device would send them.
    samples = [
        p.Sample(ts=now - 7200 + 60 * i, metrics={"cpu.percent": float(i), "mem.used_pct": 50.0})
        for i in range(120)
    ]
    api.ingest(
        *[
            (
                topic,
                p.encode(
                    p.TelemetryBatch(ts=now, seq=k + 1, samples=samples[k * 10 : k * 10 + 10])
                ),
            )
            for k in range(12)
        ]
    )
    c = api.client
    r = c.get(
        "/api/v1/devices/pc-api-03/telemetry",
        params=[
            ("metric", "cpu.percent"),
            ("metric", "mem.used_pct"),
            ("range", "1h"),
            ("until", dt.datetime.fromtimestamp(now + 1, dt.UTC).isoformat()),
        ],
        headers=api.manager,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    cpu = body["series"]["cpu.percent"]
    assert [v for _, v in cpu] == [float(i) for i in range(61, 120)]  # the last hour only
    assert len(body["series"]["mem.used_pct"]) == 59
    assert dt.datetime.fromisoformat(cpu[0][0]) >= dt.datetime.fromisoformat(body["since"])
    day = c.get(
        "/api/v1/devices/pc-api-03/telemetry",
        params={"metric": "cpu.percent", "range": "24h", "max_points": 12},
        headers=api.manager,
    ).json()["series"]["cpu.percent"]
    assert 1 <= len(day) <= 12  # averaged into buckets
    assert day[0][1] < day[-1][1]
    assert c.get(
        "/api/v1/devices/pc-api-03/telemetry",
        params={"metric": "nothing.here"},
        headers=api.manager,
    ).json()["series"] == {"nothing.here": []}
    _problem(
        c.get(
            "/api/v1/devices/pc-api-03/telemetry",
            params={"metric": "cpu.percent", "range": "2w"},
            headers=api.manager,
        ),
        422,
        "range",
        "1h, 24h, 7d, 30d",
    )
    r = c.get("/api/v1/devices/pc-api-03/telemetry", headers=api.manager)
    assert r.status_code == 422 and "metric" in r.json()["detail"]
    _problem(
        c.get(
            "/api/v1/devices/pc-api-03/telemetry",
            params={"metric": "cpu.percent", "until": "2026-01-01T00:00:00"},
            headers=api.manager,
        ),
        422,
        "until",
    )


def test_alert_pages_and_what_a_caregiver_sees(api: Api) -> None:
    _register(api, "pc-api-04")
    factory = api.client.app.state.sessionmaker  # type: ignore[attr-defined]
    with transaction(factory) as session:
        for i in range(5):
            alerts.raise_alert(
                session,
                key=f"disk_full:pc-api-04:d{i}",
                kind="disk_full",
                severity="warning",
                message=f"disk {i}",
                device_id="pc-api-04",
            )
        alerts.resolve(session, "disk_full:pc-api-04:d0")
    c = api.client
    active = c.get("/api/v1/alerts", params={"limit": 2}, headers=api.manager).json()
    assert (active["total"], len(active["items"]), active["offset"]) == (4, 2, 0)
    assert [a["message"] for a in active["items"]] == ["disk 4", "disk 3"]
    everything = c.get("/api/v1/alerts", params={"status": "all"}, headers=api.manager).json()
    assert everything["total"] == 5
    resolved = c.get("/api/v1/alerts", params={"status": "resolved"}, headers=api.manager).json()
    assert [a["message"] for a in resolved["items"]] == ["disk 0"]
    # A caregiver sees only alerts about the people they look after: none of the fleet's.
    mine = c.get("/api/v1/alerts", params={"status": "all"}, headers=api.caregiver).json()
    assert mine["total"] == 0
    _problem(c.get(f"/api/v1/alerts/{everything['items'][0]['id']}", headers=api.caregiver), 404)
    r = c.get("/api/v1/alerts", params={"status": "lost"}, headers=api.manager)
    assert r.status_code == 422 and "status" in r.json()["detail"]
    schema = c.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/enrollment-tokens",
        "/api/v1/enroll",
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}/ack",
        "/api/v1/devices/{device_id}/events",
        "/api/v1/devices/{device_id}/telemetry",
    ):
        assert path in schema["paths"], path


def test_downsampling_averages_into_buckets() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    points = [Point(t0 + dt.timedelta(minutes=i), float(i)) for i in range(10)]
    assert downsample(points, t0, t0 + dt.timedelta(minutes=10), 20) == points
    halves = downsample(points, t0, t0 + dt.timedelta(minutes=10), 2)
    assert [p.value for p in halves] == [2.0, 7.0]
    assert halves[0].ts == t0 + dt.timedelta(minutes=2)
    with pytest.raises(ValueError, match="max_points"):
        downsample(points, t0, t0, 0)
