"""A running control plane (uvicorn) with TURN, helpers to add people and start PCs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from control_plane.app import create_app
from control_plane.care.models import Call
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.models import AuditEntry, Beneficiary, CaregiverAssignment, Role, User
from edge.calls.config import CallConfig
from tests.care.turn import Coturn
from tests.conftest import add_user, make_settings, wait_mqtt_ready
from tests.support.broker import Mosquitto
from tests.support.browser import LiveServer
from tests.support.edge import EdgeProcess, write_edge_config
from tests.support.wait import wait_until

EDGE_CALL = CallConfig(
    media="synthetic", sink="count", width=320, height=240, fps=10, stats_interval_s=0.5
)


class CareEnv:
    """The control plane behind a real HTTP server, its database, the broker and coturn."""

    def __init__(
        self, tmp_path: Path, broker: Mosquitto, coturn: Coturn | None, **overrides: Any
    ) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.url = f"sqlite:///{tmp_path / 'cp.db'}"
        migrate(self.url)
        self.admin_token = add_user(self.url, "admin@example.org", Role.ADMIN)
        values: dict[str, Any] = {
            "call_answer_timeout_s": 2.5,
            "call_setup_timeout_s": 15.0,
            "call_silence_timeout_s": 10.0,
        }
        if coturn is not None:
            values.update(turn_urls=[coturn.url], turn_secret=coturn.secret)
        values.update(overrides)
        self.settings = make_settings(self.url, broker, **values)
        self.app = create_app(self.settings)
        self.server = LiveServer(self.app)
        self.factory = make_sessionmaker(make_engine(self.url))
        self.edges: list[EdgeProcess] = []

    def start(self) -> CareEnv:
        self.server.start()
        wait_mqtt_ready(self.app)
        return self

    def stop(self) -> None:
        for edge in self.edges:
            edge.stop()
        self.server.stop()
        self.factory.kw["bind"].dispose()

    # -- HTTP ---------------------------------------------------------------------------------

    def http(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=15,
        )

    def ws_url(self, beneficiary_id: int, token: str) -> str:
        return (
            f"ws://{self.server.host}:{self.server.port}/api/v1/care/calls/ws"
            f"?beneficiary_id={beneficiary_id}&token={token}"
        )

    # -- people and PCs ------------------------------------------------------------------------

    def user(self, email: str, role: Role) -> tuple[int, str]:
        token = add_user(self.url, email, role)
        with self.factory() as s:
            return s.execute(select(User.id).where(User.email == email)).scalar_one(), token

    def register(self, device_id: str) -> str:
        with self.http() as c:
            r = c.post("/api/v1/devices", json={"id": device_id, "name": device_id})
            assert r.status_code == 201, r.text
            password: str = r.json()["mqtt_password"]
            return password

    def beneficiary(self, name: str, device_id: str | None, caregivers: list[int]) -> int:
        with transaction(self.factory) as s:
            b = Beneficiary(name=name, device_id=device_id)
            s.add(b)
            s.flush()
            for uid in caregivers:
                s.add(CaregiverAssignment(beneficiary_id=b.id, user_id=uid))
            return b.id

    def appointment_now(self, beneficiary_id: int, caregiver_ids: list[int]) -> None:
        """An appointment that is on right now (so the PC auto-answers)."""
        local = dt.datetime.now(ZoneInfo("Europe/Rome")).replace(tzinfo=None)
        start = (local - dt.timedelta(minutes=5)).replace(second=0, microsecond=0)
        with self.http() as c:
            r = c.post(
                f"/api/v1/beneficiaries/{beneficiary_id}/appointments",
                json={
                    "title": "daily call",
                    "start": start.isoformat(),
                    "duration_min": 60,
                    "caregiver_ids": caregiver_ids,
                },
            )
            assert r.status_code == 201, r.text

    def start_edge(
        self, device_id: str, password: str, call: CallConfig = EDGE_CALL
    ) -> EdgeProcess:
        config = write_edge_config(self.tmp_path, device_id, password, self.broker, call=call)
        edge = EdgeProcess(config, self.tmp_path / f"{device_id}.log").start()
        self.edges.append(edge)
        wait_until(lambda: self.device(device_id)["online"], timeout=20, message="edge online")
        return edge

    def edge_status(self, device_id: str) -> dict[str, Any]:
        import json

        path = self.tmp_path / device_id / "state" / "status.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def device(self, device_id: str) -> dict[str, Any]:
        with self.http() as c:
            r = c.get(f"/api/v1/devices/{device_id}")
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

    def wait_schedule_applied(self, device_id: str) -> None:
        """Until the PC reports the desired twin that carries a wake window now."""

        def applied() -> bool:
            with self.http() as c:
                twin = c.get(f"/api/v1/devices/{device_id}/twin").json()
            wakes = (twin["desired"].get("schedule") or {}).get("wakes") or []
            reported = (twin["reported"] or {}).get("desired_version")
            return bool(wakes) and reported == twin["desired_version"]

        wait_until(applied, timeout=20, message="schedule applied on the PC")

    # -- database -------------------------------------------------------------------------------

    def calls(self, beneficiary_id: int) -> list[Call]:
        with self.factory() as s:
            return list(
                s.execute(
                    select(Call).where(Call.beneficiary_id == beneficiary_id).order_by(Call.id)
                ).scalars()
            )

    def audit(self, action: str) -> list[AuditEntry]:
        with self.factory() as s:
            return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())
