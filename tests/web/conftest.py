"""Fixtures for the web console: an app with the console, a TestClient, a live Chromium."""

from __future__ import annotations

import datetime as dt
import functools
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from control_plane import web
from control_plane.app import create_app
from control_plane.db import migrate, transaction, utcnow
from control_plane.models import Device, Role, User
from control_plane.security import hash_password
from control_plane.web.console import Console
from tests.conftest import make_settings
from tests.support.browser import LiveServer, launch_chromium

PASSWORD = "pw-secret-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token in a rendered page."""
    match = _CSRF.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


@functools.cache
def _hashed(password: str) -> str:
    # scrypt is slow on purpose; one hash per password is plenty for tests.
    return hash_password(password)


class ConsoleHarness:
    """The control plane with its console, and shortcuts to put people and devices in its DB."""

    def __init__(self, db_url: str, app: FastAPI) -> None:
        self.db_url = db_url
        self.app = app
        self.factory = app.state.sessionmaker

    @property
    def console(self) -> Console:
        return web.get_console(self.app)

    def add_user(
        self,
        email: str,
        role: Role,
        *,
        name: str | None = None,
        password: str = PASSWORD,
        locale: str = "it",
        active: bool = True,
    ) -> int:
        """A person who can log in; returns their id."""
        with transaction(self.factory) as session:
            user = User(
                email=email,
                name=name or email.split("@")[0],
                role=role.value,
                password_hash=_hashed(password),
                locale=locale,
                is_active=active,
            )
            session.add(user)
            session.flush()
            return user.id

    def user(self, user_id: int) -> User:
        """A person as stored now."""
        with self.factory() as session:
            user = session.get(User, user_id)
            assert user is not None
            return user

    def add_device(
        self,
        device_id: str,
        *,
        name: str = "",
        group: str = "",
        online: bool = False,
        last_seen: dt.datetime | None = None,
        **fields: Any,
    ) -> None:
        """A registered device in the given state."""
        with transaction(self.factory) as session:
            session.add(
                Device(
                    id=device_id,
                    name=name,
                    group=group,
                    online=online,
                    last_seen=last_seen,
                    mqtt_password_hash="$7$unused",
                    **fields,
                )
            )

    def update_device(self, device_id: str, **fields: Any) -> None:
        """Change a device's stored state, as the ingest would."""
        with transaction(self.factory) as session:
            device = session.get(Device, device_id)
            assert device is not None, device_id
            for key, value in fields.items():
                setattr(device, key, value)


def build_app(db_url: str, **settings_overrides: Any) -> FastAPI:
    """create_app with the console on it (installed here until app.py installs it itself)."""
    settings = make_settings(db_url, None, **settings_overrides)
    app = create_app(settings, run_migrations=False)
    if getattr(app.state, "console", None) is None:
        web.install(app, settings)
    return app


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the newest schema, migrated once and copied for each test."""
    path = tmp_path_factory.mktemp("console-template") / "console.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def harness(tmp_path: Path, migrated_db: Path) -> ConsoleHarness:
    """A fresh migrated SQLite database and the app serving it (not started)."""
    path = tmp_path / "console.db"
    # SQLite's backup API copies a consistent database, WAL or not.
    src, dst = sqlite3.connect(migrated_db), sqlite3.connect(path)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    url = f"sqlite:///{path}"
    return ConsoleHarness(url, build_app(url))


@pytest.fixture
def client(harness: ConsoleHarness) -> Iterator[TestClient]:
    """A TestClient (lifespan on) that keeps cookies like a browser."""
    with TestClient(harness.app, follow_redirects=False) as c:
        yield c


def login(
    client: TestClient, email: str, password: str = PASSWORD, next: str = "/"
) -> httpx2.Response:
    """Open the login page and submit it, as a person would."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "next": next,
            "csrf_token": csrf_from(form.text),
        },
    )


# --- the browser ---------------------------------------------------------------------------


# Module scope: Playwright's sync API keeps an event loop running in the main thread while
# it lives, which would break every later test that calls asyncio.run().
@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Playwright]:
    """Playwright's sync API, for the whole run."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def chromium(playwright_session: Playwright) -> Iterator[Browser]:
    """Debian's Chromium (never a downloaded one), shared by the browser tests."""
    browser = launch_chromium(playwright_session)
    yield browser
    browser.close()


@pytest.fixture
def live_server(harness: ConsoleHarness) -> Iterator[LiveServer]:
    """The harness's app under a real uvicorn, live refresh shrunk to a fraction of a second."""
    harness.console.live_interval = 0.3
    with LiveServer(harness.app) as server:
        yield server


@pytest.fixture
def browser_page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser tab (own cookies, Italian), sized like a cheap laptop's screen."""
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="it-IT")
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def recently(minutes: float) -> dt.datetime:
    """``minutes`` ago."""
    return utcnow() - dt.timedelta(minutes=minutes)
