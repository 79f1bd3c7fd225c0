"""ICE servers for a call: STUN, and TURN with time-limited REST credentials (coturn).

coturn's ``use-auth-secret`` scheme (draft-uberti-behave-turn-rest): the username is
``"<expiry epoch>:<user>"`` and the password is base64(HMAC-SHA1(secret, username)). coturn
checks both itself, so the control plane never talks to coturn: it only signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from ..config import Settings


def rest_credentials(
    secret: str, user: str, ttl_s: int, now: float | None = None
) -> tuple[str, str]:
    """(username, credential) valid for ``ttl_s`` seconds from ``now``."""
    if not secret:
        raise ValueError("turn_secret: empty; set DIFRONTE_TURN_SECRET to coturn's auth secret")
    if ":" in user:
        raise ValueError(f"user: must not contain ':' (got {user!r})")
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def credential_valid(secret: str, username: str, credential: str, now: float | None = None) -> bool:
    """What coturn checks: the signature matches and the expiry has not passed."""
    expiry_text, _, _ = username.partition(":")
    if not expiry_text.isdigit() or int(expiry_text) < (time.time() if now is None else now):
        return False
    expected = base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()
    return hmac.compare_digest(expected, credential)


def ice_servers(settings: Settings, user: str, now: float | None = None) -> list[dict[str, Any]]:
    """The ``iceServers`` for one party of a call (browser: ``user:3``, device: its id)."""
    servers: list[dict[str, Any]] = []
    if settings.turn_urls and settings.turn_secret:
        username, credential = rest_credentials(
            settings.turn_secret, user, settings.turn_ttl_s, now
        )
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    return servers
