"""Fixtures of the calls-and-care tests: coturn on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.care.turn import Coturn


@pytest.fixture(scope="session")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    """One real coturn for the session, REST credentials with a static secret."""
    server = Coturn(tmp_path_factory.mktemp("coturn")).start()
    yield server
    server.stop()
