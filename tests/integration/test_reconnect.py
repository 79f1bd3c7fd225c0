"""A broker restart: both sides reconnect, re-subscribe, and the retained twin comes back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.db import migrate
from control_plane.models import Role
from edge import protocol as p
from tests.conftest import add_user, make_settings, wait_mqtt_ready
from tests.support.broker import CP_PASSWORD, CP_USER, Mosquitto
from tests.support.edge import EdgeProcess, write_edge_config
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def test_broker_restart_reconnects_and_restores_subscriptions(
    own_broker: Mosquitto, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    headers = {"Authorization": f"Bearer {add_user(url, 'admin@example.org', Role.ADMIN)}"}
    with TestClient(create_app(make_settings(url, own_broker, mqtt_keepalive=5))) as client:
        wait_mqtt_ready(client.app)
        r = client.post("/api/v1/devices", json={"id": "pc-restart"}, headers=headers)
        password = r.json()["mqtt_password"]
        edge = EdgeProcess(
            write_edge_config(tmp_path, "pc-restart", password, own_broker), tmp_path / "edge.log"
        ).start()

        def device() -> dict[str, object]:
            body: dict[str, object] = client.get(
                "/api/v1/devices/pc-restart", headers=headers
            ).json()
            return body

        try:
            wait_until(lambda: device()["online"], timeout=20, message="online")
            first_session = device()["session"]
            r = client.put(
                "/api/v1/devices/pc-restart/twin/desired/telemetry",
                json={"interval_s": 9},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            own_broker.restart()  # no persistence: retained messages and sessions are gone
            wait_until(
                lambda: (
                    device()["session"] > first_session  # type: ignore[operator]
                    and device()["online"]
                ),
                timeout=30,
                message="back online, new session",
            )
            # The control plane re-published the retained desired twin the restart lost.
            out = wait_until(
                lambda: (
                    subprocess.run(
                        [
                            "mosquitto_sub",
                            "-h",
                            own_broker.host,
                            "-p",
                            str(own_broker.port),
                            "-u",
                            CP_USER,
                            "-P",
                            CP_PASSWORD,
                            "-t",
                            p.topic(p.TopicKind.TWIN_DESIRED, "pc-restart"),
                            "-C",
                            "1",
                            "-W",
                            "2",
                        ],
                        capture_output=True,
                        timeout=15,
                    ).stdout
                ),
                timeout=20,
                message="retained desired twin back at the broker",
            )
            assert p.decode(out.strip(), p.TwinDesired).telemetry.interval_s == 9  # type: ignore[union-attr]
            # A twin change after the restart reaches the device: its subscription was re-made.
            r = client.put(
                "/api/v1/devices/pc-restart/twin/desired/telemetry",
                json={"interval_s": 7},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            version = r.json()["desired_version"]
            wait_until(
                lambda: (device()["reported"] or {}).get("desired_version") == version,  # type: ignore[union-attr]
                timeout=20,
                message="device reports the new desired version",
            )
            reported = device()["reported"]
            assert reported["config"]["telemetry_interval_s"] == 7  # type: ignore[index]
        finally:
            edge.stop()
