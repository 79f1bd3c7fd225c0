"""Enrollment through the real ``difronte-edge enroll`` against a real uvicorn control plane."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import update

from control_plane.fleet.models import EnrollmentToken
from edge.config import PathsConfig, PowerConfig, TelemetryConfig, dump_config, load_config
from tests.fleet.conftest import LiveControlPlane
from tests.fleet.fleet_support import edge_cli
from tests.support.broker import Mosquitto, free_port
from tests.support.edge import EdgeProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def _enroll(cp_url: str, token: str, config: Path, *extra: str) -> tuple[int, str]:
    done = edge_cli(
        "enroll", "--url", cp_url, f"--token={token}", "--config", str(config),
        "--state-dir", str(config.parent / "state"), *extra,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _with_test_seams(config: Path) -> None:
    """Point the enrolled config's hardware at fakes, as the test harness does everywhere."""
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


def test_enroll_writes_a_private_config_and_the_device_connects(
    live_cp: LiveControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    created = live_cp.new_token(device_id="pc-enroll-01", name="Casa Bianchi", group="roma")
    config = tmp_path / "etc" / "edge.toml"
    code, out = _enroll(live_cp.url, str(created["token"]), config)
    assert code == 0, out
    assert "enrolled as pc-enroll-01" in out
    # The MQTT password is in there: nobody but root may read it.
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    cfg = load_config(config)
    assert cfg.device_id == "pc-enroll-01"
    assert (cfg.mqtt.host, cfg.mqtt.port) == (broker.host, broker.port)
    assert cfg.mqtt.tls_ca is None  # this control plane hands out no CA
    assert cfg.control_plane_url == live_cp.url

    _with_test_seams(config)
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        with live_cp.api() as api:
            device = wait_until(
                lambda: (
                    (d := api.get("/api/v1/devices/pc-enroll-01", headers=live_cp.admin).json())
                    and d["online"]
                    and d["last_telemetry"]
                    and d
                ),
                timeout=20,
                message="the enrolled device online with telemetry",
            )
            assert device["name"] == "Casa Bianchi" and device["group"] == "roma"
            tokens = api.get(
                "/api/v1/enrollment-tokens", params={"state": "used"}, headers=live_cp.manager
            ).json()
            assert [t["device_id"] for t in tokens["items"]] == ["pc-enroll-01"]
            assert "token" not in tokens["items"][0]  # the secret is never shown again
    finally:
        edge.stop()

    # The same token a second time: refused, and says why.
    again = tmp_path / "other" / "edge.toml"
    code, out = _enroll(live_cp.url, str(created["token"]), again)
    assert code == 1
    assert "enrollment failed" in out and "already used" in out
    assert not again.exists()


def test_expired_unknown_and_unreachable_are_refused_clearly(
    live_cp: LiveControlPlane, tmp_path: Path
) -> None:
    created = live_cp.new_token(device_id="pc-enroll-02", ttl_minutes=5)
    # Let the token's time run out (the clock of the database row, not a sleep).
    with live_cp.db.factory() as s, s.begin():
        s.execute(
            update(EnrollmentToken)
            .where(EnrollmentToken.id == created["id"])
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    config = tmp_path / "edge.toml"
    code, out = _enroll(live_cp.url, str(created["token"]), config)
    assert code == 1
    assert "expired" in out and "ask for a new one" in out
    assert not config.exists()

    code, out = _enroll(live_cp.url, "not-a-token-at-all", config)
    assert code == 1 and "not a valid enrollment token" in out

    code, out = _enroll(f"http://127.0.0.1:{free_port()}", "whatever-token", config)
    assert code == 1 and "cannot reach the control plane" in out
    assert not config.exists()
    with live_cp.api() as api:
        r = api.get("/api/v1/devices/pc-enroll-02", headers=live_cp.admin)
        assert r.status_code == 404  # an expired token registers nothing


def test_an_enrolled_pc_is_not_overwritten_without_force(
    live_cp: LiveControlPlane, tmp_path: Path
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text("# a PC that was enrolled before\n")
    created = live_cp.new_token(device_id="pc-enroll-03")
    code, out = _enroll(live_cp.url, str(created["token"]), config)
    assert code == 1 and "already enrolled" in out and "--force" in out
    assert config.read_text() == "# a PC that was enrolled before\n"
    code, out = _enroll(live_cp.url, str(created["token"]), config, "--force")
    assert code == 0, out
    assert load_config(config).device_id == "pc-enroll-03"
