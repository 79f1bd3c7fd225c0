"""End to end, with real processes: the edge's diagnose CLI uploads to a real uvicorn, and a
deployed PC enrolls itself with ``difronte-edge enroll`` and comes online on a real Mosquitto,
which links it to its beneficiary."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest

from control_plane.app import create_app
from control_plane.workshop.assessment import assess
from edge.config import PathsConfig, PowerConfig, TelemetryConfig, dump_config, load_config
from edge.diagnostics import upload_report
from tests.conftest import make_settings
from tests.support.broker import Mosquitto
from tests.support.browser import LiveServer
from tests.support.edge import EdgeProcess
from tests.support.wait import wait_until
from tests.workshop.workshop_support import Db, Person, good_report, make_people

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Live:
    """A control plane on a real port and a real broker, with the workshop's people."""

    url: str
    people: dict[str, Person]
    db: Db

    def api(self, who: str = "lead") -> httpx.Client:
        """An HTTP client for the workshop API as ``who``."""
        return httpx.Client(
            base_url=f"{self.url}/api/v1/workshop", headers=self.people[who].headers, timeout=30
        )


@pytest.fixture
def live(tmp_path: Path, broker: Mosquitto, migrated_sqlite: Path) -> Iterator[Live]:
    """The control plane behind uvicorn, on the session broker."""
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    (tmp_path / "cp.db").write_bytes(migrated_sqlite.read_bytes())
    people = make_people(url)
    settings = make_settings(url, broker, mqtt_backoff_cap_s=1.0)
    server = LiveServer(create_app(settings, run_migrations=False))
    # The enrollment file names the control plane's public address: this server's.
    settings.public_url = server.url
    server.start()
    db = Db(url)
    try:
        yield Live(server.url, people, db)
    finally:
        server.stop()
        db.close()


def _edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def test_the_real_diagnose_cli_fills_in_the_machine(live: Live, tmp_path: Path) -> None:
    with live.api() as api:
        created = api.post(
            "/donations",
            json={"donor": "Banca del Tempo", "consent_erase_reuse": True, "items": [{}]},
        )
        assert created.status_code == 201, created.text
        tag = created.json()["machines"][0]["asset_tag"]
        token_file = tmp_path / "token"
        token_file.write_text(live.people["tech"].token + "\n")
        saved = tmp_path / "report.json"
        done = _edge(
            "diagnose", "--upload", f"{live.url}/api/v1/workshop/machines/{tag}/diagnostics",
            "--token-file", str(token_file), "-o", str(saved), "--lang", "en",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        machine = api.get(f"/machines/{tag}").json()
        # Whatever this computer is made of, the workshop now knows it as the edge saw it.
        expected = assess(msgspec.json.decode(saved.read_bytes()))
        assert machine["diagnostics_at"] is not None
        assert machine["disk_serials"] == sorted(expected.disk_serials)
        assert machine["telecare_blockers"] == sorted(expected.blocker_codes)
        assert machine["inventory"]["cpu_model"] == expected.inventory.cpu_model
        # A trainee's token is not enough to upload.
        token_file.write_text(live.people["trainee"].token)
        refused = _edge(
            "diagnose", "--upload", f"{live.url}/api/v1/workshop/machines/{tag}/diagnostics",
            "--token-file", str(token_file),
        )  # fmt: skip
        assert refused.returncode == 2 and "HTTP 403" in refused.stderr


def _with_test_seams(config: Path) -> None:
    """Point the enrolled PC's hardware at fakes, as the test harness does everywhere."""
    cfg = load_config(config)
    base = config.parent
    cfg = msgspec.structs.replace(
        cfg,
        paths=PathsConfig(state_dir=cfg.paths.state_dir, rtc_dir=str(base / "rtc"), fake_rtc=True),
        power=PowerConfig(backend="record", record_file=str(base / "power.jsonl")),
        telemetry=TelemetryConfig(interval_s=0.5),
        mqtt=msgspec.structs.replace(cfg.mqtt, keepalive=5, backoff_cap_s=1.0),
    )
    config.write_bytes(dump_config(cfg))


def test_a_deployed_pc_enrolls_itself_and_is_linked_to_its_beneficiary(
    live: Live, tmp_path: Path
) -> None:
    beneficiary = live.db.beneficiary("Teresa Gallo")
    with live.api() as api:
        created = api.post(
            "/donations",
            json={
                "donor": "Ufficio Tecnico",
                "consent_erase_reuse": True,
                "items": [{"kind": "laptop", "serial_number": "PB0ABCD", "weight_kg": 2.2}],
            },
        )
        tag = created.json()["machines"][0]["asset_tag"]
        assert api.post(f"/machines/{tag}/transitions", json={"to": "triaged"}).status_code == 200
        upload_report(
            good_report("PB0ABCD"),
            f"{live.url}/api/v1/workshop/machines/{tag}/diagnostics",
            token=live.people["tech"].token,
        )
        assert api.post(f"/machines/{tag}/transitions", json={"to": "wiped"}).status_code == 200
        erased = api.post(
            f"/machines/{tag}/erasures",
            json={
                "disk_serial": "S21PNXAG123456",
                "method": "ata_secure_erase",
                "verification": "passed",
                "started_at": "2026-01-10T09:00:00+01:00",
                "finished_at": "2026-01-10T09:40:00+01:00",
            },
        )
        assert erased.status_code == 201, erased.text
        for state in ("tested", "imaged", "quality_checked", "ready"):
            moved = api.post(f"/machines/{tag}/transitions", json={"to": state})
            assert moved.status_code == 200, moved.text
        deployed = api.post(
            f"/machines/{tag}/transitions", json={"to": "deployed", "beneficiary_id": beneficiary}
        )
        assert deployed.status_code == 200, deployed.text
        enroll_file = deployed.json()["enrollment"]["file"]

    # What the image's first-boot step does with difronte-enroll.txt.
    fields = dict(line.split("=", 1) for line in enroll_file.splitlines())
    assert fields["url"] == live.url
    config = tmp_path / "etc" / "edge.toml"
    done = _edge(
        "enroll", "--url", fields["url"], "--token", fields["token"], "--config", str(config),
        "--state-dir", str(config.parent / "state"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert load_config(config).device_id == tag.lower()
    _with_test_seams(config)
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        wait_until(
            lambda: live.db.beneficiary_device(beneficiary) == tag.lower(),
            timeout=30,
            message="the enrolled PC linked to its beneficiary",
        )
    finally:
        edge.stop()
    with live.api("trainee") as api:
        machine = api.get(f"/machines/{tag}").json()
    assert machine["device_linked"] is True and machine["device_id"] == tag.lower()
    assert live.db.audit_actions(tag)[-1] == "workshop.machine.linked"
