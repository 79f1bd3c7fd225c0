"""E-mail: templates in Italian and English, the SMTP sender against a real SMTP server, and
the outbox's retries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from control_plane.db import make_engine, make_sessionmaker, transaction, utcnow
from control_plane.marketplace.mail import (
    Email,
    LogSender,
    MailError,
    MailTemplates,
    SmtpSender,
    deliver_pending,
    format_date,
    format_money,
    queue,
)
from control_plane.marketplace.models import Notification
from control_plane.marketplace.notify import EVENTS
from control_plane.models import User
from tests.marketplace.conftest import SmtpServer, free_port


def _context() -> dict[str, Any]:
    goods = [
        SimpleNamespace(title="Poltrona", status="accepted", value_cents=8000, decline_reason=""),
        SimpleNamespace(title="Cappotto", status="declined", value_cents=None, decline_reason="no"),
    ]
    request = SimpleNamespace(
        id=7,
        area="Milano",
        goods=goods,
        description="Imbiancare il soggiorno",
        date_kind="exact",
        exact_date=dt.date(2031, 3, 5),
        window_start=None,
        window_end=None,
        worker=SimpleNamespace(display_name="Giulia"),
        cancel_reason="non serve più",
    )
    quote = SimpleNamespace(
        price_cents=25000,
        goods_value_cents=8000,
        credit_cents=8000,
        due_cents=17000,
        date=dt.date(2031, 3, 5),
        note="",
        decline_reason="troppo caro",
    )
    return {
        "name": "Anna",
        "request": request,
        "service": SimpleNamespace(name="Imbiancatura", name_en="Wall painting"),
        "link": "http://factotum.test/market/requests/7",
        "worker": SimpleNamespace(display_name="Giulia"),
        "quote": quote,
        "review": SimpleNamespace(stars=4, comment="Brava"),
    }


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_has_both_languages(event: str) -> None:
    templates = MailTemplates()
    it_subject, it_body = templates.render(event, "it", _context())
    en_subject, en_body = templates.render(event, "en", _context())
    assert it_subject and en_subject and it_subject != en_subject
    for text in (it_subject, it_body, en_subject, en_body):
        assert "{{" not in text and "{%" not in text and "\n\n\n" not in text
    assert it_body.startswith("Gentile Anna,") and en_body.startswith("Dear Anna,")
    assert "Wall painting" in en_subject + en_body or "Wall painting" not in it_body


def test_unknown_language_falls_back_to_italian() -> None:
    assert MailTemplates().render("job_done", "de", _context())[1].startswith("Gentile")


def test_money_and_dates_in_each_language() -> None:
    assert format_money(123456, "it") == "1.234,56 €"
    assert format_money(5, "en") == "€0.05"
    assert format_money(-8000, "it") == "-80,00 €"
    assert format_date(dt.date(2031, 3, 5), "it") == "5 marzo 2031"
    assert format_date(dt.date(2031, 3, 5), "en") == "5 March 2031"
    assert format_date(None, "it") == ""


def test_smtp_sender_delivers_utf8_mail(smtp_server: SmtpServer) -> None:
    sender = SmtpSender(smtp_server.host, smtp_server.port, from_address="Factotum <f@example.org>")
    sender.send(Email("anna@example.org", "Città: 170,00 €", "Perché sì: è così.\n"))
    [message] = smtp_server.wait_for(1)
    assert message["To"] == "anna@example.org"
    assert message["From"] == "Factotum <f@example.org>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert str(message["Subject"]) == "Città: 170,00 €" or "=?utf-8?" in message["Subject"]
    assert message.get_payload(decode=True).decode().rstrip() == "Perché sì: è così."


def test_smtp_errors_become_mail_errors(smtp_server: SmtpServer) -> None:
    closed = SmtpSender("127.0.0.1", free_port(), from_address="f@example.org", timeout=2)
    with pytest.raises(MailError) as info:
        closed.send(Email("a@example.org", "s", "b"))
    assert not info.value.permanent

    async def refuse(server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        return "550 no such user"

    smtp_server.inbox.handle_RCPT = refuse  # type: ignore[attr-defined]
    sender = SmtpSender(smtp_server.host, smtp_server.port, from_address="f@example.org")
    with pytest.raises(MailError) as info:
        sender.send(Email("ghost@example.org", "s", "b"))
    assert info.value.permanent and "ghost@example.org" in str(info.value)


# --- the outbox ------------------------------------------------------------------------------


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _queue(
    factory: sessionmaker[Session], email: str = "anna@example.org", lang: str = "en"
) -> int:
    with transaction(factory) as session:
        user = User(email=email, name="Anna", role="client", password_hash="x", locale=lang)
        session.add(user)
        session.flush()
        row = queue(session, MailTemplates(), user=user, event="job_done", context=_context())
        session.flush()
        return row.id


def _row(factory: sessionmaker[Session], nid: int) -> Notification:
    with factory() as session:
        row = session.get(Notification, nid)
        assert row is not None
        return row


def test_outbox_retries_with_backoff_then_sends(
    factory: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    nid = _queue(factory)
    assert (
        _row(factory, nid).lang == "en"
        and _row(factory, nid).subject == "Factotum: job done, how did it go?"
    )
    now = utcnow()
    down = SmtpSender("127.0.0.1", free_port(), from_address="f@example.org", timeout=2)
    assert deliver_pending(factory, down, now) == 0
    row = _row(factory, nid)
    assert (row.status, row.attempts) == ("pending", 1) and "cannot reach" in row.last_error
    assert row.next_attempt_at == now + dt.timedelta(seconds=30)
    # Not due yet: nothing is tried.
    up = SmtpSender(smtp_server.host, smtp_server.port, from_address="f@example.org")
    assert deliver_pending(factory, up, now + dt.timedelta(seconds=10)) == 0
    assert deliver_pending(factory, up, now + dt.timedelta(seconds=31)) == 1
    row = _row(factory, nid)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    [message] = smtp_server.wait_for(1)
    assert message["Subject"] == "Factotum: job done, how did it go?"
    # Sent once: running again sends nothing.
    assert deliver_pending(factory, up, now + dt.timedelta(hours=1)) == 0


def test_outbox_gives_up_on_permanent_errors_and_after_max_attempts(
    factory: sessionmaker[Session],
) -> None:
    class Refusing:
        def __init__(self, permanent: bool) -> None:
            self.permanent = permanent

        def send(self, email: Email) -> None:
            raise MailError("refused", permanent=self.permanent)

    first = _queue(factory, "a@example.org")
    deliver_pending(factory, Refusing(permanent=True), utcnow())
    assert _row(factory, first).status == "failed"

    second = _queue(factory, "b@example.org")
    now = utcnow()
    for hour in range(3):
        deliver_pending(
            factory, Refusing(permanent=False), now + dt.timedelta(hours=hour), max_attempts=3
        )
    row = _row(factory, second)
    assert (row.status, row.attempts) == ("failed", 3)


def test_a_message_left_sending_by_a_crash_is_sent_later(factory: sessionmaker[Session]) -> None:
    nid = _queue(factory)
    now = utcnow()
    with transaction(factory) as session:
        row = session.get(Notification, nid)
        assert row is not None
        row.status, row.next_attempt_at = "sending", now - dt.timedelta(minutes=11)
    sender = LogSender()
    assert deliver_pending(factory, sender, now) == 1
    assert [e.to for e in sender.sent] == ["anna@example.org"]
