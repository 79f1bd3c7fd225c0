"""Login throttling: too many wrong passwords for one e-mail from one address → wait a while.

The counters live in memory, per process. That is enough for one control plane; with several
replicas behind a load balancer an attacker gets ``max_failures`` tries per replica, so the
store is a small class with three methods that can move to the database (or Redis) unchanged.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    """Counts failed logins per (e-mail, client address) in a sliding window."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: float = 15 * 60,
        lockout: float = 15 * 60,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures: must be at least 1")
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._max_keys = max_keys
        self._clock = clock
        self._records: dict[tuple[str, str], _Record] = {}
        # Login handlers are sync and run in the thread pool, so several may race here.
        self._lock = threading.Lock()

    @staticmethod
    def _key(email: str, address: str) -> tuple[str, str]:
        return email.strip().lower(), address

    def retry_after(self, email: str, address: str) -> float:
        """Seconds until this e-mail may try again from this address (0 = may try now)."""
        now = self._clock()
        with self._lock:
            record = self._records.get(self._key(email, address))
            if record is None or record.locked_until <= now:
                return 0.0
            return record.locked_until - now

    def record_failure(self, email: str, address: str) -> bool:
        """Count a wrong password; True when this failure locks the pair out."""
        now = self._clock()
        key = self._key(email, address)
        with self._lock:
            record = self._records.get(key)
            if record is None:
                self._make_room(now)
                record = self._records[key] = _Record()
            while record.failures and record.failures[0] <= now - self.window:
                record.failures.popleft()
            record.failures.append(now)
            if len(record.failures) >= self.max_failures:
                record.locked_until = now + self.lockout
                # A fresh start after the lockout: five more tries, not one.
                record.failures.clear()
                return True
            return False

    def record_success(self, email: str, address: str) -> None:
        """Forget the failures of a pair that just logged in."""
        with self._lock:
            self._records.pop(self._key(email, address), None)

    def _make_room(self, now: float) -> None:
        # Called with the lock held. Bounded memory: first drop what no longer matters, then
        # (under a spray of random e-mails) the oldest entries.
        if len(self._records) < self._max_keys:
            return
        stale = [
            k
            for k, r in self._records.items()
            if r.locked_until <= now and (not r.failures or r.failures[-1] <= now - self.window)
        ]
        for k in stale:
            del self._records[k]
        while len(self._records) >= self._max_keys:
            del self._records[next(iter(self._records))]
