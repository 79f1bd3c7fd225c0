"""An alert's life through the app: opens once, notifies by real SMTP and a signed webhook,
is acknowledged, and resolves itself when the device comes back."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import update

from control_plane.app import create_app
from control_plane.db import migrate
from control_plane.fleet import notify
from control_plane.models import Device, Role
from edge import protocol as p
from tests.conftest import add_user, make_settings
from tests.fleet.fleet_support import Db
from tests.support.broker import free_port
from tests.support.wait import wait_until

SECRET = "webhook-secret-for-tests"


class Mailbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), mail))
        return "250 Message accepted for delivery"


class Receiver:
    """A local HTTP endpoint for the webhook: checks each signature, fails the first call."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, dict[str, Any]]] = []
        self.failures_left = 1
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures_left:
                    receiver.failures_left -= 1
                    self.send_response(503)  # the dispatcher must try again
                    self.end_headers()
                    return
                ok = notify.verify(SECRET, self.headers.get("X-Difronte-Signature", ""), body)
                receiver.calls.append((ok, json.loads(body)))
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/difronte"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_offline_alert_opens_notifies_is_acknowledged_and_resolves(
    tmp_path: Path, mailbox: tuple[Mailbox, int], receiver: Receiver
) -> None:
    box, smtp_port = mailbox
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    admin = {"Authorization": f"Bearer {add_user(url, 'admin@example.org', Role.ADMIN)}"}
    manager = {"Authorization": f"Bearer {add_user(url, 'fm@example.org', Role.FLEET_MANAGER)}"}
    client_role = {"Authorization": f"Bearer {add_user(url, 'c@example.org', Role.CLIENT)}"}
    settings = make_settings(
        url,
        None,
        public_url="https://cp.example.org",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="difronte@example.org",
        alert_email_to=["flotta@example.org"],
        alert_webhook_url=receiver.url,
        alert_webhook_secret=SECRET,
        offline_after_s=600,
        alert_check_interval_s=3600,
    )
    db = Db(url)
    app = create_app(settings)
    with TestClient(app) as client:
        dispatcher = app.state.alert_dispatcher
        dispatcher.backoff_s = 0.05  # the retry after the receiver's 503, without a long wait
        r = client.post("/api/v1/devices", json={"id": "pc-alert-01"}, headers=admin)
        assert r.status_code == 201, r.text
        # The PC was last heard from two hours ago.
        two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        with db.factory() as s, s.begin():
            s.execute(
                update(Device)
                .where(Device.id == "pc-alert-01")
                .values(created_at=two_hours_ago, last_seen=two_hours_ago, online=False)
            )

        app.state.periodic.run_once("alert-rules")
        app.state.periodic.run_once("alert-rules")  # still offline: no second alert
        wait_until(lambda: box.messages and receiver.calls, message="both notifications")
        alerts = client.get("/api/v1/alerts", headers=manager).json()
        assert alerts["total"] == 1
        alert = alerts["items"][0]
        assert (alert["key"], alert["kind"], alert["status"]) == (
            "offline:pc-alert-01",
            "offline",
            "open",
        )

        # E-mail: to the fleet's address, Italian first, with a link to the device page.
        [(rcpt, mail)] = box.messages
        assert rcpt == ["flotta@example.org"]
        assert mail["Subject"].startswith("[ΔiFronte] attenzione: pc-alert-01")
        text = mail.get_content()
        assert "https://cp.example.org/fleet/pc-alert-01" in text and "-- English --" in text
        # Webhook: signed, retried after a failure, delivered once.
        [(signed, body)] = receiver.calls
        assert signed is True
        assert body["event"] == "alert.opened" and body["alert"]["key"] == "offline:pc-alert-01"
        assert body["alert"]["id"] == alert["id"]

        # Someone is on it.
        r = client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=manager)
        assert r.status_code == 200 and r.json()["status"] == "acknowledged"
        assert (
            client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=client_role).status_code == 403
        )
        assert client.get("/api/v1/alerts", headers=client_role).status_code == 403

        # The PC comes back: the alert resolves by itself.
        birth = p.Status(ts=p.now(), online=True, session=1, agent_version="0.1.0")
        app.state.ingest.handle(p.topic(p.TopicKind.STATUS, "pc-alert-01"), p.encode(birth))
        app.state.periodic.run_once("alert-rules")
        resolved = client.get(f"/api/v1/alerts/{alert['id']}", headers=manager).json()
        assert resolved["status"] == "resolved"
        assert resolved["acknowledged_at"] is not None and resolved["resolved_at"] is not None
        assert client.get("/api/v1/alerts", headers=manager).json()["total"] == 0
        history = client.get(
            "/api/v1/alerts", params={"status": "all", "device_id": "pc-alert-01"}, headers=manager
        ).json()
        assert [a["status"] for a in history["items"]] == ["resolved"]
        r = client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=manager)
        assert r.status_code == 409
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "resolved" in r.json()["detail"]
    db.close()
    # Only the opening was notified: one e-mail, one webhook, each channel once.
    assert len(box.messages) == 1 and len(receiver.calls) == 1
    assert sorted(dispatcher.sent) == [
        ("email", "offline:pc-alert-01"),
        ("webhook", "offline:pc-alert-01"),
    ]
    assert dispatcher.failed == []


def test_a_rolled_back_alert_is_never_notified(tmp_path: Path) -> None:
    sent: list[str] = []

    class Recorder:
        name = "recorder"

        def send(self, alert: dict[str, Any]) -> None:
            sent.append(alert["key"])

    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    db = Db(url)
    dispatcher = notify.Dispatcher([Recorder()], backoff_s=0.01)
    dispatcher.start()
    try:
        from control_plane import alerts

        with db.factory() as session:
            alerts.raise_alert(session, key="k:1", kind="offline", severity="warning", message="x")
            session.rollback()
        with db.factory() as session:
            alerts.raise_alert(session, key="k:2", kind="offline", severity="warning", message="y")
            session.commit()
    finally:
        dispatcher.stop()
        db.close()
    assert sent == ["k:2"]


def test_webhook_signatures() -> None:
    body = b'{"event": "alert.opened"}'
    header = notify.sign(SECRET, 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=")
    assert notify.verify(SECRET, header, body, now=1_800_000_100)
    assert not notify.verify(SECRET, header, body + b" ", now=1_800_000_100)  # tampered
    assert not notify.verify("other-secret", header, body, now=1_800_000_100)
    assert not notify.verify(SECRET, header, body, now=1_800_001_000)  # replayed too late
    assert not notify.verify(SECRET, "garbage", body)
