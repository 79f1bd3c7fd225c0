"""A damaged or foreign outbox file is moved aside, a fresh one started, and the reason kept."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxKind
from tests.outbox.outbox_fakes import FakeClock

TOPIC = "difronte/v1/dev/pc-0001/events"


def write_random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(64 * 1024))


def write_text(path: Path) -> None:
    path.write_text("outbox = telemetry\n" * 200)


def write_truncated_outbox(path: Path) -> None:
    with Outbox(path) as box:
        box.put_many([(OutboxKind.TELEMETRY, TOPIC, bytes([i % 256]) * 900) for i in range(400)])
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)


def write_corrupt_pages(path: Path) -> None:
    with Outbox(path) as box:
        box.put_many([(OutboxKind.EVENT, TOPIC, b"e" * 900) for _ in range(400)])
    # Keep the header (a valid-looking database) but scribble over the b-tree pages.
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(random.Random(3).randbytes(16 * 4096))


def write_foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('not an outbox')")
    conn.commit()
    conn.close()


def write_future_version(path: Path) -> None:
    with Outbox(path) as box:
        box.put(OutboxKind.EVENT, TOPIC, b"from a newer agent")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def write_wrong_columns(path: Path) -> None:
    with Outbox(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE outbox RENAME COLUMN topic TO subject")
    conn.close()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (write_random_bytes, "file is not a database"),
        (write_text, "file is not a database"),
        (write_truncated_outbox, "malformed|integrity check failed"),
        (write_corrupt_pages, "malformed|integrity check failed"),
        (write_foreign_database, "wrong schema: application_id is 0x0"),
        (write_future_version, "wrong schema: user_version is 99, expected 1"),
        (write_wrong_columns, "wrong schema: table outbox has columns"),
    ],
)
def test_unusable_file_is_moved_aside_and_replaced(
    path: Path, clock: FakeClock, damage: Callable[[Path], None], reason: str
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    damage(path)
    original = path.read_bytes()

    with Outbox(path, clock=clock) as box:
        assert box.recovered is not None
        assert box.recovered.startswith(f"outbox {path} was unusable (")
        assert any(part in box.recovered for part in reason.split("|")), box.recovered
        assert "outbox.db.corrupt-20231114T221320Z" in box.recovered  # the clock's UTC time
        # The fresh outbox works and is empty.
        assert box.depth() == 0
        new_id = box.put(OutboxKind.EVENT, TOPIC, b"error: outbox was corrupt")
        assert [item.id for item in box.peek()] == [new_id]
        assert box.next_seq("telemetry") == 1

    aside = path.with_name("outbox.db.corrupt-20231114T221320Z")
    assert aside.read_bytes() == original
    # The fresh file opens cleanly afterwards and kept the new row.
    with Outbox(path, clock=clock) as box:
        assert box.recovered is None
        assert [item.payload for item in box.peek()] == [b"error: outbox was corrupt"]


def test_wal_and_shm_move_aside_with_the_file(path: Path, clock: FakeClock) -> None:
    path.parent.mkdir(parents=True)
    write_text(path)
    Path(f"{path}-wal").write_bytes(b"stale wal")
    Path(f"{path}-shm").write_bytes(b"stale shm")
    with Outbox(path, clock=clock) as box:
        assert box.recovered is not None
    aside = f"{path}.corrupt-20231114T221320Z"
    assert Path(f"{aside}-wal").read_bytes() == b"stale wal"
    assert Path(f"{aside}-shm").read_bytes() == b"stale shm"
    assert not Path(f"{path}-shm").exists()


def test_repeated_recovery_in_the_same_second_keeps_every_copy(
    path: Path, clock: FakeClock
) -> None:
    path.parent.mkdir(parents=True)
    for round_ in range(3):
        path.write_text(f"garbage {round_}\n" * 100)
        with Outbox(path, clock=clock) as box:
            assert box.recovered is not None
    names = sorted(p.name for p in path.parent.iterdir() if ".corrupt-" in p.name)
    assert names == [
        "outbox.db.corrupt-20231114T221320Z",
        "outbox.db.corrupt-20231114T221320Z-2",
        "outbox.db.corrupt-20231114T221320Z-3",
    ]
    copies = {(path.parent / name).read_text().split()[1] for name in names}
    assert copies == {"0", "1", "2"}


def test_empty_file_is_simply_initialised(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.touch()
    with Outbox(path) as box:
        assert box.recovered is None
        box.put(OutboxKind.JOB, TOPIC, b"j")
        assert box.depth() == 1
