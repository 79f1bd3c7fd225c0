"""Send a diagnostics report to the control plane over HTTPS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

__all__ = ["UploadError", "upload_report"]


if TYPE_CHECKING:
    import httpx


class UploadError(Exception):
    """The report did not reach the server; the message says where and why."""


def upload_report(
    report: Mapping[str, Any],
    url: str,
    *,
    token: str | None = None,
    client: httpx.Client | None = None,
    timeout: float = 30.0,
) -> Any:
    """POST the report as JSON (bearer token if given); return the server's JSON answer or None."""
    import httpx  # on demand: the idle daemon does without it

    if not url.startswith(("https://", "http://")):
        raise UploadError(f"url: expected an http(s) URL, got {url!r}")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    owned = client is None
    http = client if client is not None else httpx.Client(timeout=timeout)
    try:
        response = http.post(url, json=dict(report), headers=headers)
    except httpx.HTTPError as exc:
        raise UploadError(f"upload to {url} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if owned:
            http.close()
    if response.is_error:
        body = " ".join(response.text.split())[:200]
        raise UploadError(f"upload to {url} failed: HTTP {response.status_code} {body}".rstrip())
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None  # accepted, but the server said nothing machine-readable
