"""Fixtures for the outbox tests: a fresh outbox under tmp_path, with a controllable clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.outbox import Outbox
from tests.outbox.outbox_fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"


@pytest.fixture
def outbox(path: Path, clock: FakeClock) -> Iterator[Outbox]:
    box = Outbox(path, clock=clock)
    yield box
    box.close()
