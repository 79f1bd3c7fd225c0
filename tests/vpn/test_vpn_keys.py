"""The device's key pair: made on first start, 0600 from birth, rotated atomically."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from edge.vpn.keys import (
    KeyStore,
    WireGuardKeyError,
    from_base64,
    generate_private_key,
    public_key,
    to_base64,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_generates_a_private_key_file_0600_and_reuses_it(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "vpn")
    key = store.load_or_create()
    assert len(key) == 32
    assert _mode(store.current_path) == 0o600
    assert _mode(store.directory) == 0o700
    # Stored like `wg genkey` prints it.
    assert base64.b64decode(store.current_path.read_text().strip()) == key
    assert KeyStore(tmp_path / "vpn").load_or_create() == key


@pytest.mark.skipif(shutil.which("wg") is None, reason="wireguard-tools not installed")
def test_public_key_matches_wg_pubkey() -> None:
    private = generate_private_key()
    out = subprocess.run(
        ["wg", "pubkey"],
        input=to_base64(private) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert to_base64(public_key(private)) == out.stdout.strip()


@pytest.mark.parametrize(
    ("private", "public"),
    [  # RFC 7748, section 6.1: Alice's and Bob's key pairs
        (
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        ),
        (
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        ),
    ],
)
def test_public_key_matches_rfc_7748(private: str, public: str) -> None:
    assert public_key(bytes.fromhex(private)).hex() == public


def test_public_key_matches_the_cryptography_package() -> None:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    for private in [generate_private_key() for _ in range(50)] + [os.urandom(32)]:
        theirs = X25519PrivateKey.from_private_bytes(private).public_key()
        raw = theirs.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        assert public_key(private) == raw


def test_public_key_refuses_a_key_of_the_wrong_length() -> None:
    with pytest.raises(WireGuardKeyError, match="must be 32 bytes, got 31"):
        public_key(b"x" * 31)


def test_generated_keys_are_clamped_and_distinct() -> None:
    keys = {generate_private_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert key[0] & 7 == 0 and key[31] & 128 == 0 and key[31] & 64 == 64


def test_a_key_file_readable_by_others_is_tightened(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    key = store.load_or_create()
    os.chmod(store.current_path, 0o644)
    assert KeyStore(tmp_path).load_or_create() == key
    assert _mode(store.current_path) == 0o600


def test_rotation_files_pending_then_promote_removes_the_old_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    old = store.load_or_create()
    assert store.pending() is None
    new = store.create_pending()
    assert new != old
    assert _mode(store.pending_path) == 0o600
    # An interrupted rotation picks up the same pending key.
    assert store.create_pending() == new
    assert store.promote_pending() == new
    assert store.load_or_create() == new
    assert store.pending() is None
    assert to_base64(old) not in "".join(p.read_text() for p in tmp_path.iterdir())


def test_discarding_a_rotation_keeps_the_current_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    old = store.load_or_create()
    store.create_pending()
    store.discard_pending()
    assert store.pending() is None
    assert store.load_or_create() == old
    with pytest.raises(WireGuardKeyError, match="no pending key"):
        store.promote_pending()


def test_damaged_key_file_names_the_file(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    store.current_path.write_text("not a key\n")
    with pytest.raises(WireGuardKeyError, match=r"private\.key: not base64"):
        store.load_or_create()
    store.current_path.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(WireGuardKeyError, match="must be 32 bytes, got 5"):
        store.load_or_create()


def test_from_base64_names_the_field() -> None:
    with pytest.raises(WireGuardKeyError, match=r"^hub_public_key: must be 32 bytes"):
        from_base64("AAAA", field="hub_public_key")
