"""CSRF tokens bound to the browser session: an HMAC of the session id, never stored."""

from __future__ import annotations

import hashlib
import hmac

from .signing import derive_key

# The hidden form field and the header (for fetch() calls) that carry the token.
FORM_FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class CsrfGuard:
    """Issues and checks the per-session CSRF token."""

    def __init__(self, secret: str) -> None:
        self._key = derive_key(secret, "csrf")

    def token_for(self, session_id: str) -> str:
        """The token every form of this session must send back."""
        if not session_id:
            raise ValueError("session_id: a CSRF token needs a session")
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()

    def check(self, session_id: str, token: str | None) -> bool:
        """True when ``token`` is this session's token (constant-time comparison)."""
        if not session_id or not token:
            return False
        return hmac.compare_digest(self.token_for(session_id), token)
