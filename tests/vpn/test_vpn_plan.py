"""Pure decisions: address plan, hub and device peer changes, link changes, alert rule."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from control_plane.models import Device
from control_plane.vpn.addresses import PoolExhausted, allocate, paired_ipv6
from control_plane.vpn.hub import DesiredPeer, plan_hub, render_hub_config
from control_plane.vpn.models import VpnPeer
from control_plane.vpn.service import ansible_group, handshake_verdict, last_handshake
from control_plane.vpn.settings import VpnSettings
from control_plane.vpn.uapi import PeerChange
from edge import protocol as p
from edge.vpn.netconf import link_changes
from edge.vpn.plan import hub_peer_updates, should_promote, spec_from_desired, split_endpoint
from edge.vpn.wg import DeviceStatus, PeerStatus


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


HUB = key(1)
POOL = ipaddress.IPv4Network("10.8.0.0/16")


# -- address plan ------------------------------------------------------------------------------


def test_allocation_takes_the_lowest_free_address_skipping_the_hub() -> None:
    hub = ipaddress.IPv4Address("10.8.0.1")
    assert allocate(POOL, [], reserved={hub}) == ipaddress.IPv4Address("10.8.0.2")
    taken = ["10.8.0.2", "10.8.0.3", "10.8.0.5"]
    assert allocate(POOL, taken, reserved={hub}) == ipaddress.IPv4Address("10.8.0.4")


def test_a_full_pool_says_so() -> None:
    small = ipaddress.IPv4Network("10.9.0.0/30")  # hosts .1 and .2
    with pytest.raises(PoolExhausted, match=r"pool: every address of 10\.9\.0\.0/30 is taken"):
        allocate(small, ["10.9.0.2"], reserved={ipaddress.IPv4Address("10.9.0.1")})


def test_ipv6_address_mirrors_the_ipv4_offset() -> None:
    pool6 = ipaddress.IPv6Network("fd00:8::/64")
    assert paired_ipv6(ipaddress.IPv4Address("10.8.3.7"), POOL, pool6) == ipaddress.IPv6Address(
        "fd00:8::307"
    )


# -- settings ---------------------------------------------------------------------------------


def test_settings_refuse_bad_values_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="hub_public_key: not a WireGuard public key"):
        VpnSettings(hub_public_key="nope")
    with pytest.raises(ValidationError, match="hub_endpoint: must be host:port"):
        VpnSettings(hub_endpoint="vpn.example.org:99999")
    with pytest.raises(ValidationError, match=r"hub_address: 10\.9\.0\.1 is not in pool"):
        VpnSettings(hub_address="10.9.0.1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"allowed_ips\[1\]"):
        VpnSettings(allowed_ips=["10.8.0.1/32", "banana"])


def test_settings_defaults_give_devices_the_hub_only() -> None:
    s = VpnSettings(pool6="fd00:8::/64")  # type: ignore[arg-type]
    assert not s.enabled
    assert s.device_allowed_ips() == ["10.8.0.1/32", "fd00:8::1/128"]
    assert VpnSettings(hub_public_key=HUB, hub_endpoint="[2001:db8::1]:51820").enabled


# -- hub plan ---------------------------------------------------------------------------------


def _managed_pool(key_: str, nets: Sequence[str]) -> bool:
    return all(ipaddress.IPv4Network(n).subnet_of(POOL) for n in nets)


def test_hub_plan_adds_changes_and_removes_only_managed_peers() -> None:
    actual = {
        key(2): ["10.8.0.2/32"],  # right already
        key(3): ["10.8.0.9/32"],  # wrong address
        key(4): ["10.8.0.4/32"],  # revoked device: ours, goes
        key(9): ["192.168.50.0/24"],  # a technician's laptop, put there by hand: stays
    }
    desired = [
        DesiredPeer("pc-a", key(2), ("10.8.0.2/32",)),
        DesiredPeer("pc-b", key(3), ("10.8.0.3/32",)),
        DesiredPeer("pc-c", key(5), ("10.8.0.5/32",)),
    ]
    assert plan_hub(actual, desired, _managed_pool) == [
        PeerChange(key(3), ("10.8.0.3/32",)),
        PeerChange(key(5), ("10.8.0.5/32",)),
        PeerChange(key(4), None),
    ]


def test_hub_plan_during_a_rotation_stages_the_new_key_then_moves_the_address() -> None:
    old, new = key(2), key(3)
    staged = plan_hub(
        {old: ["10.8.0.2/32"]},
        [DesiredPeer("pc-a", old, ("10.8.0.2/32",)), DesiredPeer("pc-a", new, ())],
        _managed_pool,
    )
    assert staged == [PeerChange(new, ())]
    done = plan_hub(
        {old: ["10.8.0.2/32"], new: []},
        [DesiredPeer("pc-a", new, ("10.8.0.2/32",))],
        lambda k, nets: k in {old, new},
    )
    # The address moves to the new key first (in the same transaction), then the old key goes.
    assert done == [PeerChange(new, ("10.8.0.2/32",)), PeerChange(old, None)]


def test_rendered_hub_config() -> None:
    settings = VpnSettings(
        hub_public_key=HUB,
        hub_endpoint="vpn.example.org:51820",
        pool6=ipaddress.IPv6Network("fd00:8::/64"),
    )
    text = render_hub_config(
        settings,
        [
            DesiredPeer("pc-a", key(2), ("10.8.0.2/32", "fd00:8::2/128")),
            DesiredPeer("pc-a", key(3), (), "(new key, rotating)"),
        ],
    )
    assert "[Interface]\nAddress = 10.8.0.1/16, fd00:8::1/64\nListenPort = 51820\n" in text
    assert "PostUp = wg set %i private-key /etc/wireguard/difronte-hub.key" in text
    assert "PrivateKey" not in text
    assert f"[Peer]\n# pc-a\nPublicKey = {key(2)}\nAllowedIPs = 10.8.0.2/32, fd00:8::2/128" in text
    assert f"[Peer]\n# pc-a (new key, rotating)\nPublicKey = {key(3)}\n" in text


# -- device plan ------------------------------------------------------------------------------


def _desired(**overrides: object) -> p.VpnDesired:
    values: dict[str, object] = {
        "address": "10.8.0.2/32",
        "hub_public_key": HUB,
        "hub_endpoint": "vpn.example.org:51820",
        "allowed_ips": ["10.8.0.1/32"],
        "keepalive_s": 25,
    }
    values.update(overrides)
    return p.VpnDesired(**values)  # type: ignore[arg-type]


def test_spec_normalises_the_desired_section() -> None:
    spec = spec_from_desired(
        _desired(address6="fd00:8::2/128", allowed_ips=["10.8.0.1/24", "10.8.0.1/32"])
    )
    assert spec.addresses == ("10.8.0.2/32", "fd00:8::2/128")
    assert spec.allowed_ips == ("10.8.0.0/24", "10.8.0.1/32")
    assert (spec.hub_host, spec.hub_port) == ("vpn.example.org", 51820)
    assert split_endpoint("[2001:db8::1]:51820") == ("2001:db8::1", 51820)


def test_first_configuration_adds_the_hub_and_kicks_a_handshake() -> None:
    spec = spec_from_desired(_desired())
    updates = hub_peer_updates(
        DeviceStatus(), spec, "192.0.2.1:51820", set_endpoint=True, kick=False
    )
    assert len(updates) == 1
    hub = updates[0]
    assert hub.public_key == HUB and hub.endpoint == "192.0.2.1:51820"
    assert hub.allowed_ips == ("10.8.0.1/32",) and hub.kick_keepalive


def test_an_unchanged_tunnel_is_left_alone() -> None:
    spec = spec_from_desired(_desired())
    status = DeviceStatus(
        peers=(PeerStatus(HUB, "192.0.2.1:51820", ("10.8.0.1/32",), 1.0, 5, 5, 25),)
    )
    assert hub_peer_updates(status, spec, "192.0.2.1:51820", set_endpoint=False, kick=False) == []


def test_peer_changes_update_in_place_and_drop_strangers() -> None:
    spec = spec_from_desired(_desired(allowed_ips=["10.8.0.1/32", "10.9.0.0/24"], keepalive_s=15))
    status = DeviceStatus(
        peers=(
            PeerStatus(HUB, "192.0.2.1:51820", ("10.8.0.1/32",), 1.0, 5, 5, 25),
            PeerStatus(key(7), None, ("0.0.0.0/0",)),
        )
    )
    updates = hub_peer_updates(status, spec, "192.0.2.1:51820", set_endpoint=False, kick=False)
    # The hub peer is updated, never removed (its session, the tunnel, survives).
    assert [(u.public_key, u.remove) for u in updates] == [(HUB, False), (key(7), True)]
    assert updates[0].allowed_ips == ("10.8.0.1/32", "10.9.0.0/24")
    assert updates[0].keepalive_s == 15
    assert updates[0].endpoint is None and not updates[0].kick_keepalive


def test_promotion_waits_for_the_hub() -> None:
    spec = spec_from_desired(_desired(accepted_keys=[key(2)]))
    assert not should_promote(key(3), spec)
    assert should_promote(key(3), spec_from_desired(_desired(accepted_keys=[key(2), key(3)])))
    assert not should_promote(None, spec)


def test_link_changes() -> None:
    changes = link_changes(
        want_addresses=["10.8.0.2/32", "fd00:8::2/128"],
        want_routes=["10.8.0.1/32"],
        have_addresses=["10.8.0.2/32", "10.8.0.99/32"],
        have_routes=["10.7.0.0/16"],
        is_up=False,
    )
    assert changes.add_addresses == ("fd00:8::2/128",)
    assert changes.remove_addresses == ("10.8.0.99/32",)
    assert changes.add_routes == ("10.8.0.1/32",)
    assert changes.remove_routes == ("10.7.0.0/16",)
    assert changes.bring_up
    same = link_changes(
        want_addresses=["10.8.0.2/32"],
        want_routes=["10.8.0.1/32"],
        have_addresses=["10.8.0.2/32"],
        have_routes=["10.8.0.1/32"],
        is_up=True,
    )
    assert not same


# -- inventory names and the alert rule --------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("Milano Nord", "milano_nord"),
        ("", "ungrouped"),
        ("2-floor", "g_2_floor"),
        ("é", "ungrouped"),
    ],
)
def test_ansible_group_names(group: str, expected: str) -> None:
    assert ansible_group(group) == expected


NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
LONG_AGO = NOW - dt.timedelta(hours=2)


def _pair(**device: object) -> tuple[Device, VpnPeer]:
    d = Device(id="pc-a", online=True, status_at=LONG_AGO, last_telemetry=None, reported=None)
    for name, value in device.items():
        setattr(d, name, value)
    peer = VpnPeer(device_id="pc-a", public_key=key(2), address="10.8.0.2", key_changed_at=LONG_AGO)
    return d, peer


def test_handshake_rule() -> None:
    policy = 600.0
    # Online for long, never a handshake: stale.
    device, peer = _pair()
    assert handshake_verdict(device, peer, NOW, policy).stale is True
    # A recent handshake in telemetry (sample ts minus age): fine.
    device, peer = _pair(
        last_telemetry={"ts": NOW.timestamp() - 30, "metrics": {"vpn.handshake_age_s": 40.0}}
    )
    verdict = handshake_verdict(device, peer, NOW, policy)
    assert verdict.stale is False and verdict.last == NOW - dt.timedelta(seconds=70)
    # Off (between appointments) or just back online: not judged.
    device, peer = _pair(online=False)
    assert handshake_verdict(device, peer, NOW, policy).stale is None
    device, peer = _pair(status_at=NOW - dt.timedelta(seconds=60))
    assert handshake_verdict(device, peer, NOW, policy).stale is None
    # The hub's own view counts too.
    device, peer = _pair()
    peer.hub_handshake_at = NOW - dt.timedelta(seconds=10)
    assert last_handshake(device, peer) == peer.hub_handshake_at


# -- kernel WireGuard (no module here: its netlink translation is checked on its own) -----------


class _Nla(dict[str, object]):
    """Stands in for a decoded pyroute2 message: ``get_attr`` and ``get`` like the real one."""

    def __init__(self, attrs: dict[str, object] | None = None, **fields: object) -> None:
        super().__init__(fields)
        self.attrs = attrs or {}

    def get_attr(self, name: str) -> object:
        return self.attrs.get(name)


def test_kernel_device_dump_is_read_like_the_uapi_one() -> None:
    from edge.vpn.backend import status_from_netlink

    peer_a = _Nla(
        {
            "WGPEER_A_PUBLIC_KEY": key(2).encode(),  # pyroute2 gives base64 bytes
            "WGPEER_A_ENDPOINT": _Nla(addr="192.0.2.7", port=40123),
            "WGPEER_A_LAST_HANDSHAKE_TIME": _Nla(tv_sec=1700000000, tv_nsec=500000000),
            "WGPEER_A_RX_BYTES": 180,
            "WGPEER_A_TX_BYTES": 92,
            "WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL": 25,
            "WGPEER_A_ALLOWEDIPS": [_Nla(addr="10.8.0.2/32")],
        }
    )
    # A big peer list spans several messages; the rest of pc-a's addresses come in the second.
    more_a = _Nla(
        {"WGPEER_A_PUBLIC_KEY": key(2), "WGPEER_A_ALLOWEDIPS": [_Nla(addr="fd00::2/128")]}
    )
    first = _Nla(
        {
            "WGDEVICE_A_PRIVATE_KEY": base64.b64encode(bytes(32)),
            "WGDEVICE_A_LISTEN_PORT": 51820,
            "WGDEVICE_A_PEERS": [peer_a],
        }
    )
    status = status_from_netlink([first, _Nla({"WGDEVICE_A_PEERS": [more_a]})])
    assert status.private_key == bytes(32) and status.listen_port == 51820
    a = status.peer(key(2))
    assert a is not None
    assert a.allowed_ips == ("10.8.0.2/32", "fd00::2/128")
    assert a.endpoint == "192.0.2.7:40123"
    assert a.latest_handshake == pytest.approx(1700000000.5)
    assert (a.rx_bytes, a.tx_bytes, a.keepalive_s) == (180, 92, 25)


def test_peer_updates_become_pyroute2_peer_dicts() -> None:
    from edge.vpn.backend import netlink_peer
    from edge.vpn.wg import PeerUpdate

    assert netlink_peer(
        PeerUpdate(
            public_key=HUB, endpoint="[2001:db8::1]:51820", keepalive_s=25, allowed_ips=("::/0",)
        )
    ) == {
        "public_key": HUB,
        "endpoint_addr": "2001:db8::1",
        "endpoint_port": 51820,
        "persistent_keepalive": 25,
        "allowed_ips": ["::/0"],
        "replace_allowed_ips": True,
    }
    assert netlink_peer(PeerUpdate(public_key=HUB, remove=True)) == {
        "public_key": HUB,
        "remove": True,
    }
