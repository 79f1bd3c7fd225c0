"""The console fixtures of ``tests/web`` (harness, live server, Chromium), for the VPN page."""

from tests.web.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    browser_page,
    chromium,
    harness,
    live_server,
    migrated_db,
    playwright_session,
)
