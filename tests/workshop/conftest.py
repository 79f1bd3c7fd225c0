"""Fixtures of the workshop tests that need a database: people, the API, the DB itself."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright

from control_plane import web
from control_plane.app import create_app
from control_plane.db import migrate
from tests.conftest import make_settings
from tests.support.browser import LiveServer, launch_chromium
from tests.workshop.workshop_support import Db, Person, WorkshopApi, make_people


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once for the session, copied by every test that wants one."""
    path = tmp_path_factory.mktemp("workshop-template") / "template.db"
    migrate(f"sqlite:///{path}")
    # Fold the write-ahead log into the file, so that copying the file copies everything.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def ws_db(db_url: str, migrated_sqlite: Path) -> Iterator[Db]:
    """A migrated database (SQLite and PostgreSQL) with direct access."""
    if db_url.startswith("sqlite:///"):
        shutil.copyfile(migrated_sqlite, db_url.removeprefix("sqlite:///"))
    else:
        migrate(db_url)
    db = Db(db_url)
    yield db
    db.close()


@pytest.fixture
def people(ws_db: Db) -> dict[str, Person]:
    """Admin, workshop lead, technician, two trainees and a caregiver, with tokens."""
    return make_people(ws_db.url)


@pytest.fixture
def ws(ws_db: Db, people: dict[str, Person]) -> Iterator[WorkshopApi]:
    """The control plane (no broker) on that database, and its people."""
    settings = make_settings(ws_db.url, None, public_url="https://cp.example.org")
    with TestClient(create_app(settings, run_migrations=False)) as client:
        yield WorkshopApi(client, people, ws_db)


# -- the console ----------------------------------------------------------------------------


@dataclass
class Console:
    """The control plane with its web console on a migrated SQLite, and the workshop's people."""

    app: FastAPI
    people: dict[str, Person]
    db: Db


@pytest.fixture
def console(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Console]:
    """The app with the console installed (not started), on its own SQLite copy."""
    path = tmp_path / "console.db"
    shutil.copyfile(migrated_sqlite, path)
    url = f"sqlite:///{path}"
    people = make_people(url)
    settings = make_settings(url, None, public_url="http://testserver")
    app = create_app(settings, run_migrations=False)
    if getattr(app.state, "console", None) is None:
        web.install(app, settings)
    db = Db(url)
    yield Console(app, people, db)
    db.close()


@pytest.fixture
def browser(console: Console) -> Iterator[TestClient]:
    """A TestClient that keeps cookies and does not follow redirects, like a careful browser."""
    with TestClient(console.app, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, shared by the workshop's browser tests."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def live_console(console: Console) -> Iterator[LiveServer]:
    """The console under a real uvicorn."""
    with LiveServer(console.app) as server:
        yield server
