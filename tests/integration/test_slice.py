"""The thin end-to-end slice against the real broker: register, connect, report, go offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge import protocol as p
from tests.conftest import ControlPlane
from tests.support.broker import Mosquitto
from tests.support.edge import EdgeProcess, write_edge_config
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def _pub(
    broker: Mosquitto,
    user: str,
    password: str,
    topic: str,
    payload: bytes | str,
    *,
    retain: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    args = [
        "mosquitto_pub",
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-u",
        user,
        "-P",
        password,
        "-t",
        topic,
        "-q",
        "1",
        "-s",
    ]
    if retain:
        args.append("-r")
    data = payload.encode() if isinstance(payload, str) else payload
    return subprocess.run(args, input=data, capture_output=True, timeout=15)


def test_device_comes_online_and_reports_telemetry(
    control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    password = control_plane.register("pc-slice-01", name="Casa Rossi", group="roma")
    edge = EdgeProcess(
        write_edge_config(tmp_path, "pc-slice-01", password, broker), tmp_path / "edge.log"
    ).start()
    try:
        dev = wait_until(
            lambda: (
                (d := control_plane.device("pc-slice-01"))["online"] and d["last_telemetry"] and d
            ),
            timeout=20,
            message="device online with telemetry",
        )
        assert dev["session"] >= 1
        assert dev["last_seen"] is not None
        metrics = dev["last_telemetry"]["metrics"]  # type: ignore[index]
        assert "mem.used_pct" in metrics or "cpu.percent" in metrics
        listing = control_plane.client.get("/api/v1/devices", headers=control_plane.headers).json()
        assert [d["id"] for d in listing["items"]] == ["pc-slice-01"]
        assert listing["items"][0]["online"] is True
    finally:
        edge.stop()
    # A graceful stop says goodbye: offline without waiting for the keepalive.
    wait_until(
        lambda: control_plane.device("pc-slice-01")["online"] is False,
        timeout=10,
        message="offline after graceful stop",
    )


def test_kill9_goes_offline_through_the_will(
    control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    keepalive = 2
    password = control_plane.register("pc-slice-02")
    edge = EdgeProcess(
        write_edge_config(tmp_path, "pc-slice-02", password, broker, keepalive=keepalive),
        tmp_path / "edge.log",
    ).start()
    try:
        wait_until(
            lambda: control_plane.device("pc-slice-02")["online"], timeout=20, message="online"
        )
        session = control_plane.device("pc-slice-02")["session"]
        edge.kill9()
        # The broker publishes the will after 1.5 x keepalive without a packet; allow slack
        # for a loaded machine but fail long before the next keepalive multiple.
        dev = wait_until(
            lambda: (d := control_plane.device("pc-slice-02"))["online"] is False and d,
            timeout=1.5 * keepalive + 4,
            message="offline via the will",
        )
        assert dev["session"] == session
    finally:
        edge.stop()


def test_restart_after_crash_ends_online_despite_the_stale_will(
    control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    password = control_plane.register("pc-slice-03")
    config = write_edge_config(tmp_path, "pc-slice-03", password, broker, keepalive=30)
    first = EdgeProcess(config, tmp_path / "edge1.log").start()
    wait_until(lambda: control_plane.device("pc-slice-03")["online"], timeout=20, message="up")
    s1 = control_plane.device("pc-slice-03")["session"]
    first.kill9()
    # Restart at once: the broker still holds the dead connection; the takeover publishes the
    # old session's will, which must not turn the new session offline.
    second = EdgeProcess(config, tmp_path / "edge2.log").start()
    try:
        dev = wait_until(
            lambda: (
                (d := control_plane.device("pc-slice-03"))["session"] > s1  # type: ignore[operator]
                and d
            ),
            timeout=20,
            message="new session",
        )
        assert dev["online"] is True
        # The retained status at the broker is the new birth too (a fresh subscriber sees it).
        out = subprocess.run(
            [
                "mosquitto_sub",
                "-h",
                broker.host,
                "-p",
                str(broker.port),
                "-u",
                "difronte-cp",
                "-P",
                "cp-test-password",
                "-t",
                p.topic(p.TopicKind.STATUS, "pc-slice-03"),
                "-C",
                "1",
                "-W",
                "5",
            ],
            capture_output=True,
            timeout=15,
        )
        wait_until(
            lambda: control_plane.device("pc-slice-03")["online"], timeout=5, message="still online"
        )
        status = p.decode(out.stdout.strip(), p.Status)
        assert status.online and status.session == control_plane.device("pc-slice-03")["session"]
    finally:
        second.stop()


def test_bad_payloads_are_refused_and_counted_device_stays_online(
    control_plane: ControlPlane, broker: Mosquitto, tmp_path: Path
) -> None:
    password = control_plane.register("pc-slice-04")
    edge = EdgeProcess(
        write_edge_config(tmp_path, "pc-slice-04", password, broker, interval_s=1.0),
        tmp_path / "edge.log",
    ).start()
    try:
        wait_until(
            lambda: control_plane.device("pc-slice-04")["last_telemetry"],
            timeout=20,
            message="first telemetry",
        )
        topic = p.topic(p.TopicKind.TELEMETRY, "pc-slice-04")
        bad = [
            b"not json",
            b"[1,2]",
            b'{"v": 2, "ts": 1, "seq": 1, "samples": []}',
            b'{"v": 1, "ts": 1, "seq": 9, "samples": [{"ts": "x", "metrics": {}}]}',
            b"x" * (70 * 1024),
        ]
        for payload in bad:
            r = _pub(broker, "pc-slice-04", password, topic, payload)
            assert r.returncode == 0, r.stderr
        dev = wait_until(
            lambda: (d := control_plane.device("pc-slice-04"))["rejected_count"] == len(bad) and d,
            timeout=10,
            message="all bad payloads counted",
        )
        assert dev["online"] is True
        errors = control_plane.client.get(
            "/api/v1/devices/pc-slice-04/ingest-errors", headers=control_plane.headers
        ).json()
        fields = {e["field"] for e in errors}
        assert "$.samples[0].ts" in fields
        assert "payload" in fields
        # The device's next valid batch is stored after the garbage.
        seq = dev["telemetry_seq"]
        wait_until(
            lambda: control_plane.device("pc-slice-04")["telemetry_seq"] > seq,  # type: ignore[operator]
            timeout=10,
            message="next valid batch stored",
        )
    finally:
        edge.stop()


def test_device_credentials_reach_only_its_own_topics(
    control_plane: ControlPlane, broker: Mosquitto
) -> None:
    pw_a = control_plane.register("pc-acl-a")
    pw_b = control_plane.register("pc-acl-b")
    desired_b = p.topic(p.TopicKind.TWIN_DESIRED, "pc-acl-b")
    twin = p.encode(p.TwinDesired(ts=p.now(), version=1))
    r = _pub(broker, "difronte-cp", "cp-test-password", desired_b, twin, retain=True)
    assert r.returncode == 0, r.stderr

    def sub(user: str, pw: str, topic: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [
                "mosquitto_sub",
                "-h",
                broker.host,
                "-p",
                str(broker.port),
                "-u",
                user,
                "-P",
                pw,
                "-t",
                topic,
                "-C",
                "1",
                "-W",
                "2",
            ],
            capture_output=True,
            timeout=15,
        )

    assert sub("pc-acl-b", pw_b, desired_b).stdout.strip() == twin  # B reads its own twin
    assert sub("pc-acl-a", pw_a, desired_b).stdout == b""  # A is denied B's twin
    # A publishing B's telemetry is dropped by the broker: nothing reaches the control plane.
    batch = p.TelemetryBatch(ts=p.now(), seq=1, samples=[p.Sample(ts=p.now(), metrics={"x": 1})])
    assert (
        _pub(
            broker, "pc-acl-a", pw_a, p.topic(p.TopicKind.TELEMETRY, "pc-acl-b"), p.encode(batch)
        ).returncode
        == 0
    )
    # B's own publish of the same batch arrives; A's forged one never did.
    assert (
        _pub(
            broker, "pc-acl-b", pw_b, p.topic(p.TopicKind.TELEMETRY, "pc-acl-b"), p.encode(batch)
        ).returncode
        == 0
    )
    wait_until(
        lambda: control_plane.device("pc-acl-b")["telemetry_seq"] == 1,
        timeout=10,
        message="B's own batch stored",
    )
    ingest = control_plane.client.app.state.ingest  # type: ignore[attr-defined]
    assert ingest.stats.by_kind.get("telemetry") == 1
    # A wrong password is refused.
    r = _pub(broker, "pc-acl-a", "wrong-password", p.topic(p.TopicKind.EVENTS, "pc-acl-a"), "{}")
    assert r.returncode != 0
    assert b"not authorised" in r.stderr.lower() or b"refused" in r.stderr.lower()
