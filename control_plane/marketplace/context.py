"""The marketplace's shared machinery for one app: settings, photo store, mail, notifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from .config import MarketSettings
from .mail import EmailSender, LogSender, MailTemplates, SmtpSender
from .media import MediaStore
from .notify import Notifier


@dataclass
class Market:
    """Built once per app (``app.state.market``); tests may swap ``sender``."""

    settings: MarketSettings
    store: MediaStore
    templates: MailTemplates
    notifier: Notifier
    sender: EmailSender


def make_sender(settings: MarketSettings) -> EmailSender:
    """SMTP when a host is configured, else the log."""
    if not settings.smtp_host:
        return LogSender()
    return SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        from_address=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout,
    )


def build_market(core: Settings, settings: MarketSettings | None = None) -> Market:
    """The marketplace machinery for an app with ``core`` settings."""
    settings = settings or MarketSettings()
    templates = MailTemplates()
    return Market(
        settings=settings,
        store=MediaStore(settings.media_dir, max_bytes=settings.max_photo_bytes),
        templates=templates,
        notifier=Notifier(templates, core.public_url),
        sender=make_sender(settings),
    )


def get_market(request: Request) -> Market:
    """The app's marketplace machinery."""
    market = getattr(request.app.state, "market", None)
    if not isinstance(market, Market):
        raise RuntimeError("the marketplace is not installed in this app")
    return market


MarketDep = Annotated[Market, Depends(get_market)]
