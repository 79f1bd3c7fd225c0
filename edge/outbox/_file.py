"""The outbox's SQLite file: schema, health checks on open, moving a damaged file aside."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

# "DiFr" in the database header: tells our file from any other SQLite database.
APPLICATION_ID = 0x44694672
SCHEMA_VERSION = 1
# Truncate the -wal file back to this size after a checkpoint, so a burst of replay
# doesn't leave a large file behind on a small disk.
WAL_SIZE_LIMIT = 4 * 1024 * 1024
CORRUPTION_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

# AUTOINCREMENT so ids never go backwards, even after every row was acked and deleted:
# a drain round tracks "the last id I fetched", and reused ids would hide new rows.
# The partial index serves the only query that filters on kind: "oldest telemetry first".
_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('telemetry', 'event', 'job')),
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX outbox_telemetry ON outbox (id) WHERE kind = 'telemetry';
CREATE TABLE seq (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO stats (name, value) VALUES ('dropped_total', 0), ('dropped_pending', 0);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
_EXPECTED_COLUMNS = {
    "outbox": ["id", "kind", "topic", "payload", "created"],
    "seq": ["name", "value"],
    "stats": ["name", "value"],
}
_SIDE_FILES = ("-wal", "-shm", "-journal")


class Corrupt(Exception):
    """The file is not a usable outbox; the message says why."""


class InUse(Exception):
    """Another process (another daemon) holds the file."""


def prepare(conn: sqlite3.Connection) -> None:
    """Check the file is a healthy outbox (or empty), then configure and initialise it.

    Raises Corrupt for a damaged or foreign file, InUse when another process holds it,
    and lets any other sqlite3.Error through.
    """
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        # The first read: "file is not a database" shows up here, and so does another
        # process holding the file.
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        fresh = app_id == 0 and version == 0 and not tables
        if not fresh:
            _check(conn, app_id, version)
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise sqlite3.OperationalError(f"cannot enable WAL (journal_mode stays {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        if fresh:
            conn.executescript(_SCHEMA)
        else:
            # Take the write lock now (exclusive mode keeps it until close), so a second
            # daemon fails here rather than at its first put.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        code = primary_code(exc)
        if code in CORRUPTION_CODES:
            raise Corrupt(str(exc)) from exc
        if code in BUSY_CODES:
            raise InUse(str(exc)) from exc
        raise


def primary_code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code (SQLITE_CORRUPT, …) for `exc`, or 0 if it has none."""
    # Extended codes carry the primary one in their low byte; errors raised by the sqlite3
    # module itself (not by the library) have no code at all.
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _check(conn: sqlite3.Connection, app_id: int, version: int) -> None:
    """Raise Corrupt unless the file is our schema, in our version, and intact."""
    if app_id != APPLICATION_ID:
        raise Corrupt(f"wrong schema: application_id is {app_id:#x}, expected {APPLICATION_ID:#x}")
    if version != SCHEMA_VERSION:
        raise Corrupt(f"wrong schema: user_version is {version}, expected {SCHEMA_VERSION}")
    problems = [row[0] for row in conn.execute("PRAGMA integrity_check(5)").fetchall()]
    if problems != ["ok"]:
        raise Corrupt("integrity check failed: " + "; ".join(problems))
    for table, expected in _EXPECTED_COLUMNS.items():
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()]
        if columns != expected:
            raise Corrupt(f"wrong schema: table {table} has columns {columns}")
    for name in ("dropped_total", "dropped_pending"):
        if conn.execute("SELECT 1 FROM stats WHERE name = ?", (name,)).fetchone() is None:
            raise Corrupt(f"wrong schema: stats row {name!r} is missing")


def move_aside(path: Path, now: float) -> Path:
    """Rename `path` and its -wal/-shm/-journal to `<name>.corrupt-<utc>[-n]`; return it."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    suffixes = ("", *_SIDE_FILES)
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    attempt = 1
    # Never overwrite an earlier copy: each one is evidence of a separate failure.
    while any(Path(f"{aside}{suffix}").exists() for suffix in suffixes):
        attempt += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{attempt}")
    for suffix in suffixes:
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{aside}{suffix}")
    _fsync_dir(path.parent)
    return aside


def _fsync_dir(directory: Path) -> None:
    """Make renames in `directory` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
