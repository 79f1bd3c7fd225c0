"""Login throttling: too many wrong passwords for one e-mail from one address → wait a while.

The counters live in the database (``login_failures``), so every replica behind a load
balancer sees the same count: an attacker gets ``max_failures`` tries, not that many per
process. :class:`MemoryThrottleStore` keeps them in the process instead (a console without a
database, and unit tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..models import LoginFailure


@dataclass
class Record:
    """One (e-mail, address) pair's recent failures (epoch seconds) and lockout end."""

    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


Key = tuple[str, str]
Change = Callable[[Record], bool]  # mutate the record; return the caller's answer


class ThrottleStore(Protocol):
    """Where the records live; ``change`` is atomic per key."""

    def get(self, key: Key) -> Record | None: ...

    def change(self, key: Key, fn: Change) -> bool: ...

    def forget(self, key: Key) -> None: ...


class MemoryThrottleStore:
    """Records in this process, bounded in number."""

    def __init__(self, *, max_keys: int = 10_000) -> None:
        self._records: dict[Key, Record] = {}
        self._max_keys = max_keys
        # Login handlers are sync and run in the thread pool, so several may race here.
        self._lock = threading.Lock()

    def get(self, key: Key) -> Record | None:
        with self._lock:
            record = self._records.get(key)
            return None if record is None else Record(list(record.failures), record.locked_until)

    def change(self, key: Key, fn: Change) -> bool:
        with self._lock:
            record = self._records.get(key)
            if record is None:
                if len(self._records) >= self._max_keys:
                    # Bounded memory under a spray of random e-mails: the oldest go first.
                    del self._records[next(iter(self._records))]
                record = self._records[key] = Record()
            return fn(record)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)


class SqlThrottleStore:
    """Records in the ``login_failures`` table, one short transaction per change."""

    def __init__(self, factory: sessionmaker[Session], *, keep_s: float = 24 * 3600) -> None:
        self._factory = factory
        self._keep_s = keep_s  # rows untouched for this long are deleted on a later change

    def get(self, key: Key) -> Record | None:
        with self._factory() as session:
            row = session.get(LoginFailure, key)
            return None if row is None else Record(list(row.failures), row.locked_until)

    def change(self, key: Key, fn: Change) -> bool:
        with self._factory() as session:
            if session.get_bind().dialect.name == "sqlite":
                # Take the write lock first: two processes then cannot both read the old count.
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            row = session.execute(
                select(LoginFailure)
                .where(LoginFailure.email == key[0], LoginFailure.address == key[1])
                .with_for_update()
            ).scalar_one_or_none()
            if row is None:
                row = LoginFailure(email=key[0], address=key[1], failures=[], locked_until=0.0)
                session.add(row)
            record = Record(list(row.failures), row.locked_until)
            answer = fn(record)
            row.failures = record.failures
            row.locked_until = record.locked_until
            row.updated_at = time.time()
            session.execute(
                delete(LoginFailure).where(LoginFailure.updated_at < time.time() - self._keep_s)
            )
            try:
                session.commit()
            except IntegrityError:
                # Another process created the row meanwhile: count on its row.
                session.rollback()
                return self.change(key, fn)
            return answer

    def forget(self, key: Key) -> None:
        with self._factory() as session:
            session.execute(
                delete(LoginFailure).where(
                    LoginFailure.email == key[0], LoginFailure.address == key[1]
                )
            )
            session.commit()


class LoginThrottle:
    """Counts failed logins per (e-mail, client address) in a sliding window."""

    def __init__(
        self,
        *,
        store: ThrottleStore | None = None,
        max_failures: int = 5,
        window: float = 15 * 60,
        lockout: float = 15 * 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures: must be at least 1")
        self.store: ThrottleStore = store if store is not None else MemoryThrottleStore()
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._clock = clock

    @staticmethod
    def _key(email: str, address: str) -> Key:
        return email.strip().lower()[:254], address[:64]

    def retry_after(self, email: str, address: str) -> float:
        """Seconds until this e-mail may try again from this address (0 = may try now)."""
        now = self._clock()
        record = self.store.get(self._key(email, address))
        if record is None or record.locked_until <= now:
            return 0.0
        return record.locked_until - now

    def record_failure(self, email: str, address: str) -> bool:
        """Count a wrong password; True when this failure locks the pair out."""
        now = self._clock()

        def count(record: Record) -> bool:
            record.failures = [t for t in record.failures if t > now - self.window]
            record.failures.append(now)
            if len(record.failures) >= self.max_failures:
                record.locked_until = now + self.lockout
                # A fresh start after the lockout: five more tries, not one.
                record.failures = []
                return True
            return False

        return self.store.change(self._key(email, address), count)

    def record_success(self, email: str, address: str) -> None:
        """Forget the failures of a pair that just logged in."""
        self.store.forget(self._key(email, address))
