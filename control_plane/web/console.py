"""Everything the console needs, built once from the settings and kept in ``app.state``."""

from __future__ import annotations

import gettext
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from fastapi import FastAPI

from .. import __version__
from ..config import Settings
from .csrf import CsrfGuard
from .i18n import LANGUAGES, LOCALE_DIR, TEMPLATES_DIR, load_translations
from .sessions import SessionCodec
from .throttle import LoginThrottle

LANG_COOKIE = "difronte_lang"


class Console:
    """The console's configuration and shared machinery (one per app)."""

    def __init__(
        self,
        settings: Settings,
        *,
        templates_dir: Path = TEMPLATES_DIR,
        locale_dir: Path = LOCALE_DIR,
        timezone: str = "Europe/Rome",
        live_interval: float = 5.0,
        page_size: int = 100,
        session_max_age: float = 12 * 3600,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.settings = settings
        self.secure_cookies = settings.public_url.lower().startswith("https://")
        self.codec = SessionCodec(
            settings.secret_key, max_age=session_max_age, secure=self.secure_cookies
        )
        self.csrf = CsrfGuard(settings.secret_key)
        self.throttle = throttle or LoginThrottle()
        try:
            self.tz = ZoneInfo(timezone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"timezone: unknown time zone {timezone!r}") from exc
        # Seconds between live refreshes of a page; tests shrink it.
        self.live_interval = live_interval
        self.page_size = page_size
        self.version = __version__
        self.translations: dict[str, gettext.GNUTranslations] = {
            lang: load_translations(lang, locale_dir) for lang in LANGUAGES
        }
        # One environment per language: install_gettext_translations sets environment-wide
        # globals, so sharing one environment between threads would mix languages.
        self.environments = {
            lang: self._environment(templates_dir, t) for lang, t in self.translations.items()
        }

    @staticmethod
    def _environment(
        templates_dir: Path, translations: gettext.GNUTranslations
    ) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir),
            autoescape=jinja2.select_autoescape(["html"]),
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        return env

    def template(self, lang: str, name: str) -> jinja2.Template:
        """The template ``name`` in ``lang``'s environment."""
        return self.environments[lang].get_template(name)


def get_console(app: FastAPI) -> Console:
    """The app's console; a clear error when ``web.install`` was never called."""
    console = getattr(app.state, "console", None)
    if not isinstance(console, Console):
        raise RuntimeError("the web console is not installed: call control_plane.web.install(app)")
    return console
