"""Outcomes, escalations, contact sheets and the timeline, through the API (SQLite, PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane.alerts import raise_alert
from control_plane.app import create_app
from control_plane.care.models import Call, Escalation
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction, utcnow
from control_plane.fleet.notify import verify
from control_plane.models import (
    Alert,
    ApiToken,
    AuditEntry,
    Beneficiary,
    CaregiverAssignment,
    Device,
    Role,
    User,
)
from control_plane.security import hash_password, new_token, token_hash
from tests.conftest import make_settings
from tests.support.broker import free_port
from tests.support.wait import wait_until


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class _Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, Any], str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hooks.received.append((json.loads(body), self.headers["X-Difronte-Signature"]))
        assert verify("hook-secret", self.headers["X-Difronte-Signature"], body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def channels() -> Iterator[tuple[_Mailbox, int, int]]:
    mailbox = _Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    _Hooks.received = []
    http = HTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield mailbox, smtp.port, http.server_address[1]
    http.shutdown()
    http.server_close()
    smtp.stop()


class World:
    """A control plane without MQTT and the people of one care circle."""

    def __init__(self, db_url: str, client: TestClient) -> None:
        self.client = client
        self.factory = make_sessionmaker(make_engine(db_url))
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, int] = {}

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def db(self) -> Any:
        return transaction(self.factory)


def _people(db_url: str) -> dict[str, str]:
    # One transaction and one password hash for everyone: scrypt is slow on purpose.
    factory = make_sessionmaker(make_engine(db_url))
    roles = {
        "admin": Role.ADMIN,
        "coord": Role.COORDINATOR,
        "anna": Role.CAREGIVER,
        "carla": Role.CAREGIVER,
        "tech": Role.TECHNICIAN,
    }
    tokens: dict[str, str] = {}
    hashed = hash_password("pw-secret-1")
    with transaction(factory) as s:
        for name, role in roles.items():
            user = User(
                email=f"{name}@example.org", name=name, role=role.value, password_hash=hashed
            )
            s.add(user)
            s.flush()
            tokens[name] = new_token()
            s.add(ApiToken(user_id=user.id, token_hash=token_hash(tokens[name]), name="test"))
    factory.kw["bind"].dispose()
    return tokens


@pytest.fixture
def world(db_url: str, channels: tuple[_Mailbox, int, int]) -> Iterator[World]:
    _mailbox, smtp_port, hook_port = channels
    migrate(db_url)
    tokens = _people(db_url)
    settings = make_settings(
        db_url,
        None,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        care_email_to=["coordinatori@example.org"],
        care_webhook_url=f"http://127.0.0.1:{hook_port}/hook",
        care_webhook_secret="hook-secret",
    )
    with TestClient(create_app(settings, run_migrations=False)) as client:
        w = World(db_url, client)
        w.tokens = tokens
        with w.db() as s:
            for user in s.execute(select(User)).scalars():
                w.ids[user.email.split("@")[0]] = user.id
            s.add(Device(id="pc-out-01", mqtt_password_hash="x", online=True))
            s.flush()
            b = Beneficiary(name="Maria Rossi", device_id="pc-out-01")
            s.add(b)
            s.flush()
            s.add(CaregiverAssignment(beneficiary_id=b.id, user_id=w.ids["anna"]))
            w.ids["maria"] = b.id
            call = Call(
                session="call-test-1",
                beneficiary_id=b.id,
                device_id="pc-out-01",
                caller_id=w.ids["anna"],
                status="ended",
                end_reason="hangup_caller",
                connected_at=utcnow() - dt.timedelta(minutes=5),
                ended_at=utcnow(),
                stats_device={"rtt_ms": 12.0, "frames_received": 900.0},
                stats_browser={"framesDecoded": 880.0},
            )
            s.add(call)
            s.flush()
            w.ids["call"] = call.id
        yield w
        w.factory.kw["bind"].dispose()


def test_contact_sheet_agenda_and_call_policy_follow_who_is_asking(world: World) -> None:
    _agenda_lists_only_the_caregivers_people(world)
    _call_policy_reaches_the_desired_twin(world)
    maria = world.ids["maria"]
    social = {
        "kind": "social_worker",
        "name": "Dott.ssa Gialli",
        "organisation": "Comune",
        "email": "gialli@comune.example.org",
        "phone": "+39 06 1234",
    }
    r = world.client.post(
        f"/api/v1/care/beneficiaries/{maria}/contacts", json=social, headers=world.as_("anna")
    )
    assert r.status_code == 403
    r = world.client.post(
        f"/api/v1/care/beneficiaries/{maria}/contacts", json=social, headers=world.as_("coord")
    )
    assert r.status_code == 201, r.text
    bad = world.client.post(
        f"/api/v1/care/beneficiaries/{maria}/contacts",
        json={**social, "email": "not-an-address"},
        headers=world.as_("coord"),
    )
    assert bad.status_code == 422 and "email" in bad.json()["detail"]
    listed = world.client.get(
        f"/api/v1/care/beneficiaries/{maria}/contacts", headers=world.as_("anna")
    )
    assert [c["name"] for c in listed.json()] == ["Dott.ssa Gialli"]
    assert (
        world.client.get(
            f"/api/v1/care/beneficiaries/{maria}/contacts", headers=world.as_("carla")
        ).status_code
        == 403
    )


def test_problem_outcome_escalates_to_social_services_and_coordinators_follow_it(
    world: World, channels: tuple[_Mailbox, int, int]
) -> None:
    mailbox = channels[0]
    maria, call_id = world.ids["maria"], world.ids["call"]
    world.client.post(
        f"/api/v1/care/beneficiaries/{maria}/contacts",
        json={"kind": "social_worker", "name": "Dott.ssa Gialli", "email": "gialli@example.org"},
        headers=world.as_("coord"),
    )
    # Another caregiver's beneficiary: refused.
    r = world.client.post(
        f"/api/v1/care/calls/{call_id}/outcome", json={"kind": "well"}, headers=world.as_("carla")
    )
    assert r.status_code == 403
    r = world.client.post(
        f"/api/v1/care/calls/{call_id}/outcome",
        json={"kind": "problem", "note": ""},
        headers=world.as_("anna"),
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("note:")
    r = world.client.post(
        f"/api/v1/care/calls/{call_id}/outcome",
        json={
            "kind": "problem",
            "note": "Non mangia da due giorni",
            "escalations": [{"target": "social"}],
        },
        headers=world.as_("anna"),
    )
    assert r.status_code == 201, r.text
    (escalation,) = r.json()["escalations"]
    assert (escalation["target"], escalation["status"], escalation["urgent"]) == (
        "social",
        "open",
        False,
    )
    again = world.client.post(
        f"/api/v1/care/calls/{call_id}/outcome", json={"kind": "well"}, headers=world.as_("anna")
    )
    assert again.status_code == 409
    # Notified: the coordinators' mailbox, the social worker, the webhook.
    notifier = world.client.app.state.care_notifier  # type: ignore[attr-defined]
    assert notifier.wait_idle(15)
    wait_until(lambda: len(mailbox.messages) == 2, message="two e-mails")
    assert {m["To"] for m in mailbox.messages} == {"coordinatori@example.org", "gialli@example.org"}
    assert "Maria Rossi" in mailbox.messages[0]["Subject"]
    assert [b["event"] for b, _sig in _Hooks.received] == ["escalation.opened"]
    # The coordinator's queue shows it; the caregiver cannot take it.
    queue = world.client.get("/api/v1/care/escalations", headers=world.as_("coord")).json()
    assert [e["id"] for e in queue] == [escalation["id"]]
    eid = escalation["id"]
    assert (
        world.client.post(
            f"/api/v1/care/escalations/{eid}/take", headers=world.as_("anna")
        ).status_code
        == 403
    )
    taken = world.client.post(f"/api/v1/care/escalations/{eid}/take", headers=world.as_("coord"))
    assert taken.json()["status"] == "taken" and taken.json()["owner_id"] == world.ids["coord"]
    world.client.post(
        f"/api/v1/care/escalations/{eid}/notes",
        json={"text": "Chiamata la figlia"},
        headers=world.as_("coord"),
    )
    closed = world.client.post(
        f"/api/v1/care/escalations/{eid}/close",
        json={"note": "Pasti a domicilio attivati"},
        headers=world.as_("coord"),
    ).json()
    assert closed["status"] == "closed"
    kinds = [e["kind"] for e in closed["events"]]
    assert kinds[0] == "created" and kinds.count("notified") == 3
    assert kinds[-3:] == ["taken", "note", "closed"]
    with world.db() as s:
        actions = set(s.execute(select(AuditEntry.action)).scalars())
    assert {"outcome.record", "escalation.create", "escalation.take", "escalation.close"} <= actions


def test_emergency_is_urgent_raises_an_alert_and_is_reminded_until_taken(world: World) -> None:
    maria = world.ids["maria"]
    r = world.client.post(
        "/api/v1/care/outcomes",
        json={
            "beneficiary_id": maria,
            "kind": "problem",
            "note": "Non risponde, caduta?",
            "escalations": [{"target": "emergency"}, {"target": "family"}],
        },
        headers=world.as_("anna"),
    )
    assert r.status_code == 201, r.text
    urgent, family = r.json()["escalations"]
    assert urgent["urgent"] and not family["urgent"]
    assert r.json()["missed"] is True
    queue = world.client.get("/api/v1/care/escalations", headers=world.as_("coord")).json()
    assert queue[0]["id"] == urgent["id"]  # urgent first
    key = f"escalation:{urgent['id']}"
    with world.db() as s:
        alert = s.execute(select(Alert).where(Alert.key == key)).scalar_one()
        assert (alert.severity, alert.status) == ("urgent", "open")
    notifier = world.client.app.state.care_notifier  # type: ignore[attr-defined]
    assert notifier.wait_idle(15)
    # Nobody takes it: the periodic reminder notifies again.
    with world.db() as s:
        s.get(Escalation, urgent["id"]).last_notified_at = utcnow() - dt.timedelta(hours=1)
    world.client.app.state.periodic.run_once("care-urgent-reminders")  # type: ignore[attr-defined]
    assert notifier.wait_idle(15)
    wait_until(
        lambda: any(b["event"] == "escalation.reminder" for b, _ in _Hooks.received),
        message="a reminder",
    )
    world.client.post(f"/api/v1/care/escalations/{urgent['id']}/take", headers=world.as_("coord"))
    with world.db() as s:
        alert = s.execute(select(Alert).where(Alert.key == key)).scalar_one()
        assert alert.status == "resolved"


def test_timeline_merges_history_for_those_entitled(world: World) -> None:
    maria, call_id = world.ids["maria"], world.ids["call"]
    world.client.post(
        f"/api/v1/care/calls/{call_id}/outcome", json={"kind": "well"}, headers=world.as_("anna")
    )
    with world.db() as s:
        raise_alert(
            s,
            key="missed_wake:pc-out-01",
            kind="missed_wake",
            severity="high",
            message="did not come on",
            device_id="pc-out-01",
            beneficiary_id=maria,
        )
    r = world.client.get(f"/api/v1/care/beneficiaries/{maria}/timeline", headers=world.as_("anna"))
    assert r.status_code == 200
    assert {i["kind"] for i in r.json()} == {"call", "outcome", "missed_wake"}
    call_item = next(i for i in r.json() if i["kind"] == "call")
    assert call_item["data"]["has_outcome"] and call_item["data"]["duration_s"] > 0
    for who in ("carla", "tech"):
        denied = world.client.get(
            f"/api/v1/care/beneficiaries/{maria}/timeline", headers=world.as_(who)
        )
        assert denied.status_code == 403
    record = world.client.get(f"/api/v1/care/calls/{call_id}", headers=world.as_("coord")).json()
    assert record["stats_device"]["rtt_ms"] == 12.0 and record["outcome_id"] is not None


def _call_policy_reaches_the_desired_twin(world: World) -> None:
    maria = world.ids["maria"]
    body = {"auto_answer": False, "width": 320, "height": 240, "max_kbps": 300}
    assert (
        world.client.put(
            f"/api/v1/care/beneficiaries/{maria}/call-policy", json=body, headers=world.as_("anna")
        ).status_code
        == 403
    )
    r = world.client.put(
        f"/api/v1/care/beneficiaries/{maria}/call-policy", json=body, headers=world.as_("coord")
    )
    assert r.status_code == 200, r.text
    with world.db() as s:
        assert s.get(Device, "pc-out-01").desired["call"] == body
        assert s.get(Beneficiary, maria).auto_answer is False


def _agenda_lists_only_the_caregivers_people(world: World) -> None:
    rows = world.client.get("/api/v1/care/agenda", headers=world.as_("anna")).json()["rows"]
    assert [(r["name"], r["online"], r["can_call"]) for r in rows] == [("Maria Rossi", True, True)]
    assert world.client.get("/api/v1/care/agenda", headers=world.as_("carla")).json()["rows"] == []
    assert world.client.get("/api/v1/care/agenda", headers=world.as_("tech")).status_code == 403
