"""The control plane drives a real hub: wireguard-go through its UAPI socket, live.

The control plane's VPN services and hub driver run against a real database and a real hub in
a namespace; a real TunnelManager is the device. The MQTT hop between them is played by
:class:`Bridge` (reports go to the ingest service, desired sections come back), which lets the
test run a key rotation step by step: stage, switch, complete.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from control_plane.db import make_engine, make_sessionmaker, migrate, transaction, utcnow
from control_plane.models import Device
from control_plane.twin import build_desired
from control_plane.vpn.hub import UapiHub, hub_driver
from control_plane.vpn.models import VpnPeer
from control_plane.vpn.runtime import VpnRuntime
from control_plane.vpn.service import handle_report
from control_plane.vpn.settings import VpnSettings
from edge.config import VpnConfig
from edge.vpn import TunnelManager
from edge.vpn.keys import generate_private_key, public_key, to_base64
from tests.support.wait import wait_until
from tests.vpn.netns import Lab, NetnsLoop, TcpSession, UdpEcho, WgHub, run, udp_reaches

pytestmark = [pytest.mark.netns]


@dataclass
class Device_:
    device_id: str
    ns: str
    address: str
    loop: NetnsLoop
    manager: TunnelManager
    runner: concurrent.futures.Future[None]


@dataclass
class World:
    lab: Lab
    hub: WgHub
    hub_ns: str
    runtime: VpnRuntime
    settings: VpnSettings
    factory: sessionmaker[Session]
    tmp: Path

    def add_device(self, device_id: str, n: int) -> Device_:
        ns = self.lab.netns(f"d{n}")
        self.lab.link(self.hub_ns, ns, f"172.30.{n}.1/24", f"172.30.{n}.2/24")
        # The hub's one public address, as a device at home would route to it.
        run(["ip", "route", "add", "172.30.0.1/32", "via", f"172.30.{n}.1"], ns=ns)
        with transaction(self.factory) as session:
            session.add(Device(id=device_id, mqtt_password_hash="-"))
        loop = self.lab.loop(ns)
        config = VpnConfig(interface=self.lab.ifname(f"d{n}"), refresh_s=0.5)
        manager = loop.call(lambda: TunnelManager(config, self.tmp / device_id))
        runner = loop.submit(manager.run())
        self.lab.on_close(lambda: _cancel(runner))
        wait_until(lambda: manager.public_key, message="device key")
        echo = UdpEcho(ns)
        self.lab.on_close(echo.close)
        return Device_(device_id, ns, "", loop, manager, runner)

    def bridge(self, dev: Device_) -> None:
        """One round trip over the (here simulated) MQTT: report in, hub sync, desired out."""
        reported = dev.loop.call(dev.manager.reported)
        assert reported is not None
        with transaction(self.factory) as session:
            device = session.get(Device, dev.device_id)
            assert device is not None
            device.reported = {"vpn": msgspec.to_builtins(reported)}
            handle_report(session, self.settings, device, reported, utcnow())
        self.runtime.sync_hub()
        with self.factory() as session:
            device = session.get(Device, dev.device_id)
            assert device is not None
            desired = build_desired(device).vpn if device.revoked_at is None else None
            peer = session.get(VpnPeer, dev.device_id)
            dev.address = peer.address if peer else ""
        if desired is not None:
            dev.loop.call(lambda: dev.manager.set_desired(desired))

    def peer(self, device_id: str) -> VpnPeer:
        with self.factory() as session:
            peer = session.get(VpnPeer, device_id)
            assert peer is not None
            return peer


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    migrate(db_url)
    engine: Engine = make_engine(db_url)
    lab = Lab()
    try:
        hub_ns = lab.netns("hub")
        run(["ip", "addr", "add", "172.30.0.1/32", "dev", "lo"], ns=hub_ns)
        hub = WgHub(hub_ns, lab.ifname("h"), tmp_path / "hub", address="10.77.0.1/24")
        settings = VpnSettings(
            hub_public_key=hub.public_key,
            hub_endpoint="172.30.0.1:51820",
            pool=ipaddress.IPv4Network("10.77.0.0/24"),
            hub_apply="userspace",
            hub_interface=hub.ifname,
        )
        factory = make_sessionmaker(engine)
        driver = hub_driver(settings)
        assert isinstance(driver, UapiHub)
        runtime = VpnRuntime(settings, factory, driver)
        yield World(lab, hub, hub_ns, runtime, settings, factory, tmp_path)
    finally:
        lab.close()
        engine.dispose()


def test_enrolled_devices_get_hub_peers_live_and_revoked_ones_lose_them(world: World) -> None:
    # A peer a person added to the hub by hand (a technician's laptop) is never touched.
    laptop = to_base64(public_key(generate_private_key()))
    world.hub.set_peer(laptop, ["192.168.77.0/24"])
    a = world.add_device("pc-a", 1)
    world.bridge(a)
    assert a.address == "10.77.0.2"
    wait_until(lambda: udp_reaches(world.hub_ns, a.address), timeout=20, message="pc-a up")
    b = world.add_device("pc-b", 2)
    world.bridge(b)
    wait_until(lambda: udp_reaches(world.hub_ns, b.address), timeout=20, message="pc-b up")
    assert world.hub.peers() == {
        laptop: ["192.168.77.0/24"],
        a.manager.public_key: ["10.77.0.2/32"],
        b.manager.public_key: ["10.77.0.3/32"],
    }
    # The hub's own view of each peer lands in the database.
    world.runtime.sync_hub()
    assert world.peer("pc-a").hub_handshake_at is not None
    assert (world.peer("pc-a").hub_endpoint or "").startswith("172.30.1.2:")

    # Revoked: the peer goes at the next sync, live, and the tunnel with it.
    with transaction(world.factory) as session:
        device = session.get(Device, "pc-b")
        assert device is not None
        device.revoked_at = utcnow()
    result = world.runtime.sync_hub()
    assert [c.public_key for c in result.changes if c.remove] == [b.manager.public_key]
    assert set(world.hub.peers()) == {laptop, a.manager.public_key}
    assert not udp_reaches(world.hub_ns, b.address)
    assert udp_reaches(world.hub_ns, a.address)  # the others never noticed


def test_key_rotation_through_the_control_plane_keeps_the_device_reachable(world: World) -> None:
    dev = world.add_device("pc-a", 1)
    world.bridge(dev)
    wait_until(lambda: udp_reaches(world.hub_ns, dev.address), timeout=20, message="tunnel up")
    old = dev.manager.public_key
    session = TcpSession(world.lab, server_ns=dev.ns, client_ns=world.hub_ns, address=dev.address)
    session.exchange(b"before")

    # The jobs runner calls this for a rotate-vpn-key execution.
    rotation = dev.loop.submit(dev.manager.rotate_key(timeout=30))
    new = str(wait_until(lambda: dev.manager.pending_public_key, message="pending key"))
    world.bridge(dev)  # report (pending) -> staged on the hub -> accepted_keys to the device
    assert world.peer("pc-a").pending_public_key == new
    assert world.hub.peers().get(new) == []  # on the hub, allowed to shake hands only
    # The device switches and shakes hands; the hub's poll completes the rotation.
    wait_until(lambda: world.runtime.sync_hub().rotated == ["pc-a"], message="hub completes")
    assert world.hub.peers() == {new: ["10.77.0.2/32"]}
    world.bridge(dev)  # the device hears its new key is the only one
    assert rotation.result(30) == new
    peer = world.peer("pc-a")
    assert (peer.public_key, peer.previous_public_key, peer.pending_public_key) == (new, old, None)
    session.exchange(b"after")
    assert udp_reaches(world.hub_ns, dev.address)


def _cancel(future: concurrent.futures.Future[None]) -> None:
    future.cancel()
