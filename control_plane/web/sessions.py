"""Browser sessions: a signed cookie, and the middleware that reads and writes it.

The cookie holds a random session id (which the CSRF token is bound to), the user id once
logged in, and pending flash messages. It is signed, not encrypted: nothing secret goes in it.
Logging out forgets the cookie in the browser; a stolen cookie stays valid until it expires
(``max_age`` since its last refresh), so keep ``max_age`` modest.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.errors import problem
from .csrf import HEADER, SAFE_METHODS, CsrfGuard
from .signing import BadSignature, Signer

log = logging.getLogger(__name__)

COOKIE_NAME = "difronte_session"
_MAX_FLASHES = 5
_MAX_FLASH_CHARS = 300


@dataclass
class ConsoleSession:
    """One browser's session; ``dirty`` means the cookie must be written on the response."""

    sid: str = ""
    user_id: int | None = None
    flashes: list[tuple[str, str]] = field(default_factory=list)
    issued_at: float = 0.0
    dirty: bool = False

    def ensure_id(self) -> str:
        """The session id, creating one (an anonymous session) when there is none yet."""
        if not self.sid:
            self.sid = secrets.token_urlsafe(18)
            self.dirty = True
        return self.sid

    def log_in(self, user_id: int) -> None:
        """Bind the session to a person, under a fresh id (no session fixation)."""
        self.sid = secrets.token_urlsafe(18)
        self.user_id = user_id
        self.dirty = True

    def log_out(self) -> None:
        """Forget the person; a new anonymous id so old CSRF tokens stop working."""
        self.sid = secrets.token_urlsafe(18)
        self.user_id = None
        self.dirty = True

    def flash(self, category: str, text: str) -> None:
        """Queue a message for the next page shown."""
        self.ensure_id()
        self.flashes = [*self.flashes, (category, text[:_MAX_FLASH_CHARS])][-_MAX_FLASHES:]
        self.dirty = True

    def pop_flashes(self) -> list[tuple[str, str]]:
        """The queued messages, removed from the session."""
        flashes, self.flashes = self.flashes, []
        if flashes:
            self.dirty = True
        return flashes


class SessionCodec:
    """Turns a :class:`ConsoleSession` into a cookie and back."""

    def __init__(
        self,
        secret: str,
        *,
        max_age: float = 12 * 3600,
        secure: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_age = max_age
        self.secure = secure
        self._signer = Signer(secret, "session", clock=clock)
        self._clock = clock

    def load(self, raw: str | None) -> ConsoleSession:
        """The session in a cookie value; a fresh anonymous one if absent, forged or expired."""
        if not raw:
            return ConsoleSession()
        try:
            payload, issued = self._signer.unsign(raw, max_age=self.max_age)
            data: Any = json.loads(payload)
            session = ConsoleSession(
                sid=str(data["sid"]),
                user_id=int(data["uid"]) if data.get("uid") is not None else None,
                flashes=[(str(c), str(t)) for c, t in data.get("fl", [])][-_MAX_FLASHES:],
                issued_at=issued,
            )
        except (BadSignature, ValueError, KeyError, TypeError) as exc:
            log.debug("session cookie ignored: %s", exc)
            return ConsoleSession()
        # Sliding expiry: someone using the console keeps their session, an idle one lapses.
        if session.user_id is not None and self._clock() - issued > self.max_age / 2:
            session.dirty = True
        return session

    def dump(self, session: ConsoleSession) -> str:
        """The signed cookie value for ``session``."""
        data = {"sid": session.sid, "uid": session.user_id, "fl": session.flashes}
        return self._signer.sign(json.dumps(data, separators=(",", ":")).encode())

    def set_cookie(self, session: ConsoleSession) -> str:
        """The ``Set-Cookie`` header value: HttpOnly, SameSite=Lax, Secure over https."""
        parts = [
            f"{COOKIE_NAME}={self.dump(session)}",
            "Path=/",
            f"Max-Age={int(self.max_age)}",
            "HttpOnly",
            "SameSite=Lax",
        ]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


def request_session(scope_state: dict[str, Any]) -> ConsoleSession:
    """The session the middleware put in the request state (an empty one outside it)."""
    session = scope_state.get("console_session")
    if isinstance(session, ConsoleSession):
        return session
    session = ConsoleSession()
    scope_state["console_session"] = session
    return session


class ConsoleSessionMiddleware:
    """Reads the session cookie into ``request.state``; writes it back when it changed.

    Sets ``request.state.console_user_id`` so the API's ``get_current_user`` accepts the
    cookie too (for fetch() calls from console pages). An unsafe API request authenticated
    only by the cookie must carry the CSRF token in the ``X-CSRF-Token`` header; console form
    posts are checked by the console routers themselves (the token is in the form body).
    """

    def __init__(
        self, app: ASGIApp, *, codec: SessionCodec, csrf: CsrfGuard, api_prefix: str = "/api/"
    ) -> None:
        self.app = app
        self.codec = codec
        self.csrf = csrf
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request or WebSocket connection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw = cookie_parser(headers.get("cookie", "")).get(COOKIE_NAME)
        session = self.codec.load(raw)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["console_session"] = session
        if session.user_id is not None:
            if self._needs_header_token(scope, headers) and not self.csrf.check(
                session.sid, headers.get(HEADER)
            ):
                response = problem(
                    403,
                    "Forbidden",
                    "X-CSRF-Token: missing or wrong; a request authenticated by the console "
                    "cookie must send the page's CSRF token in this header",
                )
                await response(scope, receive, send)
                return
            state["console_user_id"] = session.user_id
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.dirty:
                MutableHeaders(scope=message).append("set-cookie", self.codec.set_cookie(session))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _needs_header_token(self, scope: Scope, headers: Headers) -> bool:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return False
        if not str(scope["path"]).startswith(self.api_prefix):
            return False
        # A bearer token is not sent automatically by browsers, so it needs no CSRF token.
        return "authorization" not in headers
