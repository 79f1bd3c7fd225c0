"""Passwords, API tokens and broker credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
# Mosquitto 2's password-file format: $7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512>.
_MOSQ_ITERATIONS = 101
_MOSQ_SALT_BYTES = 12


def hash_password(password: str) -> str:
    """A salted scrypt hash for a person's password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (constant time)."""
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.b64decode(salt_b64)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def new_token() -> str:
    """A fresh bearer token (shown once, stored only as its hash)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_device_password() -> str:
    """A fresh MQTT password for a device."""
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    """Hash ``password`` the way ``mosquitto_passwd`` does (Mosquitto 2, PBKDF2-SHA512)."""
    salt = salt if salt is not None else secrets.token_bytes(_MOSQ_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _MOSQ_ITERATIONS)
    salt_b64 = base64.b64encode(salt).decode()
    return f"$7${_MOSQ_ITERATIONS}${salt_b64}${base64.b64encode(digest).decode()}"


def verify_mosquitto_hash(password: str, stored: str) -> bool:
    """Check ``password`` against a Mosquitto ``$7$`` hash."""
    try:
        _, alg, iterations, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if alg != "7":
        return False
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt_b64), int(iterations)
    )
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))
