"""Shared fixtures: a real Mosquitto per session, fresh databases, the control plane."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.config import Settings
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.models import ApiToken, Role, User
from control_plane.security import hash_password, new_token, token_hash
from tests.support.broker import CP_PASSWORD, CP_USER, Mosquitto
from tests.support.postgres import fresh_database
from tests.support.wait import wait_until


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One real Mosquitto for the test session (password file + per-device ACL)."""
    b = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of this test's own, free to be stopped and restarted."""
    b = Mosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each database test runs on SQLite (the default) and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'difronte.db'}"
    else:
        with fresh_database() as url:
            yield url


def make_settings(db_url: str, broker: Mosquitto | None, **overrides: object) -> Settings:
    """Control-plane settings for a test."""
    values: dict[str, object] = {
        "environment": "test",
        "database_url": db_url,
        "mqtt_enabled": broker is not None,
        "mqtt_username": CP_USER,
        "mqtt_password": CP_PASSWORD,
        "mqtt_keepalive": 10,
    }
    if broker is not None:
        # Every test's control plane is a site of its own on the shared broker: its own MQTT
        # client id (two with one id take the session from each other in turn) and its own
        # ingest group (two in one group would each get half of the devices' messages).
        instance = f"test-{uuid.uuid4().hex[:8]}"
        # And no session kept at the broker after it stops (tests that mean it say so): a
        # kept one would collect every later test's device messages.
        values.update(
            mqtt_instance=instance,
            ingest_share_group=f"ingest-{instance}",
            ingest_persistent_session=False,
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            broker_password_file=broker.password_file,
            broker_acl_file=broker.acl_file,
            broker_pid_file=broker.pid_file,
        )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def add_user(db_url: str, email: str, role: Role, password: str = "pw-secret-1") -> str:
    """Create a user with a bearer token; return the token."""
    factory = make_sessionmaker(make_engine(db_url))
    token = new_token()
    with transaction(factory) as session:
        user = User(
            email=email,
            name=email.split("@")[0],
            role=role.value,
            password_hash=hash_password(password),
        )
        session.add(user)
        session.flush()
        session.add(ApiToken(user_id=user.id, token_hash=token_hash(token), name="test"))
    factory.kw["bind"].dispose()
    return token


def wait_mqtt_ready(app: Any, timeout: float = 20.0) -> None:
    """Wait until the app's MQTT connection is up and subscribed (if it has one).

    Until then a device's message reaches no subscriber and the broker drops it, as it
    should: tests must not publish into that window.
    """
    mqtt = app.state.mqtt
    if mqtt is not None:
        wait_until(
            lambda: mqtt.connected.is_set() or mqtt.auth_failed,
            timeout=timeout,
            message="the control plane's MQTT connection",
        )


class ControlPlane:
    """A running control plane (TestClient with lifespan) and an admin token."""

    def __init__(self, client: TestClient, settings: Settings, admin_token: str) -> None:
        self.client = client
        self.settings = settings
        self.admin_token = admin_token
        self.headers = {"Authorization": f"Bearer {admin_token}"}

    @property
    def app_state(self) -> object:
        return self.client.app.state  # type: ignore[attr-defined]

    def register(self, device_id: str, **extra: str) -> str:
        """Register a device through the API; return its MQTT password."""
        r = self.client.post(
            "/api/v1/devices", json={"id": device_id, **extra}, headers=self.headers
        )
        assert r.status_code == 201, r.text
        password: str = r.json()["mqtt_password"]
        return password

    def device(self, device_id: str) -> dict[str, object]:
        """The device as the API shows it."""
        r = self.client.get(f"/api/v1/devices/{device_id}", headers=self.headers)
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body


@pytest.fixture
def control_plane(tmp_path: Path, broker: Mosquitto) -> Iterator[ControlPlane]:
    """The control plane on SQLite, connected to the session broker."""
    # A broker of its own files per test: copy the session broker's workdir would race, so the
    # control plane writes the session broker's files (device ids are unique per test).
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    token = add_user(url, "admin@example.org", Role.ADMIN)
    settings = make_settings(url, broker)
    with TestClient(create_app(settings)) as client:
        wait_mqtt_ready(client.app)
        yield ControlPlane(client, settings, token)
