"""Fixtures of the wake-schedule tests: a control plane (no broker) with people and a PC."""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from control_plane.app import create_app
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.models import ApiToken, Beneficiary, CaregiverAssignment, Device, Role, User
from control_plane.schedules import ScheduleConfig, Scheduler
from control_plane.security import hash_password, new_token, token_hash
from tests.conftest import make_settings
from tests.support.postgres import fresh_database

PEOPLE = {
    "admin": Role.ADMIN,
    "coordinator": Role.COORDINATOR,
    "anna": Role.CAREGIVER,
    "bruno": Role.CAREGIVER,
    "fleet": Role.FLEET_MANAGER,
    "tech": Role.TECHNICIAN,
    "trainee": Role.TRAINEE,
}


@dataclass
class Env:
    """A control plane on one database, its people (by name) and helpers."""

    client: TestClient
    factory: sessionmaker[Session]
    tokens: dict[str, str]
    user_ids: dict[str, int]

    def h(self, who: str) -> dict[str, str]:
        """Bearer headers of ``who``."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    @property
    def scheduler(self) -> Scheduler:
        scheduler: Scheduler = self.client.app.state.schedules  # type: ignore[attr-defined]
        return scheduler

    def configure(self, **values: Any) -> ScheduleConfig:
        """Replace the schedule config (timing shrunk for the test)."""
        self.scheduler.config = ScheduleConfig(**values)
        return self.scheduler.config

    def device(self, device_id: str) -> None:
        """Register a device through the API."""
        r = self.client.post("/api/v1/devices", json={"id": device_id}, headers=self.h("admin"))
        assert r.status_code == 201, r.text

    def beneficiary(
        self,
        name: str,
        *,
        device_id: str | None = None,
        tz: str = "Europe/Rome",
        carers: tuple[str, ...] = ("anna",),
    ) -> int:
        """A beneficiary (with their PC, if given) looked after by ``carers``."""
        if device_id is not None:
            self.device(device_id)
        with transaction(self.factory) as session:
            person = Beneficiary(name=name, timezone=tz, device_id=device_id)
            session.add(person)
            session.flush()
            for who in carers:
                session.add(
                    CaregiverAssignment(beneficiary_id=person.id, user_id=self.user_ids[who])
                )
            return person.id

    def appointment(self, beneficiary_id: int, who: str = "admin", **body: Any) -> dict[str, Any]:
        """Create an appointment through the API; its JSON."""
        r = self.client.post(
            f"/api/v1/beneficiaries/{beneficiary_id}/appointments", json=body, headers=self.h(who)
        )
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    def desired_schedule(self, device_id: str) -> dict[str, Any] | None:
        """The schedule section of the device's desired twin."""
        with self.factory() as session:
            device = session.get(Device, device_id)
            assert device is not None
            schedule: dict[str, Any] | None = (device.desired or {}).get("schedule")
            return schedule

    def session(self) -> Session:
        """A session on the test database."""
        return self.factory()


@functools.cache
def _password_hash() -> str:
    # Hashing is slow on purpose; the tests log in with tokens, so one hash serves everyone.
    return hash_password("pw-secret-1")


@dataclass
class Backend:
    """One migrated database and a control plane on it, shared by a module's tests."""

    url: str
    client: TestClient
    factory: sessionmaker[Session]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """Like ``db_url`` (every test on SQLite and PostgreSQL), migrated once per module.

    Creating and migrating a database for each test made a module take minutes; the tests
    stay independent through their own people, beneficiaries and devices (see ``env``).
    """
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('schedules') / 'cp.db'}"
        else:
            url = stack.enter_context(fresh_database())
        migrate(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        app = create_app(make_settings(url, None), run_migrations=False)
        client = stack.enter_context(TestClient(app))
        yield Backend(url, client, make_sessionmaker(engine))


_people = itertools.count(1)


@pytest.fixture
def env(backend: Backend) -> Env:
    """This test's people (a fresh set: their assignments are this test's alone)."""
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    n = next(_people)
    with transaction(backend.factory) as session:
        for who, role in PEOPLE.items():
            user = User(
                email=f"{who}.{n}@example.org",
                name=who.title(),
                role=role.value,
                password_hash=_password_hash(),
            )
            session.add(user)
            session.flush()
            tokens[who] = new_token()
            ids[who] = user.id
            session.add(ApiToken(user_id=user.id, token_hash=token_hash(tokens[who]), name="test"))
    environment = Env(backend.client, backend.factory, tokens, ids)
    environment.configure()  # default timing, whatever the previous test set
    return environment
