"""The life of a quote request, as a pure state machine.

new ─assign─▶ assigned ─quote─▶ quoted ─accept─▶ scheduled ─complete─▶ done ─close─▶ closed
                 ▲                 │ ▲ (a new quote replaces a pending one)
                 │              decline│
                 └──assign── declined ─┴─quote        declined ─close─▶ closed

A client may cancel until the job is scheduled. Who may take each action is part of the
machine too, so the API and the pages ask the same question.
"""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    QUOTED = "quoted"
    DECLINED = "declined"  # the client declined the quote; a new one may follow
    SCHEDULED = "scheduled"
    DONE = "done"
    CLOSED = "closed"
    CANCELED = "canceled"


class Action(StrEnum):
    ASSIGN = "assign"
    QUOTE = "quote"
    ACCEPT = "accept"
    DECLINE = "decline"
    COMPLETE = "complete"
    CLOSE = "close"
    CANCEL = "cancel"
    RATE = "rate"


class Actor(StrEnum):
    """How the person asking relates to the request."""

    ADMIN = "admin"  # a marketplace administrator (or a system administrator)
    CLIENT = "client"  # the client who made this request
    WORKER = "worker"  # the worker assigned to it
    OTHER = "other"


S, A = RequestStatus, Action

_TRANSITIONS: dict[tuple[RequestStatus, Action], RequestStatus] = {
    (S.NEW, A.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, A.ASSIGN): S.ASSIGNED,
    (S.DECLINED, A.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, A.QUOTE): S.QUOTED,
    (S.QUOTED, A.QUOTE): S.QUOTED,
    (S.DECLINED, A.QUOTE): S.QUOTED,
    (S.QUOTED, A.ACCEPT): S.SCHEDULED,
    (S.QUOTED, A.DECLINE): S.DECLINED,
    (S.SCHEDULED, A.COMPLETE): S.DONE,
    (S.DONE, A.CLOSE): S.CLOSED,
    (S.DECLINED, A.CLOSE): S.CLOSED,
    (S.NEW, A.CANCEL): S.CANCELED,
    (S.ASSIGNED, A.CANCEL): S.CANCELED,
    (S.QUOTED, A.CANCEL): S.CANCELED,
    (S.DECLINED, A.CANCEL): S.CANCELED,
    # Rating leaves the status alone: it is allowed once the work is done.
    (S.DONE, A.RATE): S.DONE,
    (S.CLOSED, A.RATE): S.CLOSED,
}

_WHO: dict[Action, frozenset[Actor]] = {
    A.ASSIGN: frozenset({Actor.ADMIN}),
    A.QUOTE: frozenset({Actor.ADMIN}),
    A.ACCEPT: frozenset({Actor.CLIENT}),
    A.DECLINE: frozenset({Actor.CLIENT}),
    A.COMPLETE: frozenset({Actor.WORKER, Actor.ADMIN}),
    A.CLOSE: frozenset({Actor.ADMIN}),
    A.CANCEL: frozenset({Actor.CLIENT, Actor.ADMIN}),
    A.RATE: frozenset({Actor.CLIENT}),
}

# Jobs that count towards a worker's current load.
ACTIVE = frozenset({S.ASSIGNED, S.QUOTED, S.DECLINED, S.SCHEDULED})
# What a client sees in the request list as "still going".
OPEN = frozenset({S.NEW, S.ASSIGNED, S.QUOTED, S.DECLINED, S.SCHEDULED})


class TransitionError(ValueError):
    """An action that the request's status does not allow; the message says why."""


class NotAllowed(PermissionError):
    """The person asking may not take this action on this request."""


def next_status(status: RequestStatus | str, action: Action) -> RequestStatus:
    """The status after ``action``; raises :class:`TransitionError` if it is not possible."""
    current = RequestStatus(status)
    try:
        return _TRANSITIONS[(current, action)]
    except KeyError:
        raise TransitionError(
            f"status: cannot {action.value} a request that is {current.value}"
        ) from None


def check(status: RequestStatus | str, action: Action, actor: Actor) -> RequestStatus:
    """Like :func:`next_status`, but first check that ``actor`` may take ``action``."""
    if actor not in _WHO[action]:
        raise NotAllowed(f"only {', '.join(sorted(_WHO[action]))} may {action.value} a request")
    return next_status(status, action)


def allowed_actions(status: RequestStatus | str, actor: Actor) -> list[Action]:
    """The actions ``actor`` may take now, in a stable order (for buttons and the API)."""
    current = RequestStatus(status)
    return [
        action for action in Action if actor in _WHO[action] and (current, action) in _TRANSITIONS
    ]
