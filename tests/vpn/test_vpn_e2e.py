"""End to end: real edge daemons in device namespaces, a real hub, the real control plane.

Topology, all inside namespaces this test makes (the root namespace gets no test address):

    hub ns:  wireguard-go hub 10.77.0.1/24, public address 172.30.0.1 (on lo)
             veth 172.30.n.1/24  <->  device ns n: 172.30.n.2/24, default to the hub
    device ns: a real ``difronte-edge`` process (its TunnelManager falls back to wireguard-go,
             the kernel here has no WireGuard), an sshd, a UDP echo

The control plane runs in this process under uvicorn (127.0.0.1) and drives the hub through
its UAPI socket; devices reach the session's Mosquitto, and the technician on the hub reaches
the control plane's inventory, through 127.0.0.1 relays inside their namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.app import create_app
from control_plane.db import migrate
from control_plane.models import Role
from edge.config import MqttConfig, VpnConfig
from tests.conftest import add_user, make_settings, wait_mqtt_ready
from tests.support.broker import Mosquitto
from tests.support.browser import LiveServer
from tests.support.edge import write_edge_config
from tests.support.wait import wait_until
from tests.vpn.netns import Lab, UdpEcho, WgHub, ns_call, run, udp_reaches

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "ansible" / "inventory" / "difronte_inventory.py"
HUB_PUBLIC = "172.30.0.1"
CP_PORT_IN_NS = 8000  # where the technician on the hub finds the control plane
MQTT_PORT_IN_NS = 1883  # where a device finds the broker

for tool in ("wireguard-go", "wg", "sshd", "ansible", "ssh-keygen"):
    if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
        pytestmark.append(pytest.mark.skip(reason=f"{tool} is not installed (./dev installs it)"))


@dataclass
class EdgeDevice:
    device_id: str
    ns: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class World:
    lab: Lab
    tmp: Path
    broker: Mosquitto
    hub: WgHub
    hub_ns: str
    server: LiveServer
    admin: dict[str, str]
    tech_token: str
    devices: dict[str, EdgeDevice] = field(default_factory=dict)

    def api(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Call the control plane's API (as the admin unless ``headers`` say otherwise)."""
        headers = headers if headers is not None else self.admin
        return httpx.request(method, self.server.url + path, headers=headers, timeout=20, **kwargs)

    def add_device(self, device_id: str, n: int, group: str) -> EdgeDevice:
        """A PC at home: its namespace and link to the hub, sshd, and a real edge daemon."""
        lab = self.lab
        ns = lab.netns(f"d{n}")
        lab.link(self.hub_ns, ns, f"172.30.{n}.1/24", f"172.30.{n}.2/24")
        run(["ip", "route", "add", "default", "via", f"172.30.{n}.1"], ns=ns)
        lab.forward(ns, MQTT_PORT_IN_NS, self.broker.port)
        echo = UdpEcho(ns)
        lab.on_close(echo.close)
        self._sshd(ns, n)
        r = self.api("POST", "/api/v1/devices", json={"id": device_id, "group": group})
        assert r.status_code == 201, r.text
        config = write_edge_config(
            self.tmp / "edges",
            device_id,
            r.json()["mqtt_password"],
            self.broker,
            mqtt=MqttConfig(
                host="127.0.0.1",
                port=MQTT_PORT_IN_NS,
                password=r.json()["mqtt_password"],
                keepalive=5,
                backoff_cap_s=2.0,
            ),
            vpn=VpnConfig(interface=lab.ifname(f"d{n}"), refresh_s=1.0),
        )
        log = self.tmp / f"{device_id}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = lab.popen(
            ns, [sys.executable, "-m", "edge.cli", "run", "--config", str(config)], log, env=env
        )
        device = EdgeDevice(device_id, ns, proc, log)
        self.devices[device_id] = device
        return device

    def _sshd(self, ns: str, n: int) -> None:
        ssh = self.tmp / "ssh"
        conf = ssh / f"sshd-{n}.conf"
        conf.write_text(
            "Port 22\nListenAddress 0.0.0.0\n"
            f"HostKey {ssh / 'host_key'}\nPidFile {ssh / f'sshd-{n}.pid'}\n"
            f"AuthorizedKeysFile {ssh / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        )
        self.lab.popen(ns, ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], ssh / f"sshd-{n}.log")

    def tunnel_address(self, device_id: str) -> str:
        r = self.api("GET", f"/api/v1/vpn/peers/{device_id}")
        assert r.status_code == 200, r.text
        address: str = r.json()["address"]
        return address

    def wait_reachable(self, device_id: str) -> str:
        device = self.devices[device_id]

        def enrolled() -> str | None:
            r = self.api("GET", f"/api/v1/vpn/peers/{device_id}")
            return r.json()["address"] if r.status_code == 200 else None

        address = wait_until(enrolled, timeout=30, message=f"{device_id} enrolled")
        assert isinstance(address, str)
        try:
            wait_until(
                lambda: udp_reaches(self.hub_ns, address), timeout=30, message=f"{device_id} up"
            )
        except AssertionError:
            print(device.output()[-4000:])
            raise
        return address


@pytest.fixture(scope="module")
def world(broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("vpn-e2e")
    (tmp / "ssh").mkdir()
    lab = Lab()
    server: LiveServer | None = None
    try:
        hub_ns = lab.netns("hub")
        run(["ip", "addr", "add", f"{HUB_PUBLIC}/32", "dev", "lo"], ns=hub_ns)
        # The hub routes, as a real one does for technicians: device isolation must not rest
        # on the hub refusing to forward, but on each device accepting only the hub's address.
        ns_call(hub_ns, lambda: Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n"))
        hub = WgHub(hub_ns, lab.ifname("h"), tmp / "hub", address="10.77.0.1/24")
        echo = UdpEcho(hub_ns)
        lab.on_close(echo.close)
        _ssh_keys(tmp / "ssh")

        url = f"sqlite:///{tmp / 'cp.db'}"
        migrate(url)
        admin = add_user(url, "admin@example.org", Role.ADMIN)
        tech = add_user(url, "tina@example.org", Role.TECHNICIAN)
        vpn_env = {
            "DIFRONTE_VPN_HUB_PUBLIC_KEY": hub.public_key,
            "DIFRONTE_VPN_HUB_ENDPOINT": f"{HUB_PUBLIC}:51820",
            "DIFRONTE_VPN_POOL": "10.77.0.0/24",
            "DIFRONTE_VPN_HUB_APPLY": "userspace",
            "DIFRONTE_VPN_HUB_INTERFACE": hub.ifname,
        }
        with pytest.MonkeyPatch.context() as mp:
            for name, value in vpn_env.items():
                mp.setenv(name, value)
            app = create_app(make_settings(url, broker), run_migrations=False)
        server = LiveServer(app).start()
        wait_mqtt_ready(app)
        lab.forward(hub_ns, CP_PORT_IN_NS, server.port)
        yield World(
            lab, tmp, broker, hub, hub_ns, server, {"Authorization": f"Bearer {admin}"}, tech
        )
    finally:
        try:
            lab.close()  # the edge daemons, sshd and wireguard-go go with their namespaces
        finally:
            if server is not None:
                server.stop()


def _ssh_keys(ssh: Path) -> None:
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / name)], check=True
        )
    (ssh / "authorized_keys").write_text((ssh / "client_key.pub").read_text())
    # sshd's privilege separation directory, as the Debian package's unit would make it.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


def test_devices_enroll_and_only_the_hub_reaches_them(world: World) -> None:
    world.add_device("pc-a", 1, "Milano Nord")
    world.add_device("pc-b", 2, "Milano Nord")
    a = world.wait_reachable("pc-a")
    b = world.wait_reachable("pc-b")
    assert {a, b} == {"10.77.0.2", "10.77.0.3"}
    # The twin round trip: each daemon reports the tunnel up, and its handshake in telemetry.
    for device_id in ("pc-a", "pc-b"):

        def reported_up(device_id: str = device_id) -> bool:
            body = world.api("GET", f"/api/v1/devices/{device_id}").json()
            vpn = (body.get("reported") or {}).get("vpn") or {}
            metrics = (body.get("last_telemetry") or {}).get("metrics") or {}
            return vpn.get("state") == "up" and "vpn.handshake_age_s" in metrics

        wait_until(reported_up, timeout=30, message=f"{device_id} reports its tunnel")
    # Each device reaches the hub through its tunnel, never the other device.
    pc_a, pc_b = world.devices["pc-a"], world.devices["pc-b"]
    assert udp_reaches(pc_a.ns, "10.77.0.1")
    assert udp_reaches(pc_b.ns, "10.77.0.1")
    assert not udp_reaches(pc_a.ns, b)
    assert not udp_reaches(pc_b.ns, a)
    peers = world.hub.peers()
    assert sorted(peers.values()) == [["10.77.0.2/32"], ["10.77.0.3/32"]]


def test_ansible_reaches_sshd_over_the_tunnel_with_the_dynamic_inventory(world: World) -> None:
    for device_id, n in (("pc-a", 1), ("pc-b", 2)):
        if device_id not in world.devices:
            world.add_device(device_id, n, "Milano Nord")
        world.wait_reachable(device_id)
    env = {
        **os.environ,
        "DIFRONTE_URL": f"http://127.0.0.1:{CP_PORT_IN_NS}",
        "DIFRONTE_TOKEN": world.tech_token,
        "HOME": str(world.tmp),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": "-o UserKnownHostsFile=/dev/null -o ControlMaster=no",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_LOCAL_TEMP": str(world.tmp / "ansible-local"),
        "ANSIBLE_REMOTE_TMP": "/tmp/.difronte-ansible",
        "ANSIBLE_NOCOLOR": "1",
    }
    inventory = subprocess.run(
        ["ip", "netns", "exec", world.hub_ns, "ansible-inventory", "-i", str(INVENTORY), "--graph"],
        capture_output=True,
        text=True,
        env=env,
        cwd=world.tmp,
        timeout=120,
    )
    assert inventory.returncode == 0, inventory.stderr
    assert "@milano_nord:" in inventory.stdout and "pc-a" in inventory.stdout
    ping = subprocess.run(
        [
            "ip", "netns", "exec", world.hub_ns,
            "ansible", "milano_nord", "-i", str(INVENTORY), "-m", "ping", "-o",
            "-u", "root", "--private-key", str(world.tmp / "ssh" / "client_key"),
        ],
        capture_output=True, text=True, env=env, cwd=world.tmp, timeout=180,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr
    lines = [line for line in ping.stdout.splitlines() if "SUCCESS" in line]
    assert sorted(line.split()[0] for line in lines) == ["pc-a", "pc-b"]
    assert all('"ping": "pong"' in line for line in lines)


def test_a_revoked_device_loses_its_tunnel(world: World) -> None:
    world.add_device("pc-c", 3, "")
    address = world.wait_reachable("pc-c")
    key = world.api("GET", "/api/v1/vpn/peers/pc-c").json()["public_key"]
    assert key in world.hub.peers()
    r = world.api("POST", "/api/v1/devices/pc-c/revoke")
    assert r.status_code == 200, r.text
    wait_until(lambda: key not in world.hub.peers(), timeout=15, message="peer removed")
    assert not udp_reaches(world.hub_ns, address)
    inventory = world.api(
        "GET", "/api/v1/vpn/inventory", headers={"Authorization": f"Bearer {world.tech_token}"}
    ).json()
    assert "pc-c" not in inventory["_meta"]["hostvars"]
