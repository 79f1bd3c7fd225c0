"""A real uvicorn server in a background thread, and Debian's Chromium driven by Playwright.

Never downloads a browser: Playwright launches ``/usr/bin/chromium`` through
``executable_path``. The fake media flags let the calls feature capture a synthetic camera
and microphone without a permission prompt.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from playwright.sync_api import Browser, Playwright

from tests.support.wait import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def launch_chromium(playwright: Playwright, **options: Any) -> Browser:
    """Debian's Chromium, headless, with the project's flags (``options`` go to launch())."""
    if not CHROMIUM.is_file():
        raise RuntimeError(f"{CHROMIUM}: not installed; run the project's setup script")
    args = [*CHROMIUM_ARGS, *options.pop("args", [])]
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=args, **options
    )


class LiveServer:
    """Serves an ASGI app with uvicorn on a free loopback port, in a thread of its own."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", **config: Any) -> None:
        # Bind first and hand uvicorn the socket: no window where another process takes the port.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        options: dict[str, Any] = {"log_level": "warning", "lifespan": "on", "access_log": False}
        options.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, **options))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        # uvicorn installs signal handlers only in the main thread, so here it installs none.
        try:
            self.server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start()/stop() in the test's thread
            self._error = exc

    def start(self, timeout: float = 20.0) -> LiveServer:
        """Start serving; returns once the app's lifespan has started."""
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()

        def ready() -> bool:
            if self._error is not None or not self._thread or not self._thread.is_alive():
                raise RuntimeError(f"uvicorn stopped while starting: {self._error!r}")
            return self.server.started

        wait_until(ready, timeout=timeout, message="uvicorn to start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit (graceful), wait for the thread; idempotent."""
        if self._thread is not None:
            self.server.should_exit = True
            self._thread.join(timeout)
            if self._thread.is_alive():
                # A second request forces it, as a second SIGTERM would.
                self.server.force_exit = True
                self._thread.join(timeout)
            alive = self._thread.is_alive()
            self._thread = None
            if alive:
                raise RuntimeError(f"uvicorn on port {self.port} did not stop in {timeout}s")
        self._sock.close()
        if self._error is not None:
            raise RuntimeError("uvicorn failed") from self._error

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
