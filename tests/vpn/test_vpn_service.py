"""The control plane's VPN: enrollment from reported keys, rotation, revocation, alerts, API.

Every test runs on SQLite and PostgreSQL. Devices are simulated at the ingest seam (their
twin/reported payloads go through the real ingest); the hub is an in-memory driver, the seam
the real wireguard-go hub is tested behind in ``test_vpn_hub_live.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from control_plane.app import create_app
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.models import Alert, AuditEntry, Device, Role
from control_plane.vpn.models import VpnPeer
from control_plane.vpn.runtime import VpnRuntime
from control_plane.vpn.uapi import HubPeerState, PeerChange
from edge import protocol as p
from tests.conftest import add_user, make_settings
from tests.support.wait import wait_until


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


HUB_KEY = key(200)


class FakeHub:
    """An in-memory hub interface that behaves like WireGuard's peer table."""

    def __init__(self) -> None:
        self.state: dict[str, HubPeerState] = {}
        self.applied: list[list[PeerChange]] = []

    def peers(self) -> dict[str, HubPeerState]:
        return {
            k: HubPeerState(k, v.endpoint, list(v.allowed_ips), v.latest_handshake)
            for k, v in self.state.items()
        }

    def apply(self, changes: Sequence[PeerChange]) -> None:
        self.applied.append(list(changes))
        for change in changes:
            if change.allowed_ips is None:
                self.state.pop(change.public_key, None)
                continue
            # Like WireGuard: an allowed IP belongs to one peer; assigning it moves it.
            for other in self.state.values():
                other.allowed_ips = [n for n in other.allowed_ips if n not in change.allowed_ips]
            peer = self.state.setdefault(change.public_key, HubPeerState(change.public_key))
            peer.allowed_ips = list(change.allowed_ips)

    def table(self) -> dict[str, list[str]]:
        return {k: sorted(v.allowed_ips) for k, v in self.state.items()}


@dataclass
class Cp:
    client: TestClient
    db_url: str
    admin: dict[str, str]
    tech: dict[str, str]
    carer: dict[str, str]
    hub: FakeHub
    factory: sessionmaker[Session]

    @property
    def runtime(self) -> VpnRuntime:
        runtime: VpnRuntime = self.client.app.state.vpn  # type: ignore[attr-defined]
        return runtime

    def register(self, device_id: str, group: str = "") -> None:
        r = self.client.post(
            "/api/v1/devices", json={"id": device_id, "group": group}, headers=self.admin
        )
        assert r.status_code == 201, r.text

    def report(self, device_id: str, public_key: str, pending: str | None = None) -> None:
        msg = p.TwinReported(
            ts=p.now(), vpn=p.VpnReported(public_key=public_key, pending_public_key=pending)
        )
        ingest = self.client.app.state.ingest  # type: ignore[attr-defined]
        ingest.handle(p.topic(p.TopicKind.TWIN_REPORTED, device_id), p.encode(msg))

    def peer(self, device_id: str) -> dict[str, object]:
        r = self.client.get(f"/api/v1/vpn/peers/{device_id}", headers=self.admin)
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body

    def desired_vpn(self, device_id: str) -> dict[str, object]:
        r = self.client.get(f"/api/v1/devices/{device_id}/twin", headers=self.admin)
        assert r.status_code == 200, r.text
        vpn: dict[str, object] = r.json()["desired"]["vpn"]
        return vpn


@pytest.fixture
def cp(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cp]:
    monkeypatch.setenv("DIFRONTE_VPN_HUB_PUBLIC_KEY", HUB_KEY)
    monkeypatch.setenv("DIFRONTE_VPN_HUB_ENDPOINT", "vpn.example.org:51820")
    monkeypatch.setenv("DIFRONTE_VPN_POOL", "10.77.0.0/24")
    monkeypatch.setenv("DIFRONTE_VPN_POOL6", "fd77::/64")
    monkeypatch.setenv("DIFRONTE_VPN_HANDSHAKE_ALERT_S", "600")
    migrate(db_url)
    admin = add_user(db_url, "admin@example.org", Role.ADMIN)
    tech = add_user(db_url, "tina@example.org", Role.TECHNICIAN)
    carer = add_user(db_url, "anna@example.org", Role.CAREGIVER)
    app = create_app(make_settings(db_url, None), run_migrations=False)
    hub = FakeHub()
    app.state.vpn.driver = hub  # the in-memory seam in place of a real hub interface
    engine = make_engine(db_url)
    try:
        with TestClient(app) as client:
            yield Cp(
                client,
                db_url,
                {"Authorization": f"Bearer {admin}"},
                {"Authorization": f"Bearer {tech}"},
                {"Authorization": f"Bearer {carer}"},
                hub,
                make_sessionmaker(engine),
            )
    finally:
        engine.dispose()


def test_a_device_is_enrolled_when_it_reports_its_key(cp: Cp) -> None:
    cp.register("pc-a", group="Milano Nord")
    cp.register("pc-b")
    cp.report("pc-a", key(1))
    cp.report("pc-b", key(2))
    a, b = cp.peer("pc-a"), cp.peer("pc-b")
    # The hub keeps .1; devices get the next addresses, and the IPv6 twin of each.
    assert (a["address"], a["address6"], a["public_key"]) == ("10.77.0.2", "fd77::2", key(1))
    assert b["address"] == "10.77.0.3"
    assert cp.desired_vpn("pc-a") == {
        "address": "10.77.0.2/32",
        "address6": "fd77::2/128",
        "hub_public_key": HUB_KEY,
        "hub_endpoint": "vpn.example.org:51820",
        "allowed_ips": ["10.77.0.1/32", "fd77::1/128"],
        "keepalive_s": 25,
        "accepted_keys": [key(1)],
    }
    # The hub follows right after the commit, live.
    wait_until(
        lambda: (
            cp.hub.table()
            == {key(1): ["10.77.0.2/32", "fd77::2/128"], key(2): ["10.77.0.3/32", "fd77::3/128"]}
        ),
        message="hub peers",
    )
    # Reporting the same key again changes nothing.
    version = cp.client.get("/api/v1/devices/pc-a/twin", headers=cp.admin).json()
    cp.report("pc-a", key(1))
    again = cp.client.get("/api/v1/devices/pc-a/twin", headers=cp.admin).json()
    assert again["desired_version"] == version["desired_version"]
    with transaction(cp.factory) as session:
        actions = session.execute(
            select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.object_id == "pc-a")
        ).all()
    assert ("vpn.enrolled", "device:pc-a") in actions
    # A broken key, then a good one; a key another device already holds is refused.
    cp.register("pc-c")
    cp.register("pc-d")
    cp.report("pc-c", "not-a-key")
    cp.report("pc-c", key(3))
    cp.report("pc-d", key(1))  # same key: a disk image copied from pc-a
    r = cp.client.get("/api/v1/vpn/peers/pc-d", headers=cp.admin)
    assert r.status_code == 404
    assert "has not reported a WireGuard key" in r.json()["detail"]
    with transaction(cp.factory) as session:
        open_alerts = {
            a.key: a.message
            for a in session.execute(select(Alert).where(Alert.status == "open")).scalars()
        }
    assert "vpn-key:pc-c" not in open_alerts  # resolved by the good report that followed
    assert "WireGuard key of pc-a (a cloned disk?)" in open_alerts["vpn-key:pc-d"]


def test_rotation_stages_the_new_key_then_moves_the_address(cp: Cp) -> None:
    cp.register("pc-a")
    cp.report("pc-a", key(1))
    wait_until(lambda: key(1) in cp.hub.table(), message="enrolled on the hub")

    cp.report("pc-a", key(1), pending=key(2))
    assert cp.desired_vpn("pc-a")["accepted_keys"] == [key(1), key(2)]
    # Both keys on the hub; the new one may shake hands but holds no address yet.
    wait_until(
        lambda: cp.hub.table() == {key(1): ["10.77.0.2/32", "fd77::2/128"], key(2): []},
        message="new key staged",
    )
    assert "(new key, rotating)" in cp.client.get("/api/v1/vpn/hub.conf", headers=cp.tech).text

    cp.report("pc-a", key(2))  # the device switched
    peer = cp.peer("pc-a")
    assert (peer["public_key"], peer["pending_public_key"], peer["address"]) == (
        key(2),
        None,
        "10.77.0.2",
    )
    assert cp.desired_vpn("pc-a")["accepted_keys"] == [key(2)]
    wait_until(
        lambda: cp.hub.table() == {key(2): ["10.77.0.2/32", "fd77::2/128"]},
        message="old key removed",
    )
    # A late report from before the switch must not bring the old key back.
    cp.report("pc-a", key(1), pending=key(2))
    assert cp.peer("pc-a")["public_key"] == key(2)
    # Re-imaged, with a fresh key and no rotation: the new key, on the same address.
    cp.report("pc-a", key(5))
    peer = cp.peer("pc-a")
    assert (peer["public_key"], peer["address"]) == (key(5), "10.77.0.2")
    wait_until(lambda: cp.hub.table() == {key(5): ["10.77.0.2/32", "fd77::2/128"]}, message="hub")


def test_rotation_completes_as_soon_as_the_hub_sees_the_new_key(cp: Cp) -> None:
    cp.register("pc-a")
    cp.report("pc-a", key(1))
    cp.report("pc-a", key(1), pending=key(2))
    wait_until(lambda: key(2) in cp.hub.table(), message="staged")
    # The device switched and shook hands; its report is still on its way.
    cp.hub.state[key(2)].latest_handshake = p.now() + 1
    wait_until(
        lambda: cp.hub.table() == {key(2): ["10.77.0.2/32", "fd77::2/128"]},
        message="the hub's fast poll to complete the rotation",
    )
    assert cp.peer("pc-a")["public_key"] == key(2)
    assert cp.desired_vpn("pc-a")["accepted_keys"] == [key(2)]


def test_inventory_for_technicians_and_revocation(cp: Cp) -> None:
    cp.register("pc-a", group="Milano Nord")
    cp.register("pc-b", group="Milano Nord")
    cp.register("pc-c")
    cp.register("pc-d")  # never reported a key: not in the inventory
    for n, device_id in enumerate(["pc-a", "pc-b", "pc-c"], start=1):
        cp.report(device_id, key(n))
    r = cp.client.get("/api/v1/vpn/inventory", headers=cp.tech)
    assert r.status_code == 200, r.text
    inv = r.json()
    assert inv["all"] == {"children": ["milano_nord", "ungrouped"]}
    assert inv["milano_nord"] == {"hosts": ["pc-a", "pc-b"]}
    assert inv["ungrouped"] == {"hosts": ["pc-c"]}
    host = inv["_meta"]["hostvars"]["pc-a"]
    assert host["ansible_host"] == "10.77.0.2"
    assert host["difronte_group"] == "Milano Nord"
    assert cp.client.get("/api/v1/vpn/inventory", headers=cp.carer).status_code == 403
    assert cp.client.get("/api/v1/vpn/inventory").status_code == 401
    online = cp.client.get("/api/v1/vpn/inventory?online=true", headers=cp.tech).json()
    assert online["_meta"]["hostvars"] == {}

    # Revoking a device takes it off the hub (right after the commit) and out of the inventory.
    wait_until(lambda: len(cp.hub.table()) == 3, message="all on the hub")
    assert cp.client.post("/api/v1/devices/pc-b/revoke", headers=cp.admin).status_code == 200
    wait_until(lambda: set(cp.hub.table()) == {key(1), key(3)}, message="revoked peer removed")
    inventory = cp.client.get("/api/v1/vpn/inventory", headers=cp.tech).json()
    assert set(inventory["_meta"]["hostvars"]) == {"pc-a", "pc-c"}
    # Its address is not handed to the next device.
    cp.register("pc-e")
    cp.report("pc-e", key(5))
    assert cp.peer("pc-e")["address"] == "10.77.0.5"

    conf = cp.client.get("/api/v1/vpn/hub.conf", headers=cp.tech)
    assert conf.status_code == 200
    assert conf.headers["content-type"].startswith("text/plain")
    assert f"PublicKey = {key(1)}\nAllowedIPs = 10.77.0.2/32, fd77::2/128" in conf.text
    assert key(2) not in conf.text
    # A technician may read the configuration but not drive the hub.
    assert cp.client.post("/api/v1/vpn/hub/sync", headers=cp.tech).status_code == 403
    wait_until(lambda: key(5) in cp.hub.table(), message="pc-e on the hub")
    cp.hub.state.clear()  # someone restarted the hub with an empty configuration
    r = cp.client.post("/api/v1/vpn/hub/sync", headers=cp.admin)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["added_or_changed"]) == sorted([key(1), key(3), key(5)])
    assert set(cp.hub.table()) == {key(1), key(3), key(5)}


def test_handshake_alert_opens_for_a_silent_online_device_and_resolves(cp: Cp) -> None:
    cp.register("pc-a")
    cp.report("pc-a", key(1))
    factory = cp.factory
    now = dt.datetime.now(dt.UTC)
    long_ago = now - dt.timedelta(hours=1)
    with transaction(factory) as session:
        device = session.get(Device, "pc-a")
        assert device is not None
        device.online, device.status_at = True, long_ago
        peer = session.get(VpnPeer, "pc-a")
        assert peer is not None
        peer.key_changed_at = long_ago
    cp.runtime.periodic_alerts(factory, now)
    with transaction(factory) as session:
        alert = session.execute(select(Alert).where(Alert.key == "vpn-handshake:pc-a")).scalar_one()
        assert alert.status == "open" and "no handshake" in alert.message
        assert alert.device_id == "pc-a"
    # The device's telemetry shows a fresh handshake: the alert resolves itself.
    batch = p.TelemetryBatch(
        ts=p.now(),
        seq=1,
        samples=[p.Sample(ts=p.now(), metrics={"vpn.handshake_age_s": 12.0, "vpn.up": 1.0})],
    )
    ingest = cp.client.app.state.ingest  # type: ignore[attr-defined]
    ingest.handle(p.topic(p.TopicKind.TELEMETRY, "pc-a"), p.encode(batch))
    cp.runtime.periodic_alerts(factory, dt.datetime.now(dt.UTC))
    with transaction(factory) as session:
        alert = session.execute(select(Alert).where(Alert.key == "vpn-handshake:pc-a")).scalar_one()
        assert alert.status == "resolved"


def test_devices_reported_before_the_vpn_was_configured_are_caught_up(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(db_url)
    admin = {"Authorization": f"Bearer {add_user(db_url, 'admin@example.org', Role.ADMIN)}"}
    msg = p.TwinReported(ts=p.now(), vpn=p.VpnReported(public_key=key(1)))
    with TestClient(create_app(make_settings(db_url, None))) as client:
        assert client.post("/api/v1/devices", json={"id": "pc-a"}, headers=admin).status_code == 201
        client.app.state.ingest.handle(  # type: ignore[attr-defined]
            p.topic(p.TopicKind.TWIN_REPORTED, "pc-a"), p.encode(msg)
        )
        # Not configured: the key is stored in the twin, nobody gets an address.
        assert client.get("/api/v1/vpn/peers", headers=admin).json() == []
        assert client.get("/api/v1/vpn/hub.conf", headers=admin).status_code == 409
    monkeypatch.setenv("DIFRONTE_VPN_HUB_PUBLIC_KEY", HUB_KEY)
    monkeypatch.setenv("DIFRONTE_VPN_HUB_ENDPOINT", "192.0.2.1:51820")
    app = create_app(make_settings(db_url, None))
    with TestClient(app) as client:
        # The periodic catch-up runs at start-up (and every hub_sync_s after).
        peers = wait_until(
            lambda: client.get("/api/v1/vpn/peers", headers=admin).json(), message="catch-up"
        )
        assert [(x["device_id"], x["address"]) for x in peers] == [("pc-a", "10.8.0.2")]
