"""drain(): id order, the in-flight window, acks after PUBACK, replay after a failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from edge.outbox import Outbox, OutboxKind, PublishFn, drain
from tests.outbox.outbox_fakes import FakeBroker
from tests.support.wait import async_wait_until

T, E, J = OutboxKind.TELEMETRY, OutboxKind.EVENT, OutboxKind.JOB
TOPIC = "difronte/v1/dev/pc-0001/telemetry"


def fill(outbox: Outbox, count: int, start: int = 0) -> list[bytes]:
    """Queue `count` items of mixed kinds whose payload is their put number."""
    kinds = [T, T, T, E, J]
    payloads = [b"%d" % i for i in range(start, start + count)]
    outbox.put_many([(kinds[i % len(kinds)], TOPIC, p) for i, p in enumerate(payloads)])
    return payloads


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(("window", "batch"), [(1, 256), (8, 16), (32, 5), (64, 256)])
def test_publishes_everything_in_id_order_within_the_window(
    outbox: Outbox, window: int, batch: int
) -> None:
    payloads = fill(outbox, 300)
    broker = FakeBroker(seed=window)

    async def main() -> None:
        task = asyncio.create_task(
            drain(outbox, broker.publish, window=window, batch=batch, poll_interval=0.01)
        )
        await async_wait_until(lambda: outbox.depth() == 0, message="outbox drained")
        await stop(task)

    run(main)
    assert broker.attempts == payloads
    assert sorted(broker.confirmed) == sorted(payloads)
    assert broker.confirmed != payloads or window == 1  # PUBACKs did come out of order
    assert broker.max_in_flight == window
    assert broker.in_flight == 0


def test_wake_event_starts_an_idle_drain(outbox: Outbox) -> None:
    broker = FakeBroker()

    async def main() -> None:
        wake = asyncio.Event()
        # A poll interval far beyond the test's deadline: only the event can wake it.
        task = asyncio.create_task(drain(outbox, broker.publish, wake=wake, poll_interval=3600))
        outbox.put(E, TOPIC, b"help button")
        wake.set()
        await async_wait_until(lambda: outbox.depth() == 0, message="event sent")
        # drain is idle now, and its poll is an hour away: only the event can start it.
        fill(outbox, 50)
        wake.set()
        await async_wait_until(lambda: outbox.depth() == 0, message="batch sent")
        await stop(task)

    run(main)
    assert broker.attempts == [b"help button", *(b"%d" % i for i in range(50))]


def test_without_wake_new_rows_are_found_by_polling(outbox: Outbox) -> None:
    broker = FakeBroker()

    async def main() -> None:
        task = asyncio.create_task(drain(outbox, broker.publish, poll_interval=0.01))
        await async_wait_until(lambda: broker.attempts == [] and not task.done())
        fill(outbox, 20)
        await async_wait_until(lambda: outbox.depth() == 0, message="outbox drained")
        await stop(task)

    run(main)
    assert broker.attempts == [b"%d" % i for i in range(20)]


def test_rows_put_while_draining_follow_in_order(outbox: Outbox) -> None:
    broker = FakeBroker(seed=5)
    wake = asyncio.Event()

    async def producer() -> None:
        for chunk in range(10):
            fill(outbox, 30, start=chunk * 30)
            wake.set()
            await asyncio.sleep(0)

    async def main() -> None:
        task = asyncio.create_task(drain(outbox, broker.publish, window=8, batch=16, wake=wake))
        await producer()
        await async_wait_until(lambda: outbox.depth() == 0, message="outbox drained")
        await stop(task)

    run(main)
    assert broker.attempts == [b"%d" % i for i in range(300)]


def test_failure_stops_the_round_and_the_next_round_replays_the_rest_in_order(
    outbox: Outbox,
) -> None:
    payloads = fill(outbox, 200)
    first = FakeBroker(seed=1, fail_at=57)

    async def failing_round() -> None:
        with pytest.raises(ConnectionError, match="connection lost"):
            await drain(outbox, first.publish, window=16, batch=32)

    run(failing_round)
    assert first.in_flight == 0  # nothing left running behind drain's back
    # Acked exactly what the broker confirmed: nothing lost, nothing confirmed kept.
    remaining = [item.payload for item in outbox.peek(limit=1000)]
    assert sorted(remaining + first.confirmed) == sorted(payloads)
    assert set(remaining).isdisjoint(first.confirmed)
    # Only the failed publish and those cancelled in flight with it will be sent again.
    retried = set(remaining) & set(first.attempts)
    assert b"56" in retried
    assert len(retried) <= 16

    second = FakeBroker(seed=2)

    async def healthy_round() -> None:
        task = asyncio.create_task(drain(outbox, second.publish, window=16, batch=32))
        await async_wait_until(lambda: outbox.depth() == 0, message="outbox drained")
        await stop(task)

    run(healthy_round)
    assert second.attempts == remaining  # replayed in id order, from the oldest unacked
    assert sorted(first.confirmed + second.confirmed) == sorted(payloads)


def test_rejected_item_is_removed_and_logged_not_retried_forever(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    payloads = fill(outbox, 10)
    broker = FakeBroker(reject=frozenset({b"4"}))

    async def main() -> None:
        task = asyncio.create_task(drain(outbox, broker.publish, window=4))
        await async_wait_until(lambda: outbox.depth() == 0, message="outbox drained")
        await stop(task)

    with caplog.at_level(logging.ERROR, logger="edge.outbox"):
        run(main)
    assert broker.attempts == payloads
    assert sorted(broker.confirmed) == sorted(p for p in payloads if p != b"4")
    assert "broker rejected item 5 (job on difronte/v1/dev/pc-0001/telemetry)" in caplog.text


def test_cancelling_drain_acks_what_was_confirmed_and_leaves_the_rest(outbox: Outbox) -> None:
    payloads = fill(outbox, 100)
    release = asyncio.Event()
    sent: list[bytes] = []
    confirmed: list[bytes] = []

    async def publish(topic: str, payload: bytes) -> None:
        sent.append(payload)
        # The first ten get their PUBACK; the window refills with twenty that hang.
        if int(payload) >= 10:
            await release.wait()
        confirmed.append(payload)

    async def main() -> None:
        task = asyncio.create_task(drain(outbox, publish, window=20))
        await async_wait_until(lambda: len(confirmed) == 10 and len(sent) == 30)
        await stop(task)

    run(main)
    assert confirmed == payloads[:10]
    assert [item.payload for item in outbox.peek(limit=1000)] == payloads[10:]


def test_a_lost_connection_ends_the_round_without_waiting_for_hung_publishes(
    outbox: Outbox,
) -> None:
    # A client does not fail what it had in flight when the connection drops: those
    # publishes hang until their own timeout. The disconnect must end the round at once.
    payloads = fill(outbox, 40)
    confirmed: list[bytes] = []
    hung = asyncio.Event()  # never set

    async def publish(topic: str, payload: bytes) -> None:
        if int(payload) >= 5:
            await hung.wait()
        confirmed.append(payload)

    async def main() -> None:
        disconnected = asyncio.Event()
        task = asyncio.create_task(drain(outbox, publish, window=8, abort=disconnected))
        await async_wait_until(lambda: len(confirmed) == 5, message="five confirmed")
        disconnected.set()
        with pytest.raises(ConnectionError, match="connection to the broker was lost"):
            async with asyncio.timeout(5):
                await task

    run(main)
    assert [item.payload for item in outbox.peek(limit=1000)] == payloads[5:]


def test_a_lost_connection_ends_an_idle_round(outbox: Outbox) -> None:
    async def main() -> None:
        disconnected = asyncio.Event()
        wake = asyncio.Event()
        task = asyncio.create_task(
            drain(outbox, FakeBroker().publish, wake=wake, poll_interval=3600, abort=disconnected)
        )
        await asyncio.sleep(0.05)  # idle: nothing queued, the next poll an hour away
        assert not task.done()
        disconnected.set()
        with pytest.raises(ConnectionError):
            async with asyncio.timeout(5):
                await task

    run(main)


def test_drain_accepts_any_awaitable_publish(outbox: Outbox) -> None:
    fill(outbox, 5)
    sent: list[bytes] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def publish(topic: str, payload: bytes) -> asyncio.Future[None]:
            sent.append(payload)
            future: asyncio.Future[None] = loop.create_future()
            loop.call_soon(future.set_result, None)
            return future

        typed: PublishFn = publish
        task = asyncio.create_task(drain(outbox, typed))
        await async_wait_until(lambda: outbox.depth() == 0, message="outbox drained")
        await stop(task)

    run(main)
    assert sent == [b"%d" % i for i in range(5)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window must be >= 1"),
        ({"batch": 0}, "batch must be >= 1"),
        ({"poll_interval": 0}, "poll_interval must be > 0"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict[str, float], message: str) -> None:
    async def main() -> None:
        with Outbox(tmp_path / "o.db") as box, pytest.raises(ValueError, match=message):
            await drain(box, FakeBroker().publish, **kwargs)  # type: ignore[arg-type]

    run(main)
