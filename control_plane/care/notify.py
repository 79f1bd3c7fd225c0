"""Escalation notifications: e-mail and signed webhooks, off the request path, on the timeline.

A new escalation (and every reminder of an urgent one) goes to the coordinators' mailbox and
webhook from the settings and to the e-mail and webhook of each contact it draws on. A worker
thread delivers with retries and writes each result on the escalation's timeline, so a
coordinator sees who was told and what failed. No channel at all is a timeline line too:
nothing waits silently.
"""

from __future__ import annotations

import json
import logging
import queue
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings
from ..db import utcnow
from ..fleet.notify import sign
from ..models import Beneficiary
from .escalations import contacts_for, event
from .models import Escalation, Target

log = logging.getLogger(__name__)

TARGET_IT = {
    "specialist": "servizi specialistici",
    "social": "servizi sociali",
    "emergency": "EMERGENZA",
    "family": "famiglia e altri caregiver",
}


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient."""

    channel: str  # "email" or "webhook"
    to: str


def _render_email(sender: str, to: str, body: dict[str, Any], public_url: str) -> EmailMessage:
    esc = body["escalation"]
    urgent = "URGENTE — " if esc["urgent"] else ""
    reminder = "Promemoria: " if body["reminder"] else ""
    msg = EmailMessage()
    msg["Subject"] = (
        f"[ΔiFronte] {reminder}{urgent}segnalazione per {body['beneficiary']} "
        f"({TARGET_IT.get(esc['target'], esc['target'])})"
    )
    msg["From"] = sender
    msg["To"] = to
    link = f"{public_url.rstrip('/')}/care/escalations/{esc['id']}"
    msg.set_content(
        f"{esc['summary']}\n\nPersona: {body['beneficiary']}\n"
        f"Destinatari: {TARGET_IT.get(esc['target'], esc['target'])}\n{link}\n\n"
        f"-- English --\n{'URGENT ' if esc['urgent'] else ''}escalation ({esc['target']}) for "
        f"{body['beneficiary']}: {esc['summary']}\n{link}\n"
    )
    return msg


class EscalationNotifier:
    """Delivers escalation notifications from one worker thread."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        retries: int = 2,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._factory = factory
        self._settings = settings
        self.retries, self.backoff_s = retries, backoff_s
        self._queue: queue.Queue[tuple[int, bool] | None] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=10, transport=transport)
        self.sent: list[tuple[int, str, str]] = []  # (escalation id, channel, recipient)
        self.failed: list[tuple[int, str, str, str]] = []
        self._idle = threading.Event()
        self._idle.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="care-notify", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (bounded), then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        self._http.close()

    async def astart(self, _app: FastAPI) -> None:
        self.start()

    async def astop(self, _app: FastAPI) -> None:
        self.stop()

    def submit(self, escalation_id: int, *, reminder: bool = False) -> None:
        """Queue the notifications of an escalation (call after its transaction committed)."""
        self._idle.clear()
        try:
            self._queue.put_nowait((escalation_id, reminder))
        except queue.Full:
            log.error("care notification queue full; escalation %d not notified", escalation_id)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once everything submitted has been delivered or given up (tests)."""
        return self._idle.wait(timeout)

    # -- delivery ----------------------------------------------------------------------------

    def recipients(self, session: Session, escalation: Escalation) -> list[Delivery]:
        """Who hears of ``escalation``: the coordinators' channels and its contacts."""
        s = self._settings
        out = [Delivery("email", to) for to in s.care_email_to if s.smtp_host]
        if s.care_webhook_url:
            out.append(Delivery("webhook", s.care_webhook_url))
        for contact in contacts_for(session, escalation.beneficiary_id, Target(escalation.target)):
            if contact.email and s.smtp_host:
                out.append(Delivery("email", contact.email))
            if contact.webhook_url:
                out.append(Delivery("webhook", contact.webhook_url))
        return list(dict.fromkeys(out))  # once each, in order

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._notify(*item)
            except Exception:
                log.exception("notifying escalation %s failed", item[0])
            if self._queue.empty():
                self._idle.set()
        self._idle.set()

    def _notify(self, escalation_id: int, reminder: bool) -> None:
        with self._factory() as session:
            escalation = session.get(Escalation, escalation_id)
            if escalation is None:
                return
            beneficiary = session.get(Beneficiary, escalation.beneficiary_id)
            body = {
                "event": "escalation.reminder" if reminder else "escalation.opened",
                "reminder": reminder,
                "beneficiary": beneficiary.name if beneficiary else "",
                "escalation": {
                    "id": escalation.id,
                    "beneficiary_id": escalation.beneficiary_id,
                    "target": escalation.target,
                    "urgent": escalation.urgent,
                    "status": escalation.status,
                    "summary": escalation.summary,
                    "created_at": escalation.created_at.isoformat(),
                },
            }
            deliveries = self.recipients(session, escalation)
            results: list[tuple[Delivery, str | None]] = []
            for delivery in deliveries:
                results.append((delivery, self._deliver(delivery, body)))
            now = utcnow()
            for delivery, error in results:
                kind = "notified" if error is None else "notify_failed"
                text = f"{delivery.channel}: {delivery.to}" + (f" — {error}" if error else "")
                event(
                    session,
                    escalation,
                    kind,
                    text,
                    data={"channel": delivery.channel, "to": delivery.to, "reminder": reminder},
                    now=now,
                )
                record = (escalation.id, delivery.channel, delivery.to)
                if error is None:
                    self.sent.append(record)
                else:
                    self.failed.append((*record, error))
            if not deliveries:
                event(
                    session,
                    escalation,
                    "notify_failed",
                    "no e-mail or webhook is configured for this escalation",
                    now=now,
                )
            escalation.last_notified_at = now
            session.commit()

    def _deliver(self, delivery: Delivery, body: dict[str, Any]) -> str | None:
        send: Callable[[], None]
        if delivery.channel == "email":
            s = self._settings

            def send() -> None:
                assert s.smtp_host is not None
                with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
                    if s.smtp_starttls:
                        smtp.starttls()
                    if s.smtp_username:
                        smtp.login(s.smtp_username, s.smtp_password or "")
                    smtp.send_message(_render_email(s.smtp_from, delivery.to, body, s.public_url))
        else:
            payload = json.dumps(body, sort_keys=True).encode()

            def send() -> None:
                headers = {
                    "Content-Type": "application/json",
                    "X-Difronte-Signature": sign(
                        self._settings.care_webhook_secret, int(time.time()), payload
                    ),
                }
                self._http.post(delivery.to, content=payload, headers=headers).raise_for_status()

        error = ""
        for attempt in range(self.retries + 1):
            try:
                send()
                return None
            except Exception as exc:
                error = str(exc) or type(exc).__name__
                if attempt < self.retries:
                    time.sleep(self.backoff_s * 2**attempt)
        log.error("%s notification to %s failed: %s", delivery.channel, delivery.to, error)
        return error[:500]
