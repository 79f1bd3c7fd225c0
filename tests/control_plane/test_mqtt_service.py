"""MqttService: a storage slower than the stream holds the socket back, and loses nothing."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from control_plane import mqtt as mqtt_module
from control_plane.mqtt import MqttService
from tests.conftest import make_settings
from tests.support.broker import CP_PASSWORD, CP_USER, Mosquitto
from tests.support.wait import async_wait_until


def test_a_slow_store_pauses_reading_and_everything_arrives(
    broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt_module, "QUEUE_HIGH", 40)
    monkeypatch.setattr(mqtt_module, "QUEUE_LOW", 10)
    settings = make_settings(f"sqlite:///{tmp_path / 'unused.db'}", broker)
    stored: list[bytes] = []
    lock = threading.Lock()

    def slow_store(batch: Sequence[tuple[str, bytes]]) -> None:
        time.sleep(0.02)  # a busy database
        with lock:
            stored.extend(payload for _, payload in batch)

    total = 600
    paused_seen = []

    async def main() -> None:
        service = MqttService(
            settings, slow_store, ["difronte/v1/dev/+/telemetry"], workers=1, batch_max=20
        )
        await service.start()
        try:
            await async_wait_until(service.connected.is_set, message="connected")
            publisher = await asyncio.create_subprocess_exec(
                "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", CP_USER,
                "-P", CP_PASSWORD, "-q", "1", "-l", "-t", "difronte/v1/dev/pc-slow/telemetry",
                stdin=subprocess.PIPE,
            )  # fmt: skip
            await publisher.communicate(b"".join(b"m%d\n" % i for i in range(total)))

            def progress() -> bool:
                paused_seen.append(service._paused)
                with lock:
                    return len(stored) == total

            await async_wait_until(progress, timeout=60, message="every message stored")
        finally:
            await service.stop()

    asyncio.run(main())
    assert stored == [b"m%d" % i for i in range(total)]  # in order, each once
    assert any(paused_seen)  # it did hold the socket back meanwhile
