"""Fixtures of the people tests: one control plane per module and database, fresh people per
test (their e-mail addresses carry the test's number, so tests never see each other's)."""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from control_plane.app import create_app
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction, utcnow
from control_plane.models import ApiToken, AuditEntry, Beneficiary, Device, Role, User
from control_plane.security import hash_password, new_token, token_hash
from tests.conftest import make_settings
from tests.support.postgres import fresh_database
from tests.web.conftest import PASSWORD, login

PEOPLE = {
    "admin": Role.ADMIN,
    "coordinator": Role.COORDINATOR,
    "anna": Role.CAREGIVER,
    "bruno": Role.CAREGIVER,
    "fleet": Role.FLEET_MANAGER,
    "worker": Role.WORKER,
    "client": Role.CLIENT,
}


@functools.cache
def _password_hash() -> str:
    # scrypt is slow on purpose: one hash serves every prepared person.
    return hash_password(PASSWORD)


@dataclass
class Env:
    """A control plane on one database, this test's people (by short name) and helpers."""

    client: TestClient
    factory: sessionmaker[Session]
    tokens: dict[str, str]
    user_ids: dict[str, int]
    emails: dict[str, str]
    n: int

    def h(self, who: str) -> dict[str, str]:
        """Bearer headers of ``who``."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def tag(self, text: str) -> str:
        """``text`` made unique to this test (device ids, e-mail addresses)."""
        return f"{text}-{self.n}"

    def device(self, device_id: str, *, online: bool = False, revoked: bool = False) -> str:
        """A registered PC (through the API), in the given state; its id."""
        r = self.client.post("/api/v1/devices", json={"id": device_id}, headers=self.h("admin"))
        assert r.status_code == 201, r.text
        with transaction(self.factory) as session:
            device = session.get(Device, device_id)
            assert device is not None
            device.online = online
            device.revoked_at = utcnow() if revoked else None
        return device_id

    def beneficiary(self, name: str, **body: Any) -> dict[str, Any]:
        """A beneficiary created through the API by the coordinator; its JSON."""
        r = self.client.post(
            "/api/v1/beneficiaries", json={"name": name, **body}, headers=self.h("coordinator")
        )
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    def assign(self, beneficiary_id: int, who: str) -> None:
        """Make ``who`` a caregiver of the beneficiary (through the API)."""
        r = self.client.post(
            f"/api/v1/beneficiaries/{beneficiary_id}/caregivers",
            json={"user_id": self.user_ids[who]},
            headers=self.h("coordinator"),
        )
        assert r.status_code == 201, r.text

    def session(self) -> Session:
        """A session on the test database."""
        return self.factory()

    def stored(self, beneficiary_id: int) -> Beneficiary | None:
        """The beneficiary as stored now."""
        with self.factory() as session:
            return session.get(Beneficiary, beneficiary_id)

    def user(self, user_id: int) -> User:
        """The account as stored now."""
        with self.factory() as session:
            user = session.get(User, user_id)
            assert user is not None
            return user

    def count(self, model: Any) -> int:
        """How many rows of ``model`` there are."""
        with self.factory() as session:
            return int(session.execute(select(func.count()).select_from(model)).scalar_one())

    def audit(self, action: str) -> list[AuditEntry]:
        """Audit entries of ``action`` made by this test's people, oldest first."""
        with self.factory() as session:
            return list(
                session.execute(
                    select(AuditEntry)
                    .where(
                        AuditEntry.action == action,
                        AuditEntry.actor_id.in_(list(self.user_ids.values())),
                    )
                    .order_by(AuditEntry.id)
                ).scalars()
            )

    def browser(self) -> TestClient:
        """A client of its own (its own cookies), redirects not followed."""
        return TestClient(self.client.app, follow_redirects=False)  # type: ignore[arg-type]

    def signed_in(self, who: str) -> TestClient:
        """A browser-like client logged in to the console as ``who``."""
        client = self.browser()
        r = login(client, self.emails[who])
        assert r.status_code == 303, r.text
        return client


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
    """Every test on SQLite and on PostgreSQL, the database migrated once per module."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('people') / 'cp.db'}"
        else:
            url = stack.enter_context(fresh_database())
        migrate(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        app = create_app(make_settings(url, None), run_migrations=False)
        client = stack.enter_context(TestClient(app))
        yield Backend(url, client, make_sessionmaker(engine))


_tests = itertools.count(1)


@pytest.fixture
def env(backend: Backend) -> Env:
    """This test's people, each with a bearer token and the console password."""
    n = next(_tests)
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    emails: dict[str, str] = {}
    with transaction(backend.factory) as session:
        for who, role in PEOPLE.items():
            emails[who] = f"{who}.{n}@example.org"
            user = User(
                email=emails[who],
                name=f"{who.title()} {n}",
                role=role.value,
                password_hash=_password_hash(),
            )
            session.add(user)
            session.flush()
            tokens[who] = new_token()
            ids[who] = user.id
            session.add(ApiToken(user_id=user.id, token_hash=token_hash(tokens[who]), name="test"))
    return Env(backend.client, backend.factory, tokens, ids, emails, n)
