"""Fixtures of the fleet tests: a control plane served by a real uvicorn, fleet people."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.config import Settings
from control_plane.db import migrate
from control_plane.models import Role
from tests.conftest import ControlPlane, add_user, make_settings, wait_mqtt_ready
from tests.fleet.fleet_support import Db, DeepQueueMosquitto
from tests.support.broker import Mosquitto
from tests.support.browser import LiveServer


@dataclass
class LiveControlPlane:
    """A control plane on a real HTTP port, with an admin and a fleet manager."""

    url: str
    settings: Settings
    admin: dict[str, str]
    manager: dict[str, str]
    db: Db

    def api(self) -> httpx.Client:
        """An HTTP client for its API."""
        return httpx.Client(base_url=self.url, timeout=30)

    def new_token(self, **body: object) -> dict[str, object]:
        """Create an enrollment token as the fleet manager."""
        with self.api() as c:
            r = c.post("/api/v1/enrollment-tokens", json=body, headers=self.manager)
        assert r.status_code == 201, r.text
        created: dict[str, object] = r.json()
        return created


def start_live_control_plane(
    tmp_path: Path, broker: Mosquitto, **overrides: object
) -> tuple[LiveServer, LiveControlPlane]:
    """Migrate a fresh SQLite database and serve the control plane on it."""
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    admin = add_user(url, "admin@example.org", Role.ADMIN)
    manager = add_user(url, "fleet@example.org", Role.FLEET_MANAGER)
    settings = make_settings(url, broker, mqtt_backoff_cap_s=1.0, **overrides)
    app = create_app(settings)
    server = LiveServer(app).start()
    try:
        wait_mqtt_ready(app)
    except BaseException:
        server.stop()
        raise
    cp = LiveControlPlane(
        url=server.url,
        settings=settings,
        admin={"Authorization": f"Bearer {admin}"},
        manager={"Authorization": f"Bearer {manager}"},
        db=Db(url),
    )
    return server, cp


@pytest.fixture
def deep_broker(tmp_path: Path) -> Iterator[DeepQueueMosquitto]:
    """A broker of this test's own that queues instead of dropping for a slow subscriber."""
    broker = DeepQueueMosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@contextmanager
def control_plane_on(
    tmp_path: Path, broker: Mosquitto, **overrides: object
) -> Iterator[ControlPlane]:
    """The control plane (TestClient with lifespan) on SQLite and ``broker``."""
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    token = add_user(url, "admin@example.org", Role.ADMIN)
    settings = make_settings(url, broker, mqtt_backoff_cap_s=1.0, **overrides)
    with TestClient(create_app(settings)) as client:
        wait_mqtt_ready(client.app)
        yield ControlPlane(client, settings, token)


@pytest.fixture
def live_cp(tmp_path: Path, broker: Mosquitto) -> Iterator[LiveControlPlane]:
    """The control plane behind a real uvicorn, on the session broker."""
    server, cp = start_live_control_plane(tmp_path, broker)
    try:
        yield cp
    finally:
        server.stop()
        cp.db.close()
