"""Fixtures of the jobs tests: a control plane without a broker, shrunk rollout timing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.db import migrate
from control_plane.jobs import TIMING
from control_plane.models import Role
from tests.conftest import add_user, make_settings
from tests.jobs.jobs_support import Api


@pytest.fixture
def quick_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rollout "minutes" of 2 s and a tick every 0.1 s (set before the app is built)."""
    monkeypatch.setattr(TIMING, "tick_s", 0.1)
    monkeypatch.setattr(TIMING, "window_s", 2.0)


@pytest.fixture
def manual_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's own rollout tick runs once at start, then waits an hour: tests tick by hand."""
    monkeypatch.setattr(TIMING, "tick_s", 3600.0)


@pytest.fixture
def local_cp(tmp_path: Path) -> Iterator[Api]:
    """A control plane on SQLite with MQTT off, for tests that talk to it over HTTP only."""
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    token = add_user(url, "admin@example.org", Role.ADMIN)
    with TestClient(create_app(make_settings(url, None))) as client:
        yield Api(client, {"Authorization": f"Bearer {token}"})
