"""Helpers shared by the jobs tests: an API client, device updates, simulated devices."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from fastapi.testclient import TestClient

from control_plane.db import utcnow
from control_plane.jobs import run_tick
from edge import protocol as p
from tests.support.broker import Mosquitto


@dataclass
class Api:
    """A TestClient with the admin's bearer header and a few shortcuts."""

    client: TestClient
    headers: dict[str, str]
    passwords: dict[str, str] = field(default_factory=dict)

    def register(self, device_id: str, group: str = "") -> str:
        r = self.client.post(
            "/api/v1/devices", json={"id": device_id, "group": group}, headers=self.headers
        )
        assert r.status_code == 201, r.text
        password: str = r.json()["mqtt_password"]
        self.passwords[device_id] = password
        return password

    def create_job(self, **body: Any) -> dict[str, Any]:
        r = self.client.post("/api/v1/jobs", json=body, headers=self.headers)
        assert r.status_code == 201, r.text
        job: dict[str, Any] = r.json()
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/v1/jobs/{job_id}", headers=self.headers)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        return job

    def executions(self, job_id: str, **params: Any) -> list[dict[str, Any]]:
        r = self.client.get(
            f"/api/v1/jobs/{job_id}/executions",
            params={"limit": 1000, **params},
            headers=self.headers,
        )
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def execution(self, job_id: str, execution_id: str) -> dict[str, Any]:
        r = self.client.get(
            f"/api/v1/jobs/{job_id}/executions/{execution_id}", headers=self.headers
        )
        assert r.status_code == 200, r.text
        detail: dict[str, Any] = r.json()
        return detail

    def by_device(self, job_id: str) -> dict[str, dict[str, Any]]:
        return {e["device_id"]: e for e in self.executions(job_id)}

    def tick(self, now: dt.datetime | None = None, window_s: float = 60.0) -> set[str]:
        factory = self.client.app.state.sessionmaker  # type: ignore[attr-defined]
        return run_tick(factory, now or utcnow(), window_s=window_s)

    def report(
        self,
        device_id: str,
        execution_id: str,
        status: str,
        seq: int,
        *,
        progress: int | None = None,
        **details: str,
    ) -> None:
        """Feed a device's job update to the ingest, as if it came from the broker."""
        msg = p.JobUpdate(
            ts=p.now(),
            execution_id=execution_id,
            status=status,  # type: ignore[arg-type]
            seq=seq,
            progress=progress,
            details=details,
        )
        topic = p.topic(p.TopicKind.JOB_UPDATE, device_id, execution_id)
        self.client.app.state.ingest.handle(topic, p.encode(msg))  # type: ignore[attr-defined]

    def status(self, device_id: str, online: bool, session: int = 1) -> None:
        msg = p.Status(ts=p.now(), online=online, session=session)
        self.client.app.state.ingest.handle(  # type: ignore[attr-defined]
            p.topic(p.TopicKind.STATUS, device_id), p.encode(msg)
        )


Behaviour = Callable[[str, p.JobExecution], tuple[str, dict[str, str]]]


def succeed(device_id: str, execution: p.JobExecution) -> tuple[str, dict[str, str]]:
    """A simulated device that does what it is told."""
    return "SUCCEEDED", {"result": "ok"}


class SimulatedFleet:
    """Lightweight devices speaking the contract: aiomqtt clients on one loop in a thread.

    Each connects with its real broker credentials, says it is online, asks ``jobs/get``,
    and answers every new execution of a ``jobs/notify`` with IN_PROGRESS then the outcome
    its behaviour returns. ``handled`` records every execution id each device started.
    """

    def __init__(self, broker: Mosquitto, behaviour: Behaviour = succeed) -> None:
        self.broker = broker
        self.behaviour = behaviour
        self.handled: dict[str, list[str]] = {}
        self.notifies: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: dict[str, Future[None]] = {}
        self._stops: dict[str, asyncio.Event] = {}
        self._ready: dict[str, threading.Event] = {}
        self._thread.start()

    def connect(self, device_id: str, password: str) -> None:
        """Bring a device online (returns once it has subscribed and asked jobs/get)."""
        ready = threading.Event()
        self._ready[device_id] = ready
        self._tasks[device_id] = asyncio.run_coroutine_threadsafe(
            self._device(device_id, password, ready), self._loop
        )
        if not ready.wait(15):
            self._tasks[device_id].result(1)  # surfaces the connection error
            raise AssertionError(f"{device_id} did not connect")

    def disconnect(self, device_id: str) -> None:
        """Say goodbye and close the connection."""
        stop = self._stops.get(device_id)
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
            self._tasks[device_id].result(15)

    def close(self) -> None:
        for device_id in list(self._tasks):
            if not self._tasks[device_id].done():
                self.disconnect(device_id)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _device(self, device_id: str, password: str, ready: threading.Event) -> None:
        stop = asyncio.Event()
        self._stops[device_id] = stop
        seq = 0
        seen: set[str] = set()
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=device_id,
            password=password,
            identifier=device_id,
            keepalive=30,
        ) as client:
            await client.subscribe(p.topic(p.TopicKind.JOBS_NOTIFY, device_id), qos=1)
            status = p.Status(ts=p.now(), online=True, session=1)
            await client.publish(
                p.topic(p.TopicKind.STATUS, device_id), p.encode(status), qos=1, retain=True
            )
            await client.publish(
                p.topic(p.TopicKind.JOBS_GET, device_id), p.encode(p.JobsGet(ts=p.now())), qos=1
            )
            ready.set()

            async def answer() -> None:
                nonlocal seq
                async for message in client.messages:
                    payload = message.payload
                    assert isinstance(payload, bytes)
                    notify = p.decode(payload, p.JobsNotify)
                    self.notifies[device_id] = self.notifies.get(device_id, 0) + 1
                    for ex in notify.executions:
                        if ex.execution_id in seen:
                            continue
                        seen.add(ex.execution_id)
                        self.handled.setdefault(device_id, []).append(ex.execution_id)
                        outcome, details = self.behaviour(device_id, ex)
                        for status_, extra in (("IN_PROGRESS", {}), (outcome, details)):
                            seq += 1
                            update = p.JobUpdate(
                                ts=p.now(),
                                execution_id=ex.execution_id,
                                status=status_,  # type: ignore[arg-type]
                                seq=seq,
                                details=extra,
                            )
                            await client.publish(
                                p.topic(p.TopicKind.JOB_UPDATE, device_id, ex.execution_id),
                                p.encode(update),
                                qos=1,
                            )

            task = asyncio.create_task(answer())
            await stop.wait()
            task.cancel()
            offline = p.Status(ts=p.now(), online=False, session=1)
            await client.publish(
                p.topic(p.TopicKind.STATUS, device_id), p.encode(offline), qos=1, retain=True
            )


@contextmanager
def simulated_fleet(broker: Mosquitto, behaviour: Behaviour = succeed) -> Iterator[SimulatedFleet]:
    """A :class:`SimulatedFleet`, closed afterwards."""
    fleet = SimulatedFleet(broker, behaviour)
    try:
        yield fleet
    finally:
        fleet.close()
