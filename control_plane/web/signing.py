"""HMAC-SHA256 signed, timestamped tokens for cookies (itsdangerous-like, stdlib only)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable


class BadSignature(ValueError):
    """The token was altered, truncated or signed with another key."""


class SignatureExpired(BadSignature):
    """The token is genuine but older than allowed."""


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, so a session cookie can never pass as a CSRF token or vice versa."""
    return hmac.new(secret.encode(), b"difronte.console:" + purpose.encode(), "sha256").digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("token: not valid base64") from exc


class Signer:
    """Signs bytes with a timestamp: ``payload.timestamp.mac``, all URL- and cookie-safe."""

    def __init__(
        self, secret: str, purpose: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = derive_key(secret, purpose)
        self._clock = clock

    def _mac(self, signed_part: str) -> str:
        return _b64(hmac.new(self._key, signed_part.encode("ascii"), hashlib.sha256).digest())

    def sign(self, payload: bytes) -> str:
        """The token for ``payload``, stamped with the current time."""
        signed_part = f"{_b64(payload)}.{int(self._clock())}"
        return f"{signed_part}.{self._mac(signed_part)}"

    def unsign(self, token: str, *, max_age: float | None = None) -> tuple[bytes, float]:
        """The payload and its timestamp; raises BadSignature or SignatureExpired."""
        try:
            payload_b64, stamp, mac = token.split(".")
        except ValueError as exc:
            raise BadSignature("token: expected three dot-separated parts") from exc
        signed_part = f"{payload_b64}.{stamp}"
        # Compare before parsing anything else, so a forged token learns nothing.
        if not hmac.compare_digest(mac, self._mac(signed_part)):
            raise BadSignature("token: signature does not match")
        try:
            issued = float(int(stamp))
        except ValueError as exc:
            raise BadSignature("token: timestamp is not a number") from exc
        if max_age is not None and self._clock() - issued > max_age:
            raise SignatureExpired(f"token: older than {max_age:.0f} s")
        return _unb64(payload_b64), issued
