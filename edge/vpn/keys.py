"""The device's WireGuard key pair: made here, kept here, only the public half ever leaves.

Keys are stored like ``wg genkey`` writes them (base64 text, one line), so an operator can run
``wg pubkey < private.key`` on the device. Files are created 0600 from the start (never written
first and chmod-ed after) and replaced atomically, so a power cut leaves the old key or the new
one, never half of either.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

log = logging.getLogger(__name__)

KEY_LEN = 32
CURRENT_FILE = "private.key"
PENDING_FILE = "pending.key"


class WireGuardKeyError(ValueError):
    """A key file or key text is not a WireGuard key; the message names which."""


def generate_private_key() -> bytes:
    """32 random bytes of a fresh X25519 private key (clamped, as WireGuard expects)."""
    raw = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    # X25519 clamps when it uses the key; wg genkey also stores it clamped, so do we.
    clamped = bytearray(raw)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    return bytes(clamped)


def public_key(private: bytes) -> bytes:
    """The X25519 public key of ``private``."""
    return (
        X25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def to_base64(key: bytes) -> str:
    """The base64 text WireGuard tools and the MQTT contract use."""
    return base64.b64encode(key).decode("ascii")


def from_base64(text: str, *, field: str = "key") -> bytes:
    """Decode a base64 WireGuard key, refusing anything that is not 32 bytes."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireGuardKeyError(f"{field}: not base64 ({exc})") from None
    if len(raw) != KEY_LEN:
        raise WireGuardKeyError(f"{field}: must be {KEY_LEN} bytes, got {len(raw)}")
    return raw


def _write_secret(path: Path, key: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    # O_EXCL with mode 0600: the secret is never readable by others, not even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (to_base64(key) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_secret(path: Path) -> bytes | None:
    try:
        mode = path.stat().st_mode
        text = path.read_text("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise WireGuardKeyError(f"{path}: cannot read the key: {exc}") from exc
    if stat.S_IMODE(mode) & 0o077:
        # Someone copied the state directory carelessly: tighten rather than refuse to run.
        log.warning("%s was readable by others; setting it to 0600", path)
        os.chmod(path, 0o600)
    return from_base64(text, field=str(path))


class KeyStore:
    """The current key and, during a rotation, the pending one, in one 0700 directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def current_path(self) -> Path:
        return self.directory / CURRENT_FILE

    @property
    def pending_path(self) -> Path:
        return self.directory / PENDING_FILE

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.directory, 0o700)

    def load_or_create(self) -> bytes:
        """The current private key; generated and stored on first start."""
        self._ensure_dir()
        key = _read_secret(self.current_path)
        if key is None:
            key = generate_private_key()
            _write_secret(self.current_path, key)
            log.info("generated the WireGuard key pair (public %s)", to_base64(public_key(key)))
        return key

    def pending(self) -> bytes | None:
        """The key made for an unfinished rotation, if any."""
        return _read_secret(self.pending_path)

    def create_pending(self) -> bytes:
        """Start a rotation: a new key beside the current one (an unfinished one is reused)."""
        self._ensure_dir()
        existing = self.pending()
        if existing is not None:
            return existing
        key = generate_private_key()
        _write_secret(self.pending_path, key)
        return key

    def promote_pending(self) -> bytes:
        """Make the pending key current; the old private key is gone afterwards."""
        key = self.pending()
        if key is None:
            raise WireGuardKeyError(f"{self.pending_path}: no pending key to promote")
        # rename() replaces the old key file in one step: a crash leaves one valid current key.
        os.replace(self.pending_path, self.current_path)
        _fsync_dir(self.directory)
        return key

    def discard_pending(self) -> None:
        """Abandon a rotation."""
        self.pending_path.unlink(missing_ok=True)
