"""The on-disk outbox: a SQLite (WAL) queue of telemetry batches, events and job updates.

Everything the device publishes that must not be lost is put here first and removed only
after the broker's PUBACK (see `edge.outbox.replay.drain`). Rows keep their insertion id, so
replay after a reconnect, a reboot or a week offline is in the original order, and their
payloads keep the timestamps and sequence numbers they were created with.

Durability, and why most commits skip fsync. The file runs in WAL mode with
`synchronous=NORMAL`: a commit is appended to the -wal file and left in the OS page cache;
the WAL is fsynced only at checkpoints. That is what keeps `put` and `ack` cheap on the old
spinning disks this runs on. What it means:

* kill -9, a crash, an OOM kill: nothing committed is lost, the kernel still has the pages.
* a power cut: the database is always consistent (WAL frames are checksummed and recovery
  stops at the first bad one), but commits the kernel had not yet written back (normally the
  last few seconds, at most ~30 s of dirty-page expiry) roll back, and always as a suffix: a
  lost commit takes every later commit with it. For each kind of write that is acceptable:
  - a telemetry batch from the seconds before the cut may vanish; the cut is visible on its
    own (boot reason `power`, a gap in the telemetry sequence);
  - a lost `ack` makes an item replay once more, which QoS 1 consumers tolerate anyway
    because every payload carries its seq or id;
  - events and job updates are committed with `synchronous=FULL` (the WAL is fsynced before
    `put` returns): a help-button press must survive the power cut that may follow it, and
    they are rare enough that the fsync costs nothing overall;
  - `next_seq` is FULL too: a sequence number handed out, published, and then forgotten by
    a power cut would be handed out again, and the control plane would discard the new
    message as a duplicate. Because recovery keeps a prefix, that fsync also makes every
    earlier commit durable.

The file is opened with `locking_mode=EXCLUSIVE`: one daemon owns it, the in-memory
counters below rely on that, a second instance fails clearly instead of interleaving, and
SQLite then needs no -shm shared-memory file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

from edge.outbox import _file

log = logging.getLogger(__name__)

# Stay well under SQLite's host-parameter limit (999 on old builds) in `ack`.
_ACK_CHUNK = 500


class OutboxKind(StrEnum):
    """What a queued message is; only telemetry may ever be dropped to bound the outbox."""

    TELEMETRY = "telemetry"
    EVENT = "event"
    JOB = "job"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One queued message, as stored: `created` is the wall-clock time of the `put`."""

    id: int
    kind: OutboxKind
    topic: str
    payload: bytes
    created: float


class OutboxError(Exception):
    """The outbox file could not be opened, read or written (in use, disk full, I/O error)."""


class Outbox:
    """A lossless, bounded, crash-safe queue of outgoing MQTT messages in one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        max_telemetry: int = 50_000,
        max_telemetry_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
        lock_timeout: float = 5.0,
    ) -> None:
        """Open or create the outbox at `path`; a corrupt file is moved aside (see `recovered`)."""
        if max_telemetry < 1:
            raise ValueError(f"max_telemetry must be >= 1, got {max_telemetry}")
        if max_telemetry_bytes is not None and max_telemetry_bytes < 1:
            raise ValueError(f"max_telemetry_bytes must be >= 1 or None, got {max_telemetry_bytes}")
        if lock_timeout < 0:
            raise ValueError(f"lock_timeout must be >= 0, got {lock_timeout}")
        self.path = Path(path)
        self._max_telemetry = max_telemetry
        self._max_telemetry_bytes = max_telemetry_bytes
        self._clock = clock
        self._lock_timeout = lock_timeout
        # Re-entrant: public methods hold it across a transaction and the counter update.
        # It makes the object safe to share with asyncio.to_thread workers.
        self._lock = threading.RLock()
        # Set when a corrupt file was moved aside; the daemon turns it into an error event.
        self.recovered: str | None = None
        self._conn: sqlite3.Connection | None = self._open()
        try:
            self._depth, self._telemetry, self._telemetry_bytes = self._load_counters()
            # A bound lowered by a config change applies at once, not at the next put.
            self._trim_now()
        except BaseException:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoint and close the file; idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- queue -----------------------------------------------------------------------------

    def put(self, kind: OutboxKind, topic: str, payload: bytes) -> int:
        """Queue one message and return its id; committed (see module doc) when this returns."""
        return self.put_many([(kind, topic, payload)])[0]

    def put_many(self, items: Sequence[tuple[OutboxKind, str, bytes]]) -> list[int]:
        """Queue several messages in one transaction and return their ids, in order."""
        rows = [_validated(index, item) for index, item in enumerate(items)]
        if not rows:
            return []
        durable = any(kind is not OutboxKind.TELEMETRY for kind, _, _ in rows)
        created = self._clock()
        ids: list[int] = []
        with self._lock:
            telemetry, telemetry_bytes = self._telemetry, self._telemetry_bytes
            with self._transaction("put", durable=durable) as conn:
                for kind, topic, payload in rows:
                    cursor = conn.execute(
                        "INSERT INTO outbox (kind, topic, payload, created) VALUES (?, ?, ?, ?)",
                        (kind.value, topic, payload, created),
                    )
                    assert cursor.lastrowid is not None  # always set after a one-row INSERT
                    ids.append(cursor.lastrowid)
                    if kind is OutboxKind.TELEMETRY:
                        telemetry += 1
                        telemetry_bytes += len(payload)
                dropped, dropped_bytes = self._trim(conn, telemetry, telemetry_bytes)
            # Only after COMMIT succeeded: a failed transaction leaves the counters alone.
            self._depth += len(rows) - dropped
            self._telemetry = telemetry - dropped
            self._telemetry_bytes = telemetry_bytes - dropped_bytes
        return ids

    def peek(self, limit: int = 100, after_id: int = 0) -> list[OutboxItem]:
        """Return up to `limit` queued items with id > `after_id`, oldest first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._lock:
            conn = self._require_open()
            try:
                rows = conn.execute(
                    "SELECT id, kind, topic, payload, created FROM outbox"
                    " WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._error("peek", exc) from exc
        return [
            OutboxItem(id=id_, kind=OutboxKind(kind), topic=topic, payload=payload, created=created)
            for id_, kind, topic, payload, created in rows
        ]

    def ack(self, *ids: int) -> None:
        """Remove delivered items; unknown ids (already acked, or dropped) are ignored."""
        if not ids:
            return
        removed = telemetry = telemetry_bytes = 0
        with self._lock:
            with self._transaction("ack") as conn:
                for start in range(0, len(ids), _ACK_CHUNK):
                    chunk = ids[start : start + _ACK_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    for kind, size in conn.execute(
                        f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING kind, length(payload)",
                        chunk,
                    ).fetchall():
                        removed += 1
                        if kind == OutboxKind.TELEMETRY:
                            telemetry += 1
                            telemetry_bytes += size
            self._depth -= removed
            self._telemetry -= telemetry
            self._telemetry_bytes -= telemetry_bytes

    def depth(self) -> int:
        """Number of items waiting for a PUBACK (all kinds)."""
        with self._lock:
            self._require_open()
            return self._depth

    # -- counters --------------------------------------------------------------------------

    def dropped_total(self) -> int:
        """Telemetry items dropped to respect the bound, since the file was created."""
        with self._lock:
            return self._stat("dropped_total")

    def take_dropped(self) -> int:
        """Return the telemetry dropped since the last call and reset it (for `dropped` fields).

        The reset is an ordinary commit: a power cut right after it may lose the batch that
        was to report the count; `dropped_total` stays exact either way.
        """
        with self._lock, self._transaction("take_dropped") as conn:
            (value,) = conn.execute(
                "SELECT value FROM stats WHERE name = 'dropped_pending'"
            ).fetchone()
            if value:
                conn.execute("UPDATE stats SET value = 0 WHERE name = 'dropped_pending'")
        return int(value)

    def next_seq(self, name: str) -> int:
        """Atomically increment the persisted counter `name` and return it (first value: 1)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        with self._lock, self._transaction("next_seq", durable=True) as conn:
            (value,) = conn.execute(
                "INSERT INTO seq (name, value) VALUES (?, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                (name,),
            ).fetchone()
        return int(value)

    # -- internals: bound ------------------------------------------------------------------

    def _trim(
        self, conn: sqlite3.Connection, telemetry: int, telemetry_bytes: int
    ) -> tuple[int, int]:
        """Drop the oldest telemetry until the bounds hold; return (rows, bytes) dropped."""
        dropped = dropped_bytes = 0
        excess = telemetry - self._max_telemetry
        if excess > 0:
            sizes = conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                " WHERE kind = 'telemetry' ORDER BY id LIMIT ?) RETURNING length(payload)",
                (excess,),
            ).fetchall()
            dropped += len(sizes)
            dropped_bytes += sum(size for (size,) in sizes)
        limit = self._max_telemetry_bytes
        # One row at a time: the byte bound is usually exceeded by a single new batch.
        while limit is not None and telemetry_bytes - dropped_bytes > limit:
            row = conn.execute(
                "DELETE FROM outbox WHERE id = (SELECT id FROM outbox"
                " WHERE kind = 'telemetry' ORDER BY id LIMIT 1) RETURNING length(payload)"
            ).fetchone()
            if row is None:
                break
            dropped += 1
            dropped_bytes += row[0]
        if dropped:
            log.warning("outbox full: dropped the %d oldest telemetry batch(es)", dropped)
            conn.execute(
                "UPDATE stats SET value = value + ?"
                " WHERE name IN ('dropped_total', 'dropped_pending')",
                (dropped,),
            )
        return dropped, dropped_bytes

    def _trim_now(self) -> None:
        with self._lock:
            with self._transaction("trim") as conn:
                dropped, dropped_bytes = self._trim(conn, self._telemetry, self._telemetry_bytes)
            self._depth -= dropped
            self._telemetry -= dropped
            self._telemetry_bytes -= dropped_bytes

    def _load_counters(self) -> tuple[int, int, int]:
        conn = self._require_open()
        try:
            (depth,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
            telemetry, telemetry_bytes = conn.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox"
                " WHERE kind = 'telemetry'"
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._error("open", exc) from exc
        return int(depth), int(telemetry), int(telemetry_bytes)

    def _stat(self, name: str) -> int:
        conn = self._require_open()
        try:
            (value,) = conn.execute("SELECT value FROM stats WHERE name = ?", (name,)).fetchone()
        except sqlite3.Error as exc:
            raise self._error(name, exc) from exc
        return int(value)

    # -- internals: transactions -----------------------------------------------------------

    @contextmanager
    def _transaction(self, op: str, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on error; `durable` fsyncs the commit."""
        conn = self._require_open()
        try:
            # The safety level can't change inside a transaction, so switch around it.
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback(conn)
                    raise
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise self._error(op, exc) from exc

    def _rollback(self, conn: sqlite3.Connection) -> None:
        # Some errors (disk full, I/O) already rolled the transaction back inside SQLite.
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("outbox %s: rollback failed", self.path)

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._conn

    def _error(self, op: str, exc: sqlite3.Error) -> OutboxError:
        name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        hint = ""
        if _file.primary_code(exc) in _file.CORRUPTION_CODES:
            hint = "; the file is damaged: close and reopen the outbox to move it aside"
        return OutboxError(f"outbox {self.path}: {op} failed: {exc} ({name}){hint}")

    # -- internals: opening and recovery ---------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox {self.path}: cannot create its directory: {exc}") from exc
        return self._connect(recover=True)

    def _connect(self, *, recover: bool) -> sqlite3.Connection:
        # Create the file ourselves so it is private (health data); SQLite gives the -wal
        # file the same mode.
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            conn = sqlite3.connect(
                self.path,
                timeout=self._lock_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock
            )
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"outbox {self.path}: cannot open: {exc}") from exc
        try:
            _file.prepare(conn)
        except _file.Corrupt as problem:
            if not recover:
                conn.close()
                message = f"outbox {self.path}: a fresh file is unusable: {problem}"
                raise OutboxError(message) from None
            return self._recover(conn, problem)
        except _file.InUse as exc:
            conn.close()
            raise OutboxError(f"outbox {self.path} is in use by another process ({exc})") from None
        except sqlite3.Error as exc:
            conn.close()
            raise OutboxError(f"outbox {self.path}: cannot open: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _recover(self, conn: sqlite3.Connection, problem: _file.Corrupt) -> sqlite3.Connection:
        """Move the damaged file aside, note why in `recovered`, and start a fresh one."""
        # Move the files before closing: on close SQLite may checkpoint into the file or
        # delete a -wal it doesn't like, and the evidence should be kept as found.
        try:
            aside = _file.move_aside(self.path, self._clock())
        except OSError as exc:
            raise OutboxError(
                f"outbox {self.path} is unusable ({problem}) and could not be moved aside: {exc}"
            ) from exc
        finally:
            conn.close()
        self.recovered = (
            f"outbox {self.path} was unusable ({problem}); moved it to {aside.name}"
            " and started a fresh outbox"
        )
        log.error("%s", self.recovered)
        return self._connect(recover=False)


def _validated(index: int, item: tuple[OutboxKind, str, bytes]) -> tuple[OutboxKind, str, bytes]:
    """Check one (kind, topic, payload) tuple; errors name the item and field."""
    try:
        kind, topic, payload = item
    except (TypeError, ValueError):
        raise TypeError(f"items[{index}] must be a (kind, topic, payload) tuple") from None
    try:
        kind = OutboxKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in OutboxKind)
        raise ValueError(f"items[{index}].kind must be one of {choices}, got {kind!r}") from None
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"items[{index}].topic must be a non-empty string, got {topic!r}")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"items[{index}].payload must be bytes, got {type(payload).__name__}")
    return kind, topic, bytes(payload)
