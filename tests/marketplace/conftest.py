"""Fixtures for the marketplace: an app on SQLite and PostgreSQL, people, a catalogue, SMTP."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import sqlite3
import struct
import uuid
import zlib
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from control_plane import web
from control_plane.app import create_app
from control_plane.db import migrate, transaction
from control_plane.marketplace.jobs import today
from control_plane.models import ApiToken, Role, User
from control_plane.security import hash_password, new_token, token_hash
from tests.conftest import make_settings
from tests.support.postgres import PG_DSN, fresh_database
from tests.support.wait import wait_until


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32


def in_days(n: int) -> str:
    """The cooperative's date ``n`` days from today, ISO format."""
    return (today() + dt.timedelta(days=n)).isoformat()


@dataclass
class Person:
    id: int
    email: str
    token: str
    role: Role

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Market:
    """The control plane with the marketplace, on one database, and helpers to drive it."""

    app: FastAPI
    client: TestClient
    db_url: str
    media_dir: Path
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def factory(self) -> Any:
        return self.app.state.sessionmaker

    def person(self, email: str, role: Role, *, name: str = "", locale: str = "it") -> Person:
        """A user with a bearer token."""
        token = new_token()
        with transaction(self.factory) as session:
            user = User(
                email=email,
                name=name or email.split("@")[0].title(),
                role=role.value,
                password_hash=hash_password("pw-secret-1"),
                locale=locale,
            )
            session.add(user)
            session.flush()
            session.add(ApiToken(user_id=user.id, token_hash=token_hash(token), name="test"))
            person = Person(user.id, email, token, role)
        self.people[email] = person
        return person

    def post(self, path: str, who: Person, body: Any = None, **kw: Any) -> Any:
        return self.client.post(f"/api/v1/market{path}", json=body, headers=who.headers, **kw)

    def get(self, path: str, who: Person | None = None, **kw: Any) -> Any:
        headers = who.headers if who else {}
        return self.client.get(f"/api/v1/market{path}", headers=headers, **kw)

    def patch(self, path: str, who: Person, body: Any) -> Any:
        return self.client.patch(f"/api/v1/market{path}", json=body, headers=who.headers)

    def ok(self, response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def count(self, model: Any) -> int:
        """Rows in a table right now."""
        with self.factory() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def upload(self, who: Person, data: bytes | None = None, name: str = "photo.png") -> int:
        """Upload a photo; returns its id."""
        r = self.client.post(
            "/api/v1/market/media",
            files={"file": (name, data or png_bytes(), "image/png")},
            headers=who.headers,
        )
        return int(self.ok(r, 201)["id"])

    def deliver_mail(self) -> None:
        """Run the mail task now."""
        self.app.state.periodic.run_once("market-mail")


# --- databases: the suite's two, copied from a template migrated once per session ----------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("market-template") / "template.db"
    migrate(f"sqlite:///{path}")
    # Fold the write-ahead log into the file, so a plain copy is the whole database.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    with fresh_database() as url:
        migrate(url)
        yield url.rsplit("/", 1)[1]


@contextmanager
def _pg_copy(template: str) -> Iterator[str]:
    name = f"difronte_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    params = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    try:
        yield (
            f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host')}:"
            f"{params.get('port', 5432)}/{name}"
        )
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _database(kind: str, request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        dest = directory / "difronte.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), dest)
        yield f"sqlite:///{dest}"
    else:
        with _pg_copy(request.getfixturevalue("_pg_template")) as url:
            yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The suite's ``db_url`` (SQLite and PostgreSQL), already migrated: copied from a
    template instead of migrating every test's database from scratch."""
    with _database(request.param, request, tmp_path) as url:
        yield url


@contextmanager
def open_market(
    db_url: str, media_dir: Path, *, console: bool = False, lifespan: bool = True
) -> Iterator[Market]:
    """A marketplace app (MQTT off) with an admin, a market admin and a client; with the web
    console when ``console`` (its TestClient then keeps cookies and does not follow redirects).
    Without ``lifespan`` the client does not start the app (a live server will).
    """
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DIFRONTE_MARKET_MEDIA_DIR", str(media_dir))
        # The mail task runs once at startup; tests deliver explicitly with deliver_mail().
        env.setenv("DIFRONTE_MARKET_MAIL_INTERVAL", "3600")
        settings = make_settings(db_url, None, public_url="http://factotum.test")
        # The database comes migrated from the template (see db_url).
        app = create_app(settings, run_migrations=False)
    if console and getattr(app.state, "console", None) is None:
        web.install(app, settings)  # until app.py installs the console itself
    client = TestClient(app, follow_redirects=not console)
    with client if lifespan else nullcontext(client):
        m = Market(app, client, db_url, media_dir)
        m.person("admin@example.org", Role.ADMIN)
        m.person("boss@example.org", Role.MARKET_ADMIN, name="Marta Boss")
        m.person("anna@example.org", Role.CLIENT, name="Anna Rossi")
        yield m


@pytest.fixture
def market(db_url: str, tmp_path: Path) -> Iterator[Market]:
    """A fresh marketplace for one test, on SQLite and on PostgreSQL."""
    with open_market(db_url, tmp_path / "media") as m:
        yield m


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_market(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Market]:
    """One marketplace shared by a module's tests (they must not depend on each other's
    writes), on SQLite and on PostgreSQL."""
    base = tmp_path_factory.mktemp("market")
    with _database(request.param, request, base) as url, open_market(url, base / "media") as m:
        yield m


@dataclass
class Catalogue:
    """Ids of the seeded categories and services, by Italian name."""

    ids: dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.ids[name]


CATALOGUE: dict[str, list[tuple[str, str]]] = {
    "Pittura": [("Imbiancatura", "Wall painting"), ("Verniciatura", "Varnishing")],
    "Pulizie": [("Pulizia appartamenti", "Flat cleaning"), ("Pulizia vetri", "Window cleaning")],
    "Sgomberi": [("Sgombero cantine", "Cellar clearing")],
    "Piccole riparazioni": [("Idraulica", "Plumbing"), ("Falegnameria", "Carpentry")],
    "Giardinaggio": [("Potatura siepi", "Hedge trimming")],
    "Traslochi": [("Piccoli traslochi", "Small moves")],
}


def seed_catalogue(m: Market) -> Catalogue:
    """The catalogue above, created through the API by the market admin."""
    boss = m.people["boss@example.org"]
    ids: dict[str, int] = {}
    for category, services in CATALOGUE.items():
        cid = m.ok(m.post("/categories", boss, {"name": category}), 201)["id"]
        ids[category] = cid
        for name, name_en in services:
            body = {"name": name, "name_en": name_en, "parent_id": cid}
            ids[name] = m.ok(m.post("/categories", boss, body), 201)["id"]
    return Catalogue(ids)


WEEKDAYS_ALL = {d: ["morning", "afternoon"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}


def add_worker(
    m: Market,
    email: str,
    *,
    name: str,
    kind: str,
    skills: list[int],
    areas: list[str],
    description: str = "",
    availability: dict[str, list[str]] | None = None,
) -> tuple[Person, int]:
    """A worker account and its profile (created by the market admin); returns both."""
    person = m.person(email, Role.WORKER, name=name)
    body = {
        "user_id": person.id,
        "kind": kind,
        "display_name": name,
        "description": description,
        "skills": skills,
        "areas": areas,
        "availability": WEEKDAYS_ALL if availability is None else availability,
    }
    worker = m.ok(m.post("/workers", m.people["boss@example.org"], body), 201)
    return person, int(worker["id"])


# --- a real SMTP server ----------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: _Inbox

    @property
    def messages(self) -> list[Message]:
        return self.inbox.messages

    def wait_for(self, count: int) -> list[Message]:
        """Wait until ``count`` messages arrived."""
        wait_until(lambda: len(self.messages) >= count, message=f"{count} e-mails")
        return self.messages

    def to(self, address: str) -> list[Message]:
        """Messages addressed to ``address``."""
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """aiosmtpd on a free loopback port, collecting what it receives."""
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, inbox)
    finally:
        controller.stop()
