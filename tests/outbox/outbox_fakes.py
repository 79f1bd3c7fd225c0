"""Fakes for the outbox tests: a controllable clock and an in-memory QoS 1 broker."""

from __future__ import annotations

import asyncio
import random

from edge.outbox import PublishRejected


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeBroker:
    """A PublishFn that records wire order, overlaps PUBACKs and fails on request."""

    def __init__(
        self,
        *,
        seed: int = 0,
        fail_at: int | None = None,
        reject: frozenset[bytes] = frozenset(),
    ) -> None:
        self._rng = random.Random(seed)
        self.fail_at = fail_at  # 1-based attempt number that raises ConnectionError
        self.reject = reject
        self.attempts: list[bytes] = []  # in the order publish() was entered: the wire order
        self.confirmed: list[bytes] = []  # PUBACKed, in completion order
        self.in_flight = 0
        self.max_in_flight = 0

    async def publish(self, topic: str, payload: bytes) -> None:
        # Like aiomqtt: the message goes on the wire before the first suspension point.
        self.attempts.append(payload)
        attempt = len(self.attempts)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            # The PUBACK round trip: at least one yield so publishes overlap, a random
            # number so they complete out of order.
            for _ in range(self._rng.randint(1, 4)):
                await asyncio.sleep(0)
            if attempt == self.fail_at:
                raise ConnectionError("connection lost")
            if payload in self.reject:
                raise PublishRejected("payload too large for the broker")
            self.confirmed.append(payload)
        finally:
            self.in_flight -= 1
