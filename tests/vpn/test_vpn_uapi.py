"""The UAPI text protocol: the edge's client and the control plane's copy agree on it."""

from __future__ import annotations

import base64

import pytest

from control_plane.vpn import uapi as cp_uapi
from edge.vpn import uapi as edge_uapi
from edge.vpn.wg import PeerUpdate

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(1, 33))).decode()

# An answer to get=1 as wireguard-go writes it (two peers, one never seen).
GET_ANSWER = (
    "private_key=" + "11" * 32 + "\n"
    "listen_port=51820\n"
    "public_key=" + bytes(range(32)).hex() + "\n"
    "preshared_key=" + "00" * 32 + "\n"
    "protocol_version=1\n"
    "endpoint=192.0.2.7:40123\n"
    "last_handshake_time_sec=1700000000\n"
    "last_handshake_time_nsec=500000000\n"
    "tx_bytes=92\n"
    "rx_bytes=180\n"
    "persistent_keepalive_interval=25\n"
    "allowed_ip=10.8.0.2/32\n"
    "allowed_ip=fd00::2/128\n"
    "public_key=" + bytes(range(1, 33)).hex() + "\n"
    "last_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\n"
    "tx_bytes=0\n"
    "rx_bytes=0\n"
    "persistent_keepalive_interval=0\n"
    "errno=0\n\n"
)


def test_edge_parser_reads_device_and_peers() -> None:
    status = edge_uapi.parse_get(GET_ANSWER)
    assert status.private_key == bytes([0x11]) * 32
    assert status.listen_port == 51820
    a = status.peer(KEY_A)
    assert a is not None
    assert a.endpoint == "192.0.2.7:40123"
    assert a.allowed_ips == ("10.8.0.2/32", "fd00::2/128")
    assert a.latest_handshake == pytest.approx(1700000000.5)
    assert (a.rx_bytes, a.tx_bytes, a.keepalive_s) == (180, 92, 25)
    b = status.peer(KEY_B)
    assert b is not None and b.latest_handshake is None and b.allowed_ips == ()


def test_control_plane_copy_reads_the_same_answer_the_same_way() -> None:
    edge = edge_uapi.parse_get(GET_ANSWER)
    hub = cp_uapi.parse_get(GET_ANSWER)
    assert set(hub) == {p.public_key for p in edge.peers}
    for peer in edge.peers:
        mine = hub[peer.public_key]
        assert tuple(mine.allowed_ips) == peer.allowed_ips
        assert mine.latest_handshake == peer.latest_handshake
        assert (mine.endpoint, mine.rx_bytes, mine.tx_bytes) == (
            peer.endpoint,
            peer.rx_bytes,
            peer.tx_bytes,
        )


@pytest.mark.parametrize("parse", [edge_uapi.parse_get, cp_uapi.parse_get])
def test_errors_are_refused(parse: object) -> None:
    assert callable(parse)
    with pytest.raises(OSError, match="errno=2"):
        parse("errno=2\n\n")
    with pytest.raises(OSError, match="unreadable line"):
        parse("garbage\n\n")
    with pytest.raises(OSError, match="bad value for rx_bytes"):
        parse("public_key=" + "00" * 32 + "\nrx_bytes=lots\n\n")


def test_edge_set_request_text() -> None:
    text = edge_uapi.format_set(
        private_key=bytes(32),
        listen_port=0,
        peers=[
            PeerUpdate(
                public_key=KEY_A,
                endpoint="192.0.2.1:51820",
                keepalive_s=25,
                allowed_ips=("10.8.0.1/32",),
                kick_keepalive=True,
            ),
            PeerUpdate(public_key=KEY_B, remove=True),
        ],
    )
    assert text == (
        "set=1\n"
        f"private_key={'00' * 32}\n"
        "listen_port=0\n"
        f"public_key={bytes(range(32)).hex()}\n"
        "endpoint=192.0.2.1:51820\n"
        # Off then on: WireGuard sends a keepalive, so a new key shakes hands at once.
        "persistent_keepalive_interval=0\n"
        "persistent_keepalive_interval=25\n"
        "replace_allowed_ips=true\n"
        "allowed_ip=10.8.0.1/32\n"
        f"public_key={bytes(range(1, 33)).hex()}\n"
        "remove=true\n\n"
    )


def test_edge_set_refuses_bad_keys_naming_the_peer() -> None:
    with pytest.raises(ValueError, match=r"peers\[0\]\.public_key: a WireGuard key is 32 bytes"):
        edge_uapi.format_set(peers=[PeerUpdate(public_key=base64.b64encode(b"x").decode())])
    with pytest.raises(ValueError, match="private_key: must be 32 bytes"):
        edge_uapi.format_set(private_key=b"short")


def test_hub_set_request_moves_addresses_before_removing() -> None:
    text = cp_uapi.format_set(
        [
            cp_uapi.PeerChange(KEY_B, ("10.8.0.2/32",)),
            cp_uapi.PeerChange(KEY_A, None),
        ]
    )
    assert text == (
        "set=1\n"
        f"public_key={bytes(range(1, 33)).hex()}\n"
        "replace_allowed_ips=true\n"
        "allowed_ip=10.8.0.2/32\n"
        f"public_key={bytes(range(32)).hex()}\n"
        "remove=true\n\n"
    )
