"""Draining the outbox to the broker: pipelined QoS 1 publishes, rows removed after PUBACK.

Order. `drain` hands items to `publish` in id order, up to `window` at a time, without
waiting for each PUBACK before sending the next: that pipelining is what makes replaying a
week of queued telemetry fast. Delivery is still in id order, because on one MQTT connection
a QoS 1 client sends PUBLISH packets in the order it is asked to, and the broker forwards
messages of one client on one topic in the order received (MQTT 3.1.1 and 5.0, §4.6
"Message ordering"). For that to hold, `publish` must hand its message to the client before
its first suspension point (aiomqtt's `Client.publish` does: it calls paho synchronously,
then awaits the PUBACK), or otherwise keep call order.

PUBACKs may resolve in any order; each resolved item is acked (deleted), in small
transactions of whatever resolved together. When a publish fails the round stops: the
items still in flight are cancelled, those already confirmed are acked, and the error is
re-raised. The caller reconnects and calls `drain` again, which starts over from the oldest
unacked id, so replay is again in id order. Items in flight at the failure may be delivered
twice, and one whose publish failed after a later one was confirmed arrives after it; both
are harmless because every payload carries its sequence number or id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from edge.outbox.store import Outbox, OutboxError, OutboxItem

log = logging.getLogger(__name__)

PublishFn = Callable[[str, bytes], Awaitable[None]]
"""Publish (topic, payload) at QoS 1; resolves on PUBACK, raises on failure."""


class PublishRejected(Exception):
    """Raised by a PublishFn when this one message can never be delivered (e.g. too large).

    `drain` then removes the item and logs it instead of retrying it forever, which would
    block everything queued behind it. Any other exception is treated as transient.
    """


async def drain(
    outbox: Outbox,
    publish: PublishFn,
    *,
    window: int = 32,
    batch: int = 256,
    wake: asyncio.Event | None = None,
    poll_interval: float = 1.0,
    abort: asyncio.Event | None = None,
) -> None:
    """Publish queued items in id order until cancelled; re-raise the first publish failure.

    ``abort`` (the session's "disconnected" event) ends the round at once with
    ConnectionError: a client does not fail the publishes it had in flight when its
    connection dropped (aiomqtt waits out each one's timeout), and waiting for them would
    hold the replay back after the session is connected again.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if poll_interval <= 0:
        raise ValueError(f"poll_interval must be > 0, got {poll_interval}")
    buffered: deque[OutboxItem] = deque()
    in_flight: dict[asyncio.Future[None], OutboxItem] = {}
    acked: list[int] = []  # confirmed by the broker, not yet deleted
    last_id = 0  # the highest id fetched in this round
    caught_up = False  # the last peek reached the end of the outbox
    aborted = asyncio.ensure_future(_until(abort)) if abort is not None else None
    try:
        while True:
            # Once caught up, look again only when told there is something new (wake) or,
            # without a wake event, once per turn: peeking is then the only way to notice.
            recheck = wake is None or wake.is_set()
            while len(in_flight) < window:
                if not buffered:
                    if caught_up and not recheck:
                        break
                    recheck = False
                    if wake is not None:
                        # Clear before the peek: a put landing after it sets the event again.
                        wake.clear()
                    fetched = outbox.peek(batch, after_id=last_id)
                    caught_up = len(fetched) < batch
                    if not fetched:
                        break
                    buffered.extend(fetched)
                    last_id = fetched[-1].id
                item = buffered.popleft()
                # Tasks start in creation order, so publish() is entered in id order.
                in_flight[asyncio.ensure_future(publish(item.topic, item.payload))] = item
            if not in_flight:
                _flush_acks(outbox, acked)
                await _idle(wake, poll_interval, aborted)
                _check_abort(aborted)
                caught_up = False
                continue
            waiting = [*in_flight, aborted] if aborted is not None else in_flight
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            _check_abort(aborted)
            try:
                _settle(done, in_flight, acked)
            finally:
                # Deleting rows costs a transaction: do it for many confirmed items at once.
                # A crash before the flush only means those items are sent again, which QoS 1
                # receivers already expect (every payload carries its seq/id).
                if len(acked) >= ACK_BATCH:
                    _flush_acks(outbox, acked)
    finally:
        if aborted is not None:
            aborted.cancel()
        try:
            _flush_acks(outbox, acked)
        finally:
            await _abandon(outbox, in_flight)


async def _until(event: asyncio.Event) -> None:
    await event.wait()


def _check_abort(aborted: asyncio.Future[None] | None) -> None:
    if aborted is not None and aborted.done():
        raise ConnectionError("the connection to the broker was lost")


async def _idle(
    wake: asyncio.Event | None, poll_interval: float, aborted: asyncio.Future[None] | None
) -> None:
    """Wait for new items: the wake event, or at most `poll_interval` (or until aborted)."""
    if wake is None and aborted is None:
        await asyncio.sleep(poll_interval)
        return
    # Still bounded: a put from another thread or process can't set an asyncio.Event.
    waiter = asyncio.ensure_future(_until(wake)) if wake is not None else None
    waiting = [f for f in (waiter, aborted) if f is not None]
    try:
        await asyncio.wait(waiting, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if waiter is not None:
            waiter.cancel()


ACK_BATCH = 128  # confirmed items deleted per transaction during a replay


def _flush_acks(outbox: Outbox, acked: list[int]) -> None:
    """Delete the confirmed items in one transaction."""
    if acked:
        outbox.ack(*acked)
        acked.clear()


def _settle(
    done: set[asyncio.Future[None]],
    in_flight: dict[asyncio.Future[None], OutboxItem],
    acked: list[int],
) -> None:
    """Note what the broker confirmed; raise the first failure, in id order."""
    failure: BaseException | None = None
    for future in sorted(done, key=lambda f: in_flight[f].id):
        item = in_flight.pop(future)
        error = _outcome(future, item)
        if error is None:
            acked.append(item.id)
        elif failure is None:
            failure = error
    if failure is not None:
        raise failure


async def _abandon(outbox: Outbox, in_flight: dict[asyncio.Future[None], OutboxItem]) -> None:
    """Cancel what is still in flight, wait for it, and ack whatever was confirmed anyway."""
    if not in_flight:
        return
    for future in in_flight:
        future.cancel()
    # Wait so no publish outlives drain (and its exception, if any, is retrieved).
    await asyncio.wait(in_flight)
    confirmed = [item.id for future, item in in_flight.items() if _outcome(future, item) is None]
    in_flight.clear()
    if not confirmed:
        return
    try:
        outbox.ack(*confirmed)
    except OutboxError:
        # Don't mask the error or cancellation that got us here; these items will just be
        # published once more.
        log.exception("outbox: could not ack %d confirmed item(s)", len(confirmed))


def _outcome(future: asyncio.Future[None], item: OutboxItem) -> BaseException | None:
    """None if the item is done with (confirmed, or rejected for good), else the error."""
    if future.cancelled():
        return ConnectionError(f"publish of outbox item {item.id} was cancelled")
    error = future.exception()
    if isinstance(error, PublishRejected):
        log.error(
            "outbox: broker rejected item %d (%s on %s), removing it: %s",
            item.id,
            item.kind,
            item.topic,
            error,
        )
        return None
    return error
