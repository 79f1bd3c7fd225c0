"""End to end against the real broker: control plane, appointment, edge daemon, RTC, power.

The full loop runs a real ``difronte-edge`` process whose clock runs 80 times faster than
real time (``wake.clock_speed``), so a window ten minutes away passes in seconds; the help
button and commissioning run a daemon in this process, to press its (mock) GPIO pin.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from control_plane.db import transaction
from control_plane.models import Alert, AlertStatus, Beneficiary, DeviceEvent
from control_plane.schedules import service
from control_plane.schedules.models import DeviceWakeProfile
from edge.button import LedState
from edge.commission import arm_test
from edge.config import ButtonConfig, EdgeConfig, WakeConfig, load_config
from edge.daemon import EdgeDaemon
from tests.conftest import ControlPlane
from tests.support.broker import Mosquitto
from tests.support.edge import EdgeProcess, write_edge_config
from tests.support.wait import wait_until

ROME = ZoneInfo("Europe/Rome")
SPEED = 80.0
LEAD_S = 60


@pytest.fixture
def cp(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> ControlPlane:
    """The control plane with short schedule timing (read when the app is built)."""
    for name, value in {"LEAD_S": LEAD_S, "IDLE_S": 0, "GRACE_S": 60}.items():
        monkeypatch.setenv(f"DIFRONTE_SCHEDULE_{name}", str(value))
    plane: ControlPlane = request.getfixturevalue("control_plane")
    return plane


def add_beneficiary(cp: ControlPlane, name: str, device_id: str) -> int:
    factory = cp.client.app.state.sessionmaker  # type: ignore[attr-defined]
    with transaction(factory) as session:
        person = Beneficiary(name=name, timezone="Europe/Rome", device_id=device_id)
        session.add(person)
        session.flush()
        return person.id


def query(cp: ControlPlane, fn: Callable[[Any], Any]) -> Any:
    factory = cp.client.app.state.sessionmaker  # type: ignore[attr-defined]
    with factory() as session:
        return fn(session)


def events_of(cp: ControlPlane, device_id: str, kind: str) -> list[dict[str, Any]]:
    """The data of the device's events of ``kind`` the control plane stored, oldest first."""
    return query(
        cp,
        lambda s: [
            e.data
            for e in s.execute(
                select(DeviceEvent)
                .where(DeviceEvent.device_id == device_id, DeviceEvent.kind == kind)
                .order_by(DeviceEvent.ts)
            ).scalars()
        ],
    )


def open_alert_kinds(cp: ControlPlane, device_id: str) -> set[str]:
    return query(
        cp,
        lambda s: set(
            s.execute(
                select(Alert.kind).where(
                    Alert.device_id == device_id, Alert.status == AlertStatus.OPEN.value
                )
            ).scalars()
        ),
    )


def power_actions(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_full_loop_appointment_to_alarm_to_poweroff(
    cp: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    device_id = "pc-sched-e2e-1"
    password = cp.register(device_id)
    bid = add_beneficiary(cp, "Maria Rossi", device_id)
    # Ten minutes from now (whole minutes), daily, two minutes long.
    start = (dt.datetime.now(ROME) + dt.timedelta(minutes=11)).replace(second=0, microsecond=0)
    r = cp.client.post(
        f"/api/v1/beneficiaries/{bid}/appointments",
        json={
            "title": "Telefonata",
            "start": start.replace(tzinfo=None).isoformat(),
            "duration_min": 2,
            "rrule": "FREQ=DAILY",
        },
        headers=cp.headers,
    )
    assert r.status_code == 201, r.text
    alarm = start.timestamp() - LEAD_S
    window_end = start.timestamp() + 120
    tomorrow = (start + dt.timedelta(days=1)).timestamp() - LEAD_S  # wall-clock, DST-proof

    config = write_edge_config(
        tmp_path, device_id, password, broker, wake=WakeConfig(tick_s=0.2, clock_speed=SPEED)
    )
    edge_config = load_config(config)
    power_log = Path(edge_config.power.record_file or "")
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        # The edge arms the fake RTC at the right epoch and reports it.
        wait_until(
            lambda: any(
                e.get("alarm_at") == alarm for e in events_of(cp, device_id, "alarm_armed")
            ),
            timeout=20,
            message="the appointment's alarm armed on the edge",
        )
        first = events_of(cp, device_id, "alarm_armed")[0]
        assert first["alarm_at"] == alarm
        # A UTC RTC holds the same epoch; its offset is measured against a clock running
        # much faster here, so within the edge's match tolerance.
        assert abs(first["rtc_alarm"] - alarm) <= 2
        # The window passes (on the device's clock): powered off after it, next day armed.
        wait_until(
            lambda: any(
                a["action"] == "poweroff" and a["ts"] >= window_end
                for a in power_actions(power_log)
            ),
            timeout=30,
            message="a power-off after the window",
        )
        # Each power-off names the alarm left armed: today's before the window, then
        # tomorrow's once it has passed.
        offs = events_of(cp, device_id, "shutting_down")
        assert offs[0]["alarm_at"] == alarm
        wait_until(
            lambda: events_of(cp, device_id, "shutting_down")[-1]["alarm_at"] == tomorrow,
            timeout=20,
            message="powered off with tomorrow's alarm armed",
        )
        wait_until(
            lambda: (cp.device(device_id)["reported"] or {}).get("armed_alarm") == tomorrow,  # type: ignore[union-attr]
            timeout=20,
            message="tomorrow's alarm reported",
        )
        reported: dict[str, Any] = cp.device(device_id)["reported"]  # type: ignore[assignment]
        twin = cp.client.get(f"/api/v1/devices/{device_id}/twin", headers=cp.headers).json()
        assert reported["schedule_version"] == twin["desired"]["schedule"]["version"]
        assert reported["alarm_error"] is None
        # The control plane finds nothing wrong with what the device armed.
        assert (
            open_alert_kinds(cp, device_id)
            & {
                service.ALARM_MISMATCH,
                service.ALARM_REFUSED,
                service.SCHEDULE_STALE,
            }
            == set()
        )
    finally:
        edge.stop()
    assert "Traceback" not in edge.output()


class InProcessEdge:
    """An ``EdgeDaemon`` running in a thread of its own (to reach its mock GPIO pins)."""

    def __init__(self, config: EdgeConfig, clock: Callable[[], float] = time.time) -> None:
        self.daemon = EdgeDaemon(config, clock=clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="edge", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            await self.daemon.run()

        asyncio.run(run())

    def __enter__(self) -> InProcessEdge:
        self._thread.start()
        wait_until(lambda: self._loop is not None, message="the edge loop")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.daemon.request_stop)
        self._thread.join(15)
        assert not self._thread.is_alive()


def test_help_button_to_urgent_alert_and_led(
    cp: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    device_id = "pc-sched-e2e-2"
    password = cp.register(device_id)
    bid = add_beneficiary(cp, "Giuseppe Bianchi", device_id)
    path = write_edge_config(
        tmp_path,
        device_id,
        password,
        broker,
        button=ButtonConfig(enabled=True, mock=True, hold_s=0.05),
    )
    with InProcessEdge(load_config(path)) as edge:
        button = edge.daemon.button
        assert button is not None
        wait_until(lambda: edge.daemon.session.connected.is_set(), message="connected")
        pin = button._button.pin
        pin.drive_low()  # held down...
        wait_until(lambda: button.state == LedState.HELP_SENT, message="the LED confirms")
        pin.drive_high()
        alert = wait_until(
            lambda: query(
                cp,
                lambda s: s.execute(
                    select(Alert).where(Alert.device_id == device_id, Alert.kind == service.HELP)
                ).scalar_one_or_none(),
            ),
            timeout=15,
            message="the urgent help alert",
        )
        assert alert.severity == "urgent" and alert.beneficiary_id == bid
        assert "Giuseppe Bianchi" in alert.message


def test_commissioning_result_reaches_the_control_plane(
    cp: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    device_id = "pc-sched-e2e-3"
    password = cp.register(device_id)
    config = load_config(write_edge_config(tmp_path, device_id, password, broker))
    record = arm_test(config, minutes=3, clock=time.time)
    # The board came back by itself half a minute after the alarm (this process's clock
    # runs three and a half minutes ahead, as if it were that moment).
    skew = record["alarm_at"] + 30 - time.time()
    with InProcessEdge(config, clock=lambda: time.time() + skew):
        profile = wait_until(
            lambda: query(cp, lambda s: s.get(DeviceWakeProfile, device_id)),
            timeout=15,
            message="the commissioning result",
        )
    assert profile.wakes_from_off is True and profile.commission_result == "ok"
    r = cp.client.get(f"/api/v1/devices/{device_id}/schedule", headers=cp.headers)
    assert r.json()["profile"]["wakes_from_off"] is True
