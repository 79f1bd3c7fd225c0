"""The device session's reconnect delay: full jitter, growing, capped (edge/session.py)."""

from __future__ import annotations

import random

from edge.session import backoff_delay


def test_backoff_is_full_jitter_growing_and_capped() -> None:
    random.seed(7)
    for attempt in range(12):
        ceiling = min(60.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        # Full jitter: spread over the whole range, not bunched at its top.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9
    assert max(backoff_delay(30, cap=2.0) for _ in range(300)) <= 2.0
