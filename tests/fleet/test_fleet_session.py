"""The device session against a real Mosquitto: TLS with a pinned CA, refused passwords,
revocation, and the telemetry interval from the desired twin."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.devices import create_device
from control_plane.models import TelemetryBatchRecord
from control_plane.mqtt import MqttService
from edge import protocol as p
from edge.config import load_config
from tests.conftest import ControlPlane, make_settings
from tests.fleet.conftest import LiveControlPlane, start_live_control_plane
from tests.fleet.fleet_support import (
    CertAuthority,
    IngestRunner,
    TlsMosquitto,
    edge_cli,
    edge_status,
    make_ca,
)
from tests.fleet.test_fleet_enroll import _enroll, _with_test_seams
from tests.fleet.test_fleet_shared_ingest import _publish_lines
from tests.support.broker import Mosquitto
from tests.support.edge import EdgeProcess, write_edge_config
from tests.support.wait import async_wait_until, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertAuthority, CertAuthority]:
    """The broker's CA, and an unrelated one a man in the middle might use."""
    directory = tmp_path_factory.mktemp("pki")
    return make_ca(directory, "broker"), make_ca(directory, "other")


@pytest.fixture
def tls_broker(
    tmp_path: Path, authorities: tuple[CertAuthority, CertAuthority]
) -> Iterator[TlsMosquitto]:
    """A broker with a TLS listener whose certificate the broker CA signed."""
    broker = TlsMosquitto(tmp_path / "mosquitto", authorities[0])
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def tls_cp(tmp_path: Path, tls_broker: TlsMosquitto) -> Iterator[LiveControlPlane]:
    """A control plane that sends devices to the TLS listener and hands them the CA."""
    server, cp = start_live_control_plane(
        tmp_path,
        tls_broker,
        device_mqtt_port=tls_broker.tls_port,
        device_mqtt_tls_ca=tls_broker.authority.ca_cert,
    )
    try:
        yield cp
    finally:
        server.stop()
        cp.db.close()


def test_enrolled_device_connects_over_tls_with_the_pinned_ca_only(
    tls_cp: LiveControlPlane,
    tls_broker: TlsMosquitto,
    authorities: tuple[CertAuthority, CertAuthority],
    tmp_path: Path,
) -> None:
    token = tls_cp.new_token(device_id="pc-tls-01")["token"]
    config = tmp_path / "good" / "edge.toml"
    code, out = _enroll(tls_cp.url, str(token), config)
    assert code == 0, out
    assert "pinned" in out
    cfg = load_config(config)
    assert cfg.mqtt.port == tls_broker.tls_port
    assert cfg.mqtt.tls_ca is not None
    assert Path(cfg.mqtt.tls_ca).read_bytes() == authorities[0].ca_cert.read_bytes()
    _with_test_seams(config)

    # The same identity, but trusting another CA: the broker's certificate must be refused.
    mitm = tmp_path / "mitm" / "edge.toml"
    mitm.parent.mkdir()
    bad = msgspec.structs.replace(
        cfg,
        mqtt=msgspec.structs.replace(cfg.mqtt, tls_ca=str(authorities[1].ca_cert)),
        paths=msgspec.structs.replace(cfg.paths, state_dir=str(mitm.parent / "state")),
    )
    mitm.write_bytes(msgspec.toml.encode(bad))
    refused = EdgeProcess(mitm, tmp_path / "mitm.log").start()
    try:
        status = wait_until(
            lambda: (
                (s := edge_status(mitm)) and "certificate verify failed" in s["last_error"] and s
            ),
            timeout=20,
            message="the edge refusing the broker certificate",
        )
        assert status["connected"] is False
        assert status["auth_failed"] is False  # a TLS failure is retried, not given up on
        assert tls_cp.db.device("pc-tls-01").online is False  # type: ignore[union-attr]
    finally:
        refused.stop()

    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        wait_until(
            lambda: (d := tls_cp.db.device("pc-tls-01")) is not None and d.online,
            timeout=20,
            message="the device online over TLS",
        )
        wait_until(lambda: tls_cp.db.seqs("pc-tls-01"), timeout=20, message="telemetry over TLS")
        assert edge_status(config)["connected"] is True
    finally:
        edge.stop()
    assert "New client connected" in tls_broker.log_text()


def test_a_refused_password_stops_retrying_and_says_so(
    control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    control_plane.register("pc-badpw-01")
    config = write_edge_config(tmp_path, "pc-badpw-01", "not-the-password", broker)
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        assert edge.proc is not None
        code = wait_until(
            lambda: edge.proc.poll() is not None and edge.proc.returncode,  # type: ignore[union-attr]
            timeout=20,
            message="the daemon to give up",
        )
    finally:
        edge.stop()
    assert code == 3
    log = edge.output()
    assert "refused the credentials" in log and "not retrying" in log
    assert log.count("connection lost") <= 1  # it did not keep trying
    done = edge_cli("status", "--config", str(config))
    assert done.returncode == 1
    assert "REFUSED the password" in done.stdout
    assert "NOT connected" in done.stdout


def test_revoking_a_device_disconnects_it_within_seconds(
    control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    password = control_plane.register("pc-revoke-01")
    config = write_edge_config(tmp_path, "pc-revoke-01", password, broker)
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        wait_until(
            lambda: control_plane.device("pc-revoke-01")["online"], timeout=20, message="online"
        )
        r = control_plane.client.post(
            "/api/v1/devices/pc-revoke-01/revoke", headers=control_plane.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["revoked"] is True
        # The broker re-checks connected clients when it reloads its password file: the
        # device is thrown out, its reconnect is refused, and the daemon stops for good.
        assert edge.proc is not None
        code = wait_until(
            lambda: edge.proc.poll() is not None and edge.proc.returncode,  # type: ignore[union-attr]
            timeout=10,
            message="the revoked device to be disconnected and refused",
        )
    finally:
        edge.stop()
    assert code == 3
    assert "refused the credentials" in edge.output()
    assert "REFUSED" in edge_cli("status", "--config", str(config)).stdout


def test_the_desired_telemetry_interval_changes_the_sampling(
    control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    password = control_plane.register("pc-interval-01")
    # One sample at start, then nothing for an hour unless the twin says otherwise.
    config = write_edge_config(tmp_path, "pc-interval-01", password, broker, interval_s=3600)
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    try:
        wait_until(
            lambda: control_plane.device("pc-interval-01")["telemetry_seq"] == 1,
            timeout=20,
            message="the first batch",
        )
        r = control_plane.client.put(
            "/api/v1/devices/pc-interval-01/twin/desired/telemetry",
            json={"interval_s": 5, "batch_max": 10},
            headers=control_plane.headers,
        )
        assert r.status_code == 200, r.text
        version = r.json()["desired_version"]
        dev = wait_until(
            lambda: (
                (d := control_plane.device("pc-interval-01"))["reported"]
                and d["reported"]["desired_version"] == version  # type: ignore[index]
                and d
            ),
            timeout=20,
            message="the device to report the new desired version",
        )
        assert dev["reported"]["config"]["telemetry_interval_s"] == 5  # type: ignore[index]
        # Two more batches come on the new cadence (not in an hour).
        wait_until(
            lambda: control_plane.device("pc-interval-01")["telemetry_seq"] >= 4,  # type: ignore[operator]
            timeout=30,
            message="batches at the new interval",
        )
    finally:
        edge.stop()
    factory = control_plane.app_state.sessionmaker  # type: ignore[attr-defined]
    with factory() as s:
        batches = (
            s.query(TelemetryBatchRecord)
            .filter_by(device_id="pc-interval-01")
            .order_by(TelemetryBatchRecord.seq)
            .all()
        )
        times = [sample["ts"] for b in batches for sample in b.samples]
    # The device's own sample times: 5 s apart once the new interval applies.
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    assert gaps and all(4.5 <= g < 60 for g in gaps), gaps


def test_the_control_plane_ingests_over_tls_and_stops_on_a_refused_password(
    tmp_path: Path, tls_broker: TlsMosquitto
) -> None:
    # Both control-plane connections (the general one and the lean ingest subscriber) go to
    # the TLS listener with the pinned CA; a wrong password is given up on, not retried.
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    plain = make_settings(url, tls_broker)
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        _, password = create_device(session, plain, device_id="pc-tls-cp")
    engine.dispose()
    settings = make_settings(
        url,
        tls_broker,
        mqtt_port=tls_broker.tls_port,
        mqtt_tls_ca=tls_broker.authority.ca_cert,
    )
    ingest = IngestRunner(settings).start()
    try:
        _publish_lines(
            tls_broker,
            "pc-tls-cp",
            password,
            [
                p.encode(
                    p.TelemetryBatch(
                        ts=1.0 * i,
                        seq=i,
                        samples=[p.Sample(ts=1.0 * i, metrics={"cpu.percent": 1.0})],
                    )
                )
                for i in range(1, 6)
            ],
        )
        wait_until(lambda: ingest.ingest.stats.accepted >= 5, message="five batches over TLS")
    finally:
        ingest.stop()

    refused = settings.model_copy(update={"mqtt_password": "not-the-password"})

    async def main() -> MqttService:
        service = MqttService(refused, lambda _batch: None, ["difronte/v1/dev/+/telemetry"])
        await service.start()
        try:
            await async_wait_until(
                lambda: service.auth_failed, timeout=20, message="the refusal noticed"
            )
        finally:
            await service.stop()
        return service

    service = asyncio.run(main())
    assert service.auth_failed and not service.connected.is_set()
