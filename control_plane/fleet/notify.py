"""Alert notifications: e-mail over SMTP and a signed webhook, sent off the request path.

New alerts are snapshotted into a queue; a worker thread delivers them with retries, so a slow
mail server never holds a database transaction. A failing channel never stops the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import queue
import smtplib
import threading
import time
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from .. import alerts
from ..config import Settings
from ..models import Alert

log = logging.getLogger(__name__)

# Where a session keeps the alerts opened in its current transaction.
_PENDING = "difronte.fleet.pending_notifications"

_SEVERITY_IT = {
    "info": "informazione",
    "warning": "attenzione",
    "high": "importante",
    "urgent": "URGENTE",
}


def snapshot(alert: Alert) -> dict[str, Any]:
    """A plain copy of an alert that can cross threads."""
    return {
        "id": alert.id,
        "key": alert.key,
        "kind": alert.kind,
        "severity": alert.severity,
        "device_id": alert.device_id,
        "beneficiary_id": alert.beneficiary_id,
        "message": alert.message,
        "data": alert.data or {},
        "opened_at": alert.opened_at.isoformat() if alert.opened_at else None,
    }


class Channel(Protocol):
    """A way of telling people about a new alert; ``send`` raises when delivery failed."""

    name: str

    def send(self, alert: dict[str, Any]) -> None: ...


class EmailChannel:
    """Plain-text e-mail, Italian first with English below."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        public_url: str = "",
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.recipients = list(recipients)
        self.starttls, self.username, self.password = starttls, username, password
        self.public_url = public_url.rstrip("/")

    def render(self, alert: dict[str, Any]) -> EmailMessage:
        """The message for one alert."""
        sev = alert["severity"]
        msg = EmailMessage()
        msg["Subject"] = f"[ΔiFronte] {_SEVERITY_IT.get(sev, sev)}: {alert['message']}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        link = f"{self.public_url}/fleet/{alert['device_id']}" if alert["device_id"] else ""
        msg.set_content(
            f"{alert['message']}\n\n"
            f"Tipo: {alert['kind']} — gravità: {_SEVERITY_IT.get(sev, sev)}\n"
            f"Aperto: {alert['opened_at']}\n{link}\n\n"
            f"-- English --\nAlert ({sev}, {alert['kind']}): {alert['message']}\n"
        )
        return msg

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver by SMTP."""
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(self.render(alert))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook signature: HMAC-SHA256 over "<timestamp>.<body>"."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """Check a signature header (for receivers, and tests)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), header)


class WebhookChannel:
    """POST the alert as JSON with an ``X-Difronte-Signature`` header."""

    name = "webhook"

    def __init__(self, url: str, secret: str, *, transport: httpx.BaseTransport | None = None):
        self.url, self.secret = url, secret
        self._client = httpx.Client(timeout=10, transport=transport)

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver; raises on a non-2xx answer so the dispatcher retries."""
        body = json.dumps({"event": "alert.opened", "alert": alert}, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Difronte-Signature": sign(self.secret, int(time.time()), body),
        }
        self._client.post(self.url, content=body, headers=headers).raise_for_status()

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


class Dispatcher:
    """Delivers queued alerts to every channel from one worker thread, with retries."""

    def __init__(
        self, channels: Sequence[Channel], *, retries: int = 3, backoff_s: float = 1.0
    ) -> None:
        self.channels = list(channels)
        self.retries, self.backoff_s = retries, backoff_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self.sent: list[tuple[str, str]] = []  # (channel, alert key), for operators and tests
        self.failed: list[tuple[str, str, str]] = []
        # Per dispatcher: two apps in one process each get their own notifications.
        self._pending_key = f"{_PENDING}:{id(self)}"

    def submit(self, alert: Alert) -> None:
        """Alert notifier hook: snapshot now, queue when the transaction commits."""
        snap = snapshot(alert)
        session = object_session(alert)
        if session is None:
            self._enqueue(snap)
            return
        # Nobody should be told about an alert that a rollback then takes back.
        key = self._pending_key
        if key not in session.info:
            session.info[key] = []
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_rollback", self._after_rollback)
        session.info[key].append(snap)

    def _after_commit(self, session: Session) -> None:
        pending, session.info[self._pending_key] = session.info.get(self._pending_key, []), []
        for snap in pending:
            self._enqueue(snap)

    def _after_rollback(self, session: Session) -> None:
        session.info[self._pending_key] = []

    def _enqueue(self, snap: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(snap)
        except queue.Full:
            log.error("notification queue full; alert %s not notified", snap["key"])

    def start(self) -> None:
        """Start the worker and subscribe to new alerts."""
        self._thread = threading.Thread(target=self._run, name="alert-notify", daemon=True)
        self._thread.start()
        alerts.add_notifier(self.submit)

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (bounded), then stop."""
        alerts.remove_notifier(self.submit)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    async def astart(self, _app: FastAPI) -> None:
        """App startup hook."""
        self.start()

    async def astop(self, _app: FastAPI) -> None:
        """App shutdown hook: the worker may still be delivering, so wait in a thread."""
        await asyncio.to_thread(self.stop)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            for channel in self.channels:
                self._deliver(channel, item)

    def _deliver(self, channel: Channel, alert: dict[str, Any]) -> None:
        for attempt in range(self.retries + 1):
            try:
                channel.send(alert)
                self.sent.append((channel.name, alert["key"]))
                return
            except Exception as exc:
                if attempt == self.retries:
                    log.error("%s notification for %s failed: %s", channel.name, alert["key"], exc)
                    self.failed.append((channel.name, alert["key"], str(exc)))
                    return
                time.sleep(self.backoff_s * 2**attempt)


def dispatcher_from_settings(settings: Settings) -> Dispatcher | None:
    """The channels the settings ask for; None when no channel is configured."""
    channels: list[Channel] = []
    if settings.smtp_host and settings.alert_email_to:
        channels.append(
            EmailChannel(
                settings.smtp_host,
                settings.smtp_port,
                settings.smtp_from,
                settings.alert_email_to,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=settings.smtp_password,
                public_url=settings.public_url,
            )
        )
    if settings.alert_webhook_url:
        channels.append(WebhookChannel(settings.alert_webhook_url, settings.alert_webhook_secret))
    return Dispatcher(channels) if channels else None
