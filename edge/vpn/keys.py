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
import functools
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

KEY_LEN = 32
CURRENT_FILE = "private.key"
PENDING_FILE = "pending.key"


class WireGuardKeyError(ValueError):
    """A key file or key text is not a WireGuard key; the message names which."""


def generate_private_key() -> bytes:
    """32 random bytes of a fresh X25519 private key, clamped, as ``wg genkey`` makes them."""
    key = bytearray(os.urandom(KEY_LEN))
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


# X25519 (RFC 7748, section 5) for the one thing the daemon needs it for: the public half of
# its own key. A few lines of integer arithmetic instead of the cryptography package, which
# would cost the always-running daemon about 6 MB; the key never meets an attacker here (no
# shared secret is computed, no timing is observable from outside), and tests check it
# against cryptography's X25519 and RFC 7748's vectors.
_P = 2**255 - 19
_A24 = 121665
_BASE_U = 9


def _x25519(scalar: bytes, u: int) -> bytes:
    k = int.from_bytes(scalar, "little")
    k &= ~7
    k &= ~(128 << 8 * 31)
    k |= 64 << 8 * 31
    x1, x2, z2, x3, z3 = u, 1, 0, u, 1
    swap = 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % _P, (x2 - z2) % _P
        aa, bb = a * a % _P, b * b % _P
        e = (aa - bb) % _P
        c, d = (x3 + z3) % _P, (x3 - z3) % _P
        da, cb = d * a % _P, c * b % _P
        x3, z3 = (da + cb) ** 2 % _P, x1 * (da - cb) ** 2 % _P
        x2, z2 = aa * bb % _P, e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(KEY_LEN, "little")


@functools.lru_cache(maxsize=4)  # asked for on every tunnel report; the key rarely changes
def public_key(private: bytes) -> bytes:
    """The X25519 public key of ``private`` (what ``wg pubkey`` prints, before base64)."""
    if len(private) != KEY_LEN:
        raise WireGuardKeyError(f"private key: must be {KEY_LEN} bytes, got {len(private)}")
    return _x25519(private, _BASE_U)


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
