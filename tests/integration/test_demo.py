"""``difronte demo`` brings up 3 online PCs, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.broker import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_demo_starts_three_online_devices_and_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    runtime = tmp_path / "demo"
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "control_plane.cli",
            "demo",
            "--port",
            str(port),
            "--runtime",
            str(runtime),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until(
            lambda: b"ready:" in (tmp_path / "demo.log").read_bytes() or proc.poll() is not None,
            timeout=90,
            message="demo ready",
        )
        out = (tmp_path / "demo.log").read_text()
        assert "ready: 3/3 PCs online" in out, out
        assert "caregiver" in out and "difronte-demo" in out  # logins printed
        token = (runtime / "admin-token").read_text()
        items = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}
        ).json()["items"]
        assert len(items) == 3 and all(d["online"] for d in items)
        pids = json.loads((runtime / "pids.json").read_text())
        assert set(pids) == {"mosquitto", "control-plane", "pc-demo-01", "pc-demo-02", "pc-demo-03"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        wait_until(
            lambda: not any(_alive(pid) for pid in pids.values()),
            timeout=10,
            message="every demo process gone",
        )
        assert "stopped 5 processes" in (tmp_path / "demo.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
