"""The device's HTTPS calls to the control plane: uploads and its new credentials.

Authenticated with HTTP Basic (device id, MQTT password): the control plane checks the same
hash the broker does, so a device needs no second secret. The CA from ``jobs.ca_file`` is
pinned when given (a site with its own CA), else the system's trust store is used.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

__all__ = ["DeviceHttp", "HttpFailed", "ssl_context"]


if TYPE_CHECKING:
    import httpx


class HttpFailed(Exception):
    """The control plane could not be reached or said no; the message says where and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """TLS verification against ``ca_file`` (pinned) or the system's CAs."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


class DeviceHttp:
    """Calls under ``{base_url}/api/v1/devices/{device_id}/`` as the device."""

    def __init__(
        self,
        base_url: str,
        device_id: str,
        password: Callable[[], str],
        *,
        ca_file: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self._password = password
        self._ca_file = ca_file
        self._timeout = timeout
        self._transport = transport

    def _client(self, password: str | None = None) -> httpx.AsyncClient:
        import httpx  # on demand: the idle daemon does without it

        return httpx.AsyncClient(
            base_url=f"{self.base_url}/api/v1/devices/{self.device_id}",
            auth=httpx.BasicAuth(self.device_id, password or self._password()),
            verify=ssl_context(self._ca_file) if self._transport is None else True,
            timeout=self._timeout,
            transport=self._transport,
        )

    async def _post(
        self,
        path: str,
        *,
        content: bytes,
        content_type: str,
        params: Mapping[str, str] | None = None,
        password: str | None = None,
    ) -> Any:
        import httpx  # on demand: the idle daemon does without it

        if not self.base_url.startswith(("https://", "http://")):
            raise HttpFailed(f"control_plane_url: not configured (got {self.base_url!r})")
        url = f"{self.base_url}/api/v1/devices/{self.device_id}/{path}"
        try:
            async with self._client(password) as client:
                response = await client.post(
                    path,
                    content=content,
                    params=dict(params or {}),
                    headers={"Content-Type": content_type, "Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise HttpFailed(f"POST {url}: {type(exc).__name__}: {exc}") from exc
        if response.is_error:
            body = " ".join(response.text.split())[:300]
            raise HttpFailed(
                f"POST {url}: HTTP {response.status_code} {body}".rstrip(), response.status_code
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    async def upload_report(self, report_json: bytes, execution_id: str) -> Any:
        """Store a diagnostics report; returns the control plane's answer (with its id)."""
        return await self._post(
            "diagnostics",
            content=report_json,
            content_type="application/json",
            params={"execution_id": execution_id},
        )

    async def upload_logs(self, gz: bytes, execution_id: str) -> Any:
        """Store a gzip log bundle; returns the control plane's answer (with its id)."""
        return await self._post(
            "logs",
            content=gz,
            content_type="application/gzip",
            params={"execution_id": execution_id},
        )

    async def set_password(self, new_password: str, *, auth_password: str | None = None) -> None:
        """Replace the device's MQTT password, authenticated with ``auth_password``."""
        await self._post(
            "credentials",
            content=json.dumps({"password": new_password}).encode(),
            content_type="application/json",
            password=auth_password,
        )
