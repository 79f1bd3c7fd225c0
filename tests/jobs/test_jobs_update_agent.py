"""update-agent for real: HTTPS download (self-signed CA), sha256, venvs, switch, guard.

Wheels are built here by hand; the venvs are real (``python -m venv`` + pip, no index);
the guard runs as its own process, restarts through ``current/bin/difronte-edge`` and
rolls back when the new agent never writes a healthy status.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge import protocol as p
from edge.config import EdgeConfig, JobsConfig, MqttConfig, PathsConfig
from edge.jobs import AgentInstall, AwaitRestart, JobEnv, JobFailed, JobRejected, agent_update
from edge.jobs.agent_update import UpdateAgent, load_record
from edge.jobs.operations import ExecutionContext, decode_params
from tests.jobs.wheels import https_server, make_wheel, self_signed, sha256_of
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


@dataclass
class Site:
    """An agent root with version 1.0 installed and current, and an update server."""

    root: Path
    state: Path
    wheels: Path
    url: str
    config: EdgeConfig
    notes: list[dict[str, Any]]
    progress: list[int]

    @property
    def install(self) -> AgentInstall:
        return AgentInstall(self.root)

    def ctx(self, eid: str) -> ExecutionContext:
        async def progress(pct: int, **details: Any) -> None:
            self.progress.append(pct)

        execution = p.JobExecution(execution_id=eid, job_id="j", operation="update-agent")
        return ExecutionContext(execution, JobEnv(config=self.config), progress, self.notes.append)

    def update(self, version: str, *, sha256: str | None = None, eid: str = "ex-u") -> None:
        wheel = self.wheels / f"difronte_fake_agent-{version}-py3-none-any.whl"
        params = {
            "url": f"{self.url}/{wheel.name}",
            "sha256": sha256 or sha256_of(wheel),
            "version": version,
        }
        op = UpdateAgent()
        asyncio.run(op.run(self.ctx(eid), decode_params(op.params, params)))

    def update_url(self, url: str) -> None:
        op = UpdateAgent()
        params = {"url": url, "sha256": "0" * 64, "version": "7.0"}
        asyncio.run(op.run(self.ctx("ex-url"), decode_params(op.params, params)))

    def resume(self) -> dict[str, str]:
        op = UpdateAgent()
        return asyncio.run(op.resume(self.ctx("ex-u"), self.notes[-1]))

    def status_version(self) -> str | None:
        try:
            return str(json.loads((self.state / "status.json").read_text())["agent_version"])
        except (OSError, ValueError):
            return None


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    wheels = tmp_path / "www"
    make_wheel(wheels, "1.0")
    make_wheel(wheels, "2.0")
    make_wheel(wheels, "3.0", behaviour="silent")
    make_wheel(wheels, "4.0", behaviour="crash")
    cert, key = self_signed(tmp_path)
    root, state = tmp_path / "opt", tmp_path / "state"
    state.mkdir()
    install = AgentInstall(root)
    install.switch(
        install.install(
            wheels / "difronte_fake_agent-1.0-py3-none-any.whl", "1.0", pip_args=["--no-index"]
        )
    )
    config = EdgeConfig(
        device_id="pc-update-1",
        mqtt=MqttConfig(password="x"),
        paths=PathsConfig(state_dir=str(state)),
        jobs=JobsConfig(
            ca_file=str(cert),
            agent_root=str(root),
            health_deadline_s=3.0,
            # What systemctl restart does in production: run what `current` points at.
            restart_command=[str(root / "current" / "bin" / "difronte-edge"), str(state)],
            guard_launcher=[],
            pip_args=["--no-index"],
        ),
    )
    with https_server(wheels, cert, key) as url:
        yield Site(root, state, wheels, url, config, [], [])
    for guard in agent_update._guards:
        guard.wait(30)


def test_a_wrong_sha256_or_certificate_fails_before_anything_is_touched(site: Site) -> None:
    before = sorted(os.listdir(site.root / "venvs"))
    with pytest.raises(JobFailed) as caught:
        site.update("2.0", sha256="0" * 64)
    assert "sha256 mismatch" in caught.value.reason
    assert caught.value.details["sha256"] == sha256_of(
        site.wheels / "difronte_fake_agent-2.0-py3-none-any.whl"
    )
    assert site.install.current_target() == site.root / "venvs" / "1.0"
    assert sorted(os.listdir(site.root / "venvs")) == before == ["1.0"]
    assert os.listdir(site.root / "downloads") == [], "no partial download left"
    assert not (site.state / agent_update.RECORD_NAME).exists()

    op = UpdateAgent()
    missing = {
        "url": f"{site.url}/nothing-9.0-py3-none-any.whl",
        "sha256": "0" * 64,
        "version": "9.0",
    }
    with pytest.raises(JobFailed, match="HTTP 404"):
        asyncio.run(op.run(site.ctx("ex-404"), decode_params(op.params, missing)))
    for field, value in [("url", "http://x/a.whl"), ("sha256", "ABC"), ("version", "../1")]:
        with pytest.raises(JobRejected, match=rf"parameters\.{field}"):
            decode_params(op.params, {**missing, field: value})
    with pytest.raises(JobRejected, match=r"must name a \.whl file"):
        site.update_url(f"{site.url}/agent.tar.gz")

    # The system's CAs do not know the self-signed one: the download is refused.
    site.config.jobs.ca_file = None
    with pytest.raises(JobFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        site.update("2.0")
    assert site.install.current_target() == site.root / "venvs" / "1.0"


def test_a_healthy_update_switches_and_a_sick_one_rolls_back(site: Site) -> None:
    with pytest.raises(AwaitRestart):
        site.update("2.0")
    assert site.install.current_target() == site.root / "venvs" / "2.0"
    assert site.progress[0] == 5 and site.progress[-1] == 80
    record_path = site.state / agent_update.RECORD_NAME
    wait_until(
        lambda: (load_record(record_path) or {}).get("phase") == "healthy",
        timeout=20,
        message="guard sees the new agent healthy",
    )
    assert site.status_version() == "2.0"
    done = site.resume()  # what the new agent's runner reports at its start
    assert done["version"] == "2.0" and done["previous"] == "1.0"
    assert not record_path.exists() and record_path.with_name("agent-update.done.json").exists()

    with pytest.raises(AwaitRestart):
        site.update("3.0")
    assert site.install.current_target() == site.root / "venvs" / "3.0"
    wait_until(
        lambda: (load_record(record_path) or {}).get("phase") == "rolled_back",
        timeout=30,
        message="guard rolls back",
    )
    assert site.install.current_target() == site.root / "venvs" / "2.0"
    wait_until(lambda: site.status_version() == "2.0", timeout=10, message="old agent back")
    with pytest.raises(JobFailed) as caught:
        site.resume()  # what the old agent's runner reports after the rollback
    assert "did not report healthy within 3 s; rolled back to 2.0" in caught.value.reason
    assert caught.value.details == {"version": "3.0", "running": "2.0"}
    assert "restarting into 3.0" in (site.state / "update-guard.log").read_text()

    # An agent that cannot even start is rolled back at once, without waiting.
    with pytest.raises(AwaitRestart):
        site.update("4.0")
    wait_until(
        lambda: (load_record(record_path) or {}).get("phase") == "rolled_back",
        timeout=20,
        message="guard rolls back a crash",
    )
    with pytest.raises(JobFailed, match=r"restart into 4.0 failed .*exit 1.*rolled back to 2.0"):
        site.resume()
    assert site.install.current_target() == site.root / "venvs" / "2.0"

    # Running the current version again is a no-op success.
    op = UpdateAgent()
    params = decode_params(
        op.params,
        {
            "url": f"{site.url}/difronte_fake_agent-2.0-py3-none-any.whl",
            "sha256": sha256_of(site.wheels / "difronte_fake_agent-2.0-py3-none-any.whl"),
            "version": "2.0",
        },
    )
    assert (
        asyncio.run(op.run(site.ctx("ex-same"), params))["result"] == "already running this version"
    )
