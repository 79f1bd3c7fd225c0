"""The edge's lossless on-disk outbox: queue first, publish, delete after the broker's PUBACK."""

from edge.outbox.replay import PublishFn, PublishRejected, drain
from edge.outbox.store import Outbox, OutboxError, OutboxItem, OutboxKind

__all__ = [
    "Outbox",
    "OutboxError",
    "OutboxItem",
    "OutboxKind",
    "PublishFn",
    "PublishRejected",
    "drain",
]
