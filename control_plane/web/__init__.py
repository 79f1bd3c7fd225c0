"""The web console: server-rendered pages for every role, Italian first.

``install(app, settings)`` adds it to the control plane. Feature modules add their pages with
:func:`console_router` and :func:`register_nav`, and ask for the person with ``UserPage`` or
``page_for_roles(...)``; see :mod:`control_plane.web.pages`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..config import Settings
from .console import Console, get_console
from .i18n import N_
from .nav import NavItem, nav_for, register_nav
from .pages import (
    Page,
    PageDep,
    PageError,
    UserPage,
    console_router,
    install_error_pages,
    page_for_roles,
)
from .sessions import ConsoleSessionMiddleware
from .throttle import LoginThrottle, SqlThrottleStore

__all__ = [
    "N_",
    "Console",
    "NavItem",
    "Page",
    "PageDep",
    "PageError",
    "UserPage",
    "console_router",
    "get_console",
    "install",
    "nav_for",
    "page_for_roles",
    "register_nav",
]


def install(app: FastAPI, settings: Settings, **options: Any) -> Console:
    """Add the console to ``app``: session middleware, static files, error pages, its pages.

    ``options`` go to :class:`Console` (``timezone``, ``live_interval``, ``page_size``, ...).
    Call it once, before the app starts.
    """
    if getattr(app.state, "console", None) is not None:
        raise RuntimeError("the web console is already installed on this app")
    from .i18n import PACKAGE_DIR
    from .routes import auth, fleet, home

    factory = getattr(app.state, "sessionmaker", None)
    if factory is not None and "throttle" not in options:
        # Failed logins counted in the database: the same count on every replica.
        options["throttle"] = LoginThrottle(store=SqlThrottleStore(factory))
    console = Console(settings, **options)
    app.state.console = console
    app.add_middleware(ConsoleSessionMiddleware, codec=console.codec, csrf=console.csrf)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    install_error_pages(app)
    for module in (auth, home, fleet):
        app.include_router(module.router)
    return console
