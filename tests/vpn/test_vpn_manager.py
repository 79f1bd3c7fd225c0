"""The edge's TunnelManager on a real tunnel: wireguard-go in namespaces made by the test.

The manager runs in this process, in an event loop whose thread lives in the device's
namespace; the hub is wireguard-go in its own namespace, driven with the real ``wg`` tool.
There is no kernel WireGuard here, so ``backend="auto"`` also proves the fallback.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from edge import protocol as p
from edge.config import VpnConfig
from edge.vpn import RotationError, TunnelManager
from tests.support.wait import wait_until
from tests.vpn.netns import Lab, NetnsLoop, TcpSession, UdpEcho, WgHub, run, udp_reaches

pytestmark = [pytest.mark.netns]

DEVICE_ADDRESS = "10.77.0.2"
DEVICE_ADDRESS6 = "fd77::2"


@dataclass
class Tunnel:
    lab: Lab
    hub: WgHub
    hub_ns: str
    dev_ns: str
    loop: NetnsLoop
    manager: TunnelManager
    ifname: str
    runner: concurrent.futures.Future[None]
    desired: p.VpnDesired
    reports: list[p.VpnReported]

    def set_desired(self, desired: p.VpnDesired) -> None:
        self.desired = desired
        self.loop.call(lambda: self.manager.set_desired(desired))

    def wireguard_go_pids(self) -> list[int]:
        pids = []
        for pid in self.lab.pids(self.dev_ns):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"wireguard-go") and self.ifname.encode() in cmdline:
                pids.append(pid)
        return pids

    def link_index(self) -> int:
        out = run(["ip", "-o", "link", "show", self.ifname], ns=self.dev_ns)
        return int(out.split(":", 1)[0])

    def addresses(self) -> str:
        return run(["ip", "-o", "addr", "show", "dev", self.ifname], ns=self.dev_ns)


@pytest.fixture
def tunnel(tmp_path: Path) -> Iterator[Tunnel]:
    lab = Lab()
    try:
        hub_ns, dev_ns = lab.netns("hub"), lab.netns("dev")
        lab.link(hub_ns, dev_ns, "172.30.1.1/24", "172.30.1.2/24")
        hub = WgHub(hub_ns, lab.ifname("h"), tmp_path / "hub", address="10.77.0.1/24")
        run(["ip", "addr", "add", "fd77::1/64", "dev", hub.ifname], ns=hub_ns)
        loop = lab.loop(dev_ns)
        ifname = lab.ifname("d")
        reports: list[p.VpnReported] = []
        config = VpnConfig(interface=ifname, backend="auto", refresh_s=0.5)

        def make() -> TunnelManager:
            async def on_state() -> None:
                reported = manager.reported()
                if reported is not None:
                    reports.append(reported)

            manager = TunnelManager(config, tmp_path / "device", on_state=on_state)
            return manager

        manager = loop.call(make)
        runner = loop.submit(manager.run())
        lab.on_close(lambda: _cancel(runner))
        device_key = str(wait_until(lambda: manager.public_key, message="the device's key"))
        hub.set_peer(device_key, [f"{DEVICE_ADDRESS}/32", f"{DEVICE_ADDRESS6}/128"])
        desired = p.VpnDesired(
            address=f"{DEVICE_ADDRESS}/32",
            address6=f"{DEVICE_ADDRESS6}/128",
            hub_public_key=hub.public_key,
            hub_endpoint="172.30.1.1:51820",
            allowed_ips=["10.77.0.1/32", "fd77::1/128"],
            keepalive_s=25,
            accepted_keys=[device_key],
        )
        t = Tunnel(lab, hub, hub_ns, dev_ns, loop, manager, ifname, runner, desired, reports)
        t.set_desired(desired)
        for host in ("0.0.0.0", "::"):
            echo = UdpEcho(dev_ns, host=host)
            lab.on_close(echo.close)
        wait_until(lambda: udp_reaches(hub_ns, DEVICE_ADDRESS), timeout=20, message="tunnel up")
        yield t
    finally:
        lab.close()


def test_the_tunnel_comes_up_and_reports_its_state(tunnel: Tunnel) -> None:
    t = tunnel
    assert f"inet {DEVICE_ADDRESS}/32" in t.addresses()
    # Dual stack: the IPv6 tunnel address answers too.
    wait_until(lambda: udp_reaches(t.hub_ns, DEVICE_ADDRESS6), timeout=20, message="IPv6")
    routes = run(["ip", "route", "show", "dev", t.ifname], ns=t.dev_ns)
    assert "10.77.0.1 proto static" in routes

    def handshaken() -> p.VpnReported | None:
        reported = t.manager.reported()
        return reported if reported is not None and reported.latest_handshake else None

    reported = wait_until(handshaken, message="handshake")
    assert reported is not None
    assert reported.state == "up" and reported.error is None
    assert reported.public_key == t.desired.accepted_keys[0]
    assert [r.state for r in t.reports][-1] == "up"
    metrics = t.loop.call(t.manager.metrics)
    assert metrics["vpn.up"] == 1.0
    assert 0 <= metrics["vpn.handshake_age_s"] < 120
    assert metrics["vpn.tx_bytes"] > 0


def test_peer_changes_apply_without_dropping_the_tunnel(tunnel: Tunnel) -> None:
    t = tunnel
    session = _session(t)
    session.exchange(b"before")
    pids, index = t.wireguard_go_pids(), t.link_index()
    assert len(pids) == 1
    # A technician subnet is added and the keepalive changes: only the peer is updated.
    t.set_desired(
        msgspec.structs.replace(
            t.desired, allowed_ips=["10.77.0.1/32", "10.78.0.0/24"], keepalive_s=15
        )
    )
    wait_until(
        lambda: "10.78.0.0/24" in run(["ip", "route", "show", "dev", t.ifname], ns=t.dev_ns),
        message="new route",
    )
    dump = run(["wg", "show", t.ifname, "dump"], ns=t.dev_ns).splitlines()[1].split("\t")
    assert dump[3] == "10.77.0.1/32,10.78.0.0/24" and dump[7] == "15"
    session.exchange(b"after")  # the same TCP connection: nothing was torn down
    assert t.wireguard_go_pids() == pids
    assert t.link_index() == index


def test_netlink_changes_are_put_back(tunnel: Tunnel) -> None:
    t = tunnel
    run(["ip", "addr", "flush", "dev", t.ifname], ns=t.dev_ns)
    run(["ip", "route", "del", "10.77.0.1/32", "dev", t.ifname], ns=t.dev_ns, check=False)
    wait_until(lambda: f"inet {DEVICE_ADDRESS}/32" in t.addresses(), message="address back")
    run(["ip", "link", "set", t.ifname, "down"], ns=t.dev_ns)
    wait_until(
        lambda: re.search(
            r"<[^>]*\bUP\b", run(["ip", "-o", "link", "show", t.ifname], ns=t.dev_ns)
        ),
        timeout=20,
        message="the link set up again",
    )
    wait_until(
        lambda: "10.77.0.1" in run(["ip", "route", "show", "dev", t.ifname], ns=t.dev_ns),
        message="the route to the hub back",
    )
    # Traffic again. A link taken down makes wireguard-go drop its sessions: a new handshake
    # follows at once (persistent keepalive) or, at worst, when WireGuard's own timers make the
    # hub start one (about 15 s after its packets go unanswered). Wait for those timers.
    wait_until(
        lambda: udp_reaches(t.hub_ns, DEVICE_ADDRESS),
        timeout=60,
        message="the tunnel carrying traffic again",
    )


def test_a_dead_wireguard_go_is_replaced(tunnel: Tunnel) -> None:
    t = tunnel
    (pid,) = t.wireguard_go_pids()
    subprocess.run(["kill", "-9", str(pid)], check=True)
    wait_until(lambda: t.wireguard_go_pids() not in ([], [pid]), timeout=20, message="restart")
    wait_until(lambda: udp_reaches(t.hub_ns, DEVICE_ADDRESS), timeout=20, message="tunnel back")


def test_key_rotation_keeps_the_device_reachable(tunnel: Tunnel, tmp_path: Path) -> None:
    t = tunnel
    old = t.manager.public_key
    assert old is not None
    session = _session(t)
    session.exchange(b"before rotation")
    rotation = t.loop.submit(t.manager.rotate_key(timeout=30))
    new = str(wait_until(lambda: t.manager.pending_public_key, message="pending key"))
    assert wait_until(lambda: any(r.pending_public_key == new for r in t.reports), message="report")
    # What the control plane does: stage the new key on the hub (no address yet), accept it...
    t.hub.set_peer(new, [])
    t.set_desired(msgspec.structs.replace(t.desired, accepted_keys=[old, new]))
    # ...and move the address to it once it has shaken hands, dropping the old key.
    wait_until(lambda: t.hub.handshake(new) > 0, message="handshake with the new key")
    t.hub.set_peer(new, [f"{DEVICE_ADDRESS}/32"])
    t.hub.remove_peer(old)
    assert rotation.result(30) == new
    assert t.manager.public_key == new and t.manager.pending_public_key is None
    key_dir = tmp_path / "device"
    assert sorted(f.name for f in key_dir.iterdir()) == ["private.key"]
    session.exchange(b"after rotation")  # the connection opened before the rotation lives on
    assert udp_reaches(t.hub_ns, DEVICE_ADDRESS)
    assert set(t.hub.peers()) == {new}


def test_a_rotation_the_hub_never_accepts_keeps_the_old_key(tunnel: Tunnel) -> None:
    t = tunnel
    old = t.manager.public_key
    with pytest.raises(RotationError, match="did not accept the new key within 1s"):
        t.loop.submit(t.manager.rotate_key(timeout=1)).result(30)
    assert t.manager.public_key == old and t.manager.pending_public_key is None
    assert udp_reaches(t.hub_ns, DEVICE_ADDRESS)


def _session(t: Tunnel) -> TcpSession:
    return TcpSession(t.lab, server_ns=t.dev_ns, client_ns=t.hub_ns, address=DEVICE_ADDRESS)


def _cancel(future: concurrent.futures.Future[None]) -> None:
    future.cancel()
