"""E-mail: a sender protocol, an SMTP sender, per-language templates, and an outbox.

A state change queues its e-mails (``models.Notification``) in the same transaction, already
rendered in the recipient's language; :func:`deliver_pending`, run periodically, sends them
and retries with backoff. So a slow or absent mail server never fails a request, and no
e-mail is lost or sent for a change that was rolled back.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol, cast

import jinja2
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..db import transaction
from ..models import User
from .models import Notification

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "marketplace" / "email"
LANGUAGES = ("it", "en")
# A message claimed this long ago by a sender that never finished (a crash) is retried.
_STALE_CLAIM = dt.timedelta(minutes=10)
_BACKOFF_BASE_S = 30.0
_BACKOFF_CAP_S = 3600.0


@dataclass(frozen=True)
class Email:
    """One plain-text e-mail to one person."""

    to: str
    subject: str
    body: str


class MailError(Exception):
    """Sending failed; ``permanent`` when retrying cannot help (address refused)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class EmailSender(Protocol):
    """Anything that can send an :class:`Email` (raises :class:`MailError` when it cannot)."""

    def send(self, email: Email) -> None:
        """Send ``email`` now."""


class SmtpSender:
    """Sends through an SMTP server with the standard library (optional STARTTLS and login)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        from_address: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.from_address = from_address
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def message(self, email: Email) -> EmailMessage:
        """The MIME message for ``email``."""
        msg = EmailMessage()
        msg["From"] = self.from_address
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        msg["Message-ID"] = make_msgid(domain="difronte.factotum")
        # Tells mail servers and autoresponders this is not a person writing.
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(email.body)
        return msg

    def send(self, email: Email) -> None:
        """Send ``email``; library and network errors become :class:`MailError`."""
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.message(email))
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailError(
                f"{email.to}: address refused ({exc.recipients})", permanent=True
            ) from exc
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            raise MailError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"cannot reach {self.host}:{self.port}: {exc}") from exc


class LogSender:
    """Writes e-mails to the log instead of sending them (no mail server configured)."""

    def __init__(self) -> None:
        self.sent: list[Email] = []

    def send(self, email: Email) -> None:
        """Log ``email`` and keep it in ``sent``."""
        log.info("e-mail to %s: %s", email.to, email.subject)
        self.sent.append(email)


# --- templates -----------------------------------------------------------------------------


def format_money(cents: int, lang: str) -> str:
    """Euro cents in the reader's notation ("12,50 €" in Italian, "€12.50" in English)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    if lang == "it":
        grouped = f"{euros:,}".replace(",", ".")
        return f"{sign}{grouped},{rest:02d} €"
    return f"{sign}€{euros:,}.{rest:02d}"


_MONTHS_IT = (
    "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre"
).split()


def format_date(day: dt.date | None, lang: str) -> str:
    """A day in words ("3 marzo 2026" / "3 March 2026")."""
    if day is None:
        return ""
    if lang == "it":
        return f"{day.day} {_MONTHS_IT[day.month - 1]} {day.year}"
    return f"{day.day} {day.strftime('%B')} {day.year}"


class MailTemplates:
    """Subject and body of each event's e-mail, one template per language.

    A template's first line is the subject; the body follows a blank line.
    """

    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            autoescape=False,  # plain text mail: nothing here is HTML
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, event: str, lang: str, context: dict[str, Any]) -> tuple[str, str]:
        """``(subject, body)`` of ``event``'s e-mail in ``lang`` (Italian if unknown)."""
        lang = lang if lang in LANGUAGES else "it"
        template = self.env.get_template(f"{lang}/{event}.txt")
        text = template.render(
            **context,
            money=lambda cents: format_money(cents, lang),
            day=lambda d: format_date(d, lang),
        )
        subject, _, body = text.partition("\n\n")
        return subject.strip(), body.strip() + "\n"


def language_of(user: User) -> str:
    """The language to write to ``user`` in."""
    lang = (user.locale or "it").split("-")[0].lower()
    return lang if lang in LANGUAGES else "it"


def queue(
    session: Session,
    templates: MailTemplates,
    *,
    user: User,
    event: str,
    context: dict[str, Any],
    request_id: int | None = None,
) -> Notification:
    """Render ``event``'s e-mail for ``user`` and add it to the outbox (caller's transaction)."""
    lang = language_of(user)
    subject, body = templates.render(event, lang, {"name": user.name, **context})
    row = Notification(
        user_id=user.id,
        to_email=user.email,
        lang=lang,
        event=event,
        request_id=request_id,
        subject=subject[:255],
        body=body,
    )
    session.add(row)
    return row


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempts - 1)))


def deliver_pending(
    factory: sessionmaker[Session],
    sender: EmailSender,
    now: dt.datetime,
    *,
    max_attempts: int = 6,
    batch: int = 50,
) -> int:
    """Send the e-mails that are due; returns how many were sent.

    Each message is claimed with a conditional UPDATE before sending, so replicas running
    this at the same time never send one twice.
    """
    with transaction(factory) as session:
        session.execute(
            update(Notification)
            .where(
                Notification.status == "sending",
                Notification.next_attempt_at < now - _STALE_CLAIM,
            )
            .values(status="pending")
        )
        due = list(
            session.scalars(
                select(Notification.id)
                .where(Notification.status == "pending", Notification.next_attempt_at <= now)
                .order_by(Notification.id)
                .limit(batch)
            )
        )
    sent = 0
    warned = False
    for nid in due:
        with transaction(factory) as session:
            result = session.execute(
                update(Notification)
                .where(Notification.id == nid, Notification.status == "pending")
                .values(status="sending", next_attempt_at=now)
            )
            claimed = cast(CursorResult[Any], result).rowcount
            if not claimed:
                continue
            row = session.get(Notification, nid)
            assert row is not None
            email = Email(row.to_email, row.subject, row.body)
        try:
            sender.send(email)
        except MailError as exc:
            # One warning per run; the rest of a failing batch is the same outage.
            log.log(logging.DEBUG if warned else logging.WARNING, "e-mail %s: %s", nid, exc)
            warned = True
            with transaction(factory) as session:
                row = session.get(Notification, nid)
                assert row is not None
                row.attempts += 1
                row.last_error = str(exc)[:1000]
                if exc.permanent or row.attempts >= max_attempts:
                    row.status = "failed"
                else:
                    row.status = "pending"
                    row.next_attempt_at = now + _backoff(row.attempts)
            continue
        with transaction(factory) as session:
            row = session.get(Notification, nid)
            assert row is not None
            row.attempts += 1
            row.status = "sent"
            row.sent_at = now
            row.last_error = ""
        sent += 1
    return sent
