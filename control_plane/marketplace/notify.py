"""Who hears about each step of a job, and what the e-mail says."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..models import User
from .mail import MailTemplates, queue
from .models import ServiceRequest, WorkerProfile

# Every event that sends an e-mail; each has a template per language in
# templates/marketplace/email/<lang>/<event>.txt.
EVENTS = (
    "request_received",  # client: we have your request
    "worker_assigned",  # client: who will do it
    "job_assigned",  # worker: a new job for you
    "quote_sent",  # client: here is the quote, accept or decline
    "quote_accepted",  # worker: the client accepted, the job is scheduled
    "job_scheduled",  # client: confirmed for that day
    "quote_declined",  # worker: the client declined
    "job_done",  # client: done, please rate it
    "job_closed",  # client and worker: closed
    "job_canceled",  # worker: the client canceled
    "review_received",  # worker: a new review
)


class Notifier:
    """Queues the e-mails of a job's events, linking back to the console."""

    def __init__(self, templates: MailTemplates, public_url: str) -> None:
        self.templates = templates
        self.public_url = public_url.rstrip("/")

    def link(self, request: ServiceRequest) -> str:
        """The console page of ``request``."""
        return f"{self.public_url}/market/requests/{request.id}"

    def tell(
        self,
        session: Session,
        user: User | None,
        event: str,
        request: ServiceRequest,
        **context: Any,
    ) -> None:
        """Queue ``event``'s e-mail about ``request`` to ``user`` (nobody, inactive: nothing)."""
        if event not in EVENTS:
            raise ValueError(f"event: unknown marketplace event {event!r}")
        if user is None or not user.is_active or not user.email:
            return
        queue(
            session,
            self.templates,
            user=user,
            event=event,
            request_id=request.id,
            context={
                "request": request,
                "service": request.category,
                "link": self.link(request),
                **context,
            },
        )

    def tell_worker(
        self,
        session: Session,
        to: WorkerProfile | None,
        event: str,
        request: ServiceRequest,
        **context: Any,
    ) -> None:
        """Queue ``event``'s e-mail to the worker ``to`` (nobody if None)."""
        if to is not None:
            self.tell(session, session.get(User, to.user_id), event, request, **context)
