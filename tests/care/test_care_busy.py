"""A job with a maintenance window holds back a PC while it is in a call."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.care.calls import LOCK_STALE_S
from control_plane.care.models import Call, CallLock
from control_plane.db import migrate, utcnow
from control_plane.jobs.service import _eligible
from control_plane.models import Beneficiary, Device
from tests.conftest import make_settings


@pytest.fixture
def app_client(db_url: str) -> Iterator[TestClient]:
    migrate(db_url)
    with TestClient(create_app(make_settings(db_url, None))) as client:
        yield client


def test_a_pc_in_a_call_is_not_in_its_maintenance_window(app_client: TestClient) -> None:
    factory = app_client.app.state.sessionmaker  # type: ignore[attr-defined]
    with factory() as session:
        for device_id in ("pc-busy-1", "pc-free-1"):
            session.add(Device(id=device_id, mqtt_password_hash="x", online=True))
        session.flush()
        person = Beneficiary(name="Ada", device_id="pc-busy-1")
        session.add(person)
        session.flush()
        call = Call(session="call-busy", beneficiary_id=person.id, device_id="pc-busy-1")
        session.add(call)
        session.flush()
        lock = CallLock(device_id="pc-busy-1", call_id=call.id, heartbeat_at=utcnow())
        session.add(lock)
        session.commit()

        assert _eligible(session, ["pc-busy-1", "pc-free-1"]) == {"pc-free-1"}
        # A lock left by a replica that died (stale heartbeat) no longer holds the PC back.
        lock.heartbeat_at = utcnow() - dt.timedelta(seconds=LOCK_STALE_S + 5)
        session.commit()
        assert _eligible(session, ["pc-busy-1", "pc-free-1"]) == {"pc-busy-1", "pc-free-1"}
