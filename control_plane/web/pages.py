"""The per-request page context, the console's dependencies, and its error pages.

A console route asks for the person it serves with one of::

    PageDep                                  # anyone (login page)
    UserPage                                 # anyone logged in, else a redirect to /login
    Annotated[Page, Depends(page_for_roles(Role.FLEET_MANAGER))]   # else a 403 page

and answers with ``page.render("template.html", **context)``. Routers made by
:func:`console_router` check the CSRF token of every POST.
"""

from __future__ import annotations

import gettext
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..api.deps import SessionDep
from ..db import utcnow
from ..models import Role, User
from .console import LANG_COOKIE, Console, get_console
from .csrf import FORM_FIELD, HEADER, SAFE_METHODS
from .formatting import Formatter
from .i18n import LANGUAGES, N_, negotiate
from .nav import NavItem, current_nav, nav_for
from .sessions import ConsoleSession, request_session

# Requests from static/live.js carry this header; they get a status, not a redirect or a page.
LIVE_HEADER = "x-live"

ROLE_LABELS: dict[str, str] = {
    Role.ADMIN.value: N_("Administrator"),
    Role.FLEET_MANAGER.value: N_("Fleet manager"),
    Role.COORDINATOR.value: N_("Coordinator"),
    Role.CAREGIVER.value: N_("Caregiver"),
    Role.TECHNICIAN.value: N_("Technician"),
    Role.WORKSHOP_LEAD.value: N_("Workshop lead"),
    Role.TRAINEE.value: N_("Trainee"),
    Role.MARKET_ADMIN.value: N_("Marketplace administrator"),
    Role.WORKER.value: N_("Worker"),
    Role.CLIENT.value: N_("Client"),
}

_SECURITY_HEADERS = {
    # No inline script or style anywhere in the console, so the policy can be strict.
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class Viewer:
    """The logged-in person, copied out of the database row so templates never lazy-load."""

    id: int
    name: str
    email: str
    role: str
    locale: str


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site, else ``default`` (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return default
    if any(ord(ch) < 32 or ch == "\\" for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


class Page:
    """What a console route needs to answer one request: who, in which language, how to render."""

    def __init__(self, request: Request, console: Console, user: User | None, lang: str) -> None:
        self.request = request
        self.console = console
        self.user = user
        self.viewer = (
            None
            if user is None
            else Viewer(user.id, user.name, user.email, user.role, user.locale or "")
        )
        self.lang = lang
        self.session: ConsoleSession = request_session(request.scope.setdefault("state", {}))
        self.now = utcnow()

    @property
    def translations(self) -> gettext.GNUTranslations:
        """The gettext catalog of this page's language."""
        return self.console.translations[self.lang]

    def _(self, msgid: str, **params: object) -> str:
        """``msgid`` translated, with ``%(name)s`` parameters filled in."""
        text = self.translations.gettext(msgid)
        return text % params if params else text

    def ngettext(self, singular: str, plural: str, n: int, **params: object) -> str:
        """The singular or plural translation for ``n``; ``%(num)d`` is ``n``."""
        return self.translations.ngettext(singular, plural, n) % {"num": n, **params}

    @property
    def fmt(self) -> Formatter:
        """Numbers, sizes and times formatted for this reader."""
        return Formatter(self.translations, self.lang, now=self.now, tz=self.console.tz)

    @property
    def csrf_token(self) -> str:
        """The token for this session's forms (starts an anonymous session if needed)."""
        return self.console.csrf.token_for(self.session.ensure_id())

    def role_label(self, role: str) -> str:
        """A role in plain words."""
        msgid = ROLE_LABELS.get(role)
        return self._(msgid) if msgid else role

    def nav(self) -> list[NavItem]:
        """The pages this person may open."""
        return [] if self.viewer is None else nav_for(self.viewer.role)

    def flash(self, text: str, category: str = "info") -> None:
        """Show ``text`` (already translated) on the next page."""
        self.session.flash(category, text)

    def log_in(self, user: User) -> None:
        """Start a session for ``user``."""
        self.session.log_in(user.id)
        self.user = user
        self.viewer = Viewer(user.id, user.name, user.email, user.role, user.locale or "")

    def log_out(self) -> None:
        """End the session."""
        self.session.log_out()
        self.user = None
        self.viewer = None

    def static_url(self, path: str) -> str:
        """The URL of a static file, versioned so browsers refetch it after an upgrade."""
        return f"/static/{path}?v={self.console.version}"

    def _context(self, context: dict[str, Any]) -> dict[str, Any]:
        return {
            "page": self,
            "viewer": self.viewer,
            "lang": self.lang,
            "languages": LANGUAGES,
            "fmt": self.fmt,
            "current_path": self.request.url.path,
            "live_interval_ms": max(250, int(self.console.live_interval * 1000)),
            **context,
        }

    def render(
        self,
        template: str,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A full page: ``template`` (extending base.html) with the layout's context."""
        full = self._context(context)
        nav = self.nav()
        full.update(
            csrf_token=self.csrf_token,
            nav=nav,
            current_nav=current_nav(nav, self.request.url.path),
            flashes=self.session.pop_flashes(),
            request_target=self._request_target(),
        )
        html = self.console.template(self.lang, template).render(full)
        return self._html(html, status_code, headers)

    def render_fragment(self, template: str, **context: Any) -> HTMLResponse:
        """A piece of a page for live updates (no layout, flashes left for the next page)."""
        html = self.console.template(self.lang, template).render(self._context(context))
        return self._html(html, 200, None)

    def _html(self, html: str, status_code: int, headers: dict[str, str] | None) -> HTMLResponse:
        response = HTMLResponse(html, status_code=status_code, headers=headers)
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        response.headers["content-language"] = self.lang
        return response

    def _request_target(self) -> str:
        url = self.request.url
        return url.path + (f"?{url.query}" if url.query else "")

    def redirect(self, path: str) -> RedirectResponse:
        """A 303 "see other" to a local path (after a POST, so reload does not resend it)."""
        return RedirectResponse(safe_next(path), status_code=303)


class LoginRequired(Exception):
    """Raised by :func:`signed_in` when nobody is logged in."""

    def __init__(self, page: Page) -> None:
        super().__init__("login required")
        self.page = page


class PageError(Exception):
    """Stops a console route with a plain-words error page."""

    def __init__(
        self, page: Page, status_code: int, title_msgid: str, message_msgid: str, **params: object
    ) -> None:
        super().__init__(f"{status_code}: {message_msgid}")
        self.page = page
        self.status_code = status_code
        self.title_msgid = title_msgid
        self.message_msgid = message_msgid
        self.params = params


def get_page(request: Request, db: SessionDep) -> Page:
    """The page context: the logged-in person (if any) and the language to speak."""
    return _build_page(request, db)


def _build_page(request: Request, db: Session) -> Page:
    console = get_console(request.app)
    user_id = getattr(request.state, "console_user_id", None)
    user = db.get(User, user_id) if user_id is not None else None
    if user is not None and not user.is_active:
        user = None
    lang = negotiate(
        user.locale if user is not None else None,
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )
    return Page(request, console, user, lang)


PageDep = Annotated[Page, Depends(get_page)]


def signed_in(page: PageDep) -> Page:
    """The page of a logged-in person; anyone else is sent to the login page."""
    if page.viewer is None:
        raise LoginRequired(page)
    return page


UserPage = Annotated[Page, Depends(signed_in)]


def page_for_roles(*roles: Role) -> Callable[[Page], Page]:
    """A dependency admitting only ``roles`` (and admins); others get a plain 403 page."""
    allowed = {r.value for r in roles} | {Role.ADMIN.value}

    def _check(page: UserPage) -> Page:
        assert page.viewer is not None  # signed_in guarantees it
        if page.viewer.role not in allowed:
            raise PageError(
                page,
                403,
                N_("No access"),
                N_("You do not have access to this page."),
            )
        return page

    return _check


async def csrf_protect(request: Request, page: PageDep) -> None:
    """Refuse an unsafe request whose CSRF token (form field or header) is missing or wrong."""
    if request.method in SAFE_METHODS:
        return
    token = request.headers.get(HEADER)
    if token is None:
        # FastAPI caches the parsed form on the request, so the route still gets its fields.
        value = (await request.form()).get(FORM_FIELD)
        token = value if isinstance(value, str) else None
    if not console_csrf_ok(page, token):
        raise PageError(
            page,
            403,
            N_("This page has expired"),
            N_(
                "For your safety the form was not accepted. Go back, reload the page and try again."
            ),
        )


def console_csrf_ok(page: Page, token: str | None) -> bool:
    """True when ``token`` belongs to this browser's session."""
    return page.console.csrf.check(page.session.sid, token)


def console_router(**kwargs: Any) -> APIRouter:
    """A router for console pages: HTML responses, CSRF-checked POSTs, not in the API schema."""
    dependencies = [Depends(csrf_protect), *kwargs.pop("dependencies", [])]
    kwargs.setdefault("include_in_schema", False)
    kwargs.setdefault("default_response_class", HTMLResponse)
    return APIRouter(dependencies=dependencies, **kwargs)


def install_error_pages(app: FastAPI) -> None:
    """Turn LoginRequired into a redirect and PageError into a rendered page."""

    async def _login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        if request.headers.get(LIVE_HEADER):
            return PlainTextResponse("login required", status_code=401)
        target = exc.page._request_target()
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    async def _page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        page = exc.page
        if request.headers.get(LIVE_HEADER):
            return PlainTextResponse(page._(exc.message_msgid), status_code=exc.status_code)
        return page.render(
            "error.html",
            status_code=exc.status_code,
            title=page._(exc.title_msgid),
            message=page._(exc.message_msgid, **exc.params),
        )

    # Someone who mistypes a console address gets a page, not problem+json; the API, and
    # anything that is not a browser asking for HTML, keeps the handler installed before us.
    previous = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)

    def _page_for(request: Request) -> Page:
        # The Page copies the person into a Viewer, so it outlives this session.
        with request.app.state.sessionmaker() as db:
            return _build_page(request, db)

    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        wants_page = (
            exc.status_code in _HTTP_ERROR_PAGES
            and not request.url.path.startswith("/api/")
            and "text/html" in request.headers.get("accept", "")
        )
        if not wants_page:
            response = previous(request, exc)
            return await response if inspect.isawaitable(response) else response
        page = await run_in_threadpool(_page_for, request)
        title, message = _HTTP_ERROR_PAGES[exc.status_code]
        return page.render(
            "error.html", status_code=exc.status_code, title=page._(title), message=page._(message)
        )

    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(PageError, _page_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


_HTTP_ERROR_PAGES = {
    404: (
        N_("Page not found"),
        N_("This page does not exist. Check the address, or start again from the home page."),
    ),
    405: (
        N_("Something went wrong"),
        N_("This page cannot be used like that. Start again from the home page."),
    ),
}
