"""Edge configs and real ``difronte-edge`` processes for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from edge.config import (
    EdgeConfig,
    MqttConfig,
    PathsConfig,
    PowerConfig,
    TelemetryConfig,
    dump_config,
)

from .broker import Mosquitto


def write_edge_config(
    directory: Path,
    device_id: str,
    password: str,
    broker: Mosquitto,
    *,
    keepalive: int = 5,
    interval_s: float = 0.5,
    **overrides: object,
) -> Path:
    """Write a TOML config for a device whose hardware seams are faked under ``directory``."""
    state = directory / device_id
    state.mkdir(parents=True, exist_ok=True)
    config = EdgeConfig(
        device_id=device_id,
        mqtt=MqttConfig(
            host=broker.host,
            port=broker.port,
            password=password,
            keepalive=keepalive,
            backoff_cap_s=2.0,
        ),
        paths=PathsConfig(
            state_dir=str(state / "state"), rtc_dir=str(state / "rtc"), fake_rtc=True
        ),
        power=PowerConfig(backend="record", record_file=str(state / "power.jsonl")),
        telemetry=TelemetryConfig(interval_s=interval_s, batch_max=10),
    )
    if overrides:
        config = msgspec.structs.replace(config, **overrides)
    path = state / "edge.toml"
    path.write_bytes(dump_config(config))
    return path


class EdgeProcess:
    """A real ``difronte-edge run`` process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EdgeProcess:
        """Start it."""
        out = self.log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config", str(self.config)],
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
        )
        out.close()
        return self

    def kill9(self) -> None:
        """SIGKILL: no goodbye, the broker must publish the Last Will."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait; SIGKILL if it hangs."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def output(self) -> str:
        """What it logged."""
        return self.log.read_text(errors="replace")
