"""The outbox as a queue: order, acks, the telemetry bound, counters, reopening."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxError, OutboxItem, OutboxKind
from tests.outbox.outbox_fakes import FakeClock

T, E, J = OutboxKind.TELEMETRY, OutboxKind.EVENT, OutboxKind.JOB
TOPIC = "difronte/v1/dev/pc-0001/telemetry"


def kinds_and_payloads(items: list[OutboxItem]) -> list[tuple[OutboxKind, bytes]]:
    return [(item.kind, item.payload) for item in items]


def test_put_peek_ack_in_order(outbox: Outbox, clock: FakeClock) -> None:
    first = outbox.put(T, TOPIC, b"t1")
    clock.now += 10
    second = outbox.put(E, "difronte/v1/dev/pc-0001/events", b"e1")
    third = outbox.put(J, "difronte/v1/dev/pc-0001/jobs/x1/update", b"j1")
    assert first < second < third
    items = outbox.peek()
    assert [item.id for item in items] == [first, second, third]
    assert items[0] == OutboxItem(first, T, TOPIC, b"t1", clock.now - 10)
    assert items[1].created == clock.now
    assert outbox.depth() == 3

    assert [item.id for item in outbox.peek(limit=1)] == [first]
    assert [item.id for item in outbox.peek(after_id=first)] == [second, third]

    outbox.ack(second, 999_999)  # unknown ids are ignored
    assert [item.id for item in outbox.peek()] == [first, third]
    assert outbox.depth() == 2
    outbox.ack(first, third)
    outbox.ack(first)  # acking twice is harmless
    assert outbox.peek() == []
    assert outbox.depth() == 0


def test_put_many_is_one_ordered_batch(outbox: Outbox) -> None:
    ids = outbox.put_many([(T, TOPIC, b"%d" % i) for i in range(1000)])
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000
    assert [item.payload for item in outbox.peek(limit=2000)] == [b"%d" % i for i in range(1000)]
    assert outbox.put_many([]) == []


def test_ack_many_ids_at_once(outbox: Outbox) -> None:
    ids = outbox.put_many([(E, TOPIC, b"x")] * 1200)
    outbox.ack(*ids[:1100])  # more than one chunk of SQL parameters
    assert [item.id for item in outbox.peek(limit=500)] == ids[1100:]
    assert outbox.depth() == 100


def test_ids_never_reused_after_everything_was_acked(path: Path) -> None:
    with Outbox(path) as box:
        last = box.put(T, TOPIC, b"a")
        box.ack(last)
    with Outbox(path) as box:
        assert box.put(T, TOPIC, b"b") > last


def test_reopen_keeps_everything(path: Path, clock: FakeClock) -> None:
    with Outbox(path, clock=clock) as box:
        box.put_many([(T, TOPIC, b"t%d" % i) for i in range(5)])
        box.put(E, "difronte/v1/dev/pc-0001/events", b"\x00\xffbinary")
        before = box.peek()
        box.ack(before[0].id)
    clock.now += 3600
    with Outbox(path, clock=clock) as box:
        assert box.recovered is None
        assert box.peek() == before[1:]
        assert box.depth() == len(before) - 1


def test_bound_drops_oldest_telemetry_only(outbox: Outbox, path: Path, clock: FakeClock) -> None:
    outbox.close()
    box = Outbox(path, max_telemetry=3, clock=clock)
    box.put(E, TOPIC, b"e0")
    box.put_many([(T, TOPIC, b"t0"), (T, TOPIC, b"t1"), (J, TOPIC, b"j0")])
    box.put(T, TOPIC, b"t2")
    box.put(E, TOPIC, b"e1")
    box.put(T, TOPIC, b"t3")  # 4th telemetry: t0 goes
    box.put_many([(T, TOPIC, b"t4"), (T, TOPIC, b"t5")])  # t1 and t2 go
    assert kinds_and_payloads(box.peek()) == [
        (E, b"e0"),
        (J, b"j0"),
        (E, b"e1"),
        (T, b"t3"),
        (T, b"t4"),
        (T, b"t5"),
    ]
    assert box.depth() == 6
    assert box.dropped_total() == 3
    box.close()

    # Persisted: counters survive a reopen; take_dropped resets only its own count.
    with Outbox(path, max_telemetry=3, clock=clock) as box:
        assert box.dropped_total() == 3
        assert box.take_dropped() == 3
        assert box.take_dropped() == 0
        box.put(T, TOPIC, b"t6")
        assert box.dropped_total() == 4
    with Outbox(path, max_telemetry=3, clock=clock) as box:
        assert box.take_dropped() == 1
        assert box.dropped_total() == 4


def test_events_and_jobs_are_never_dropped(path: Path) -> None:
    with Outbox(path, max_telemetry=1) as box:
        box.put_many([(E, TOPIC, b"e%d" % i) for i in range(50)])
        box.put_many([(J, TOPIC, b"j%d" % i) for i in range(50)])
        box.put_many([(T, TOPIC, b"t%d" % i) for i in range(10)])
        items = box.peek(limit=1000)
        assert len(items) == 101
        assert kinds_and_payloads(items)[-1] == (T, b"t9")
        assert box.dropped_total() == 9


def test_acked_telemetry_frees_room(path: Path) -> None:
    with Outbox(path, max_telemetry=2) as box:
        ids = box.put_many([(T, TOPIC, b"a"), (T, TOPIC, b"b")])
        box.ack(*ids)
        box.put_many([(T, TOPIC, b"c"), (T, TOPIC, b"d")])
        assert box.dropped_total() == 0


def test_byte_bound_drops_oldest_telemetry(path: Path) -> None:
    with Outbox(path, max_telemetry_bytes=250) as box:
        box.put(E, TOPIC, b"e" * 1000)  # events don't count towards the bound
        for i in range(5):
            box.put(T, TOPIC, bytes([i]) * 100)
        payloads = [item.payload for item in box.peek() if item.kind is T]
        assert payloads == [bytes([3]) * 100, bytes([4]) * 100]
        assert box.dropped_total() == 3
    # The byte total is rebuilt from the file on reopen.
    with Outbox(path, max_telemetry_bytes=250) as box:
        box.put(T, TOPIC, b"\x05" * 100)
        assert box.dropped_total() == 4


def test_lowered_bound_applies_on_open(path: Path) -> None:
    with Outbox(path) as box:
        box.put_many([(T, TOPIC, b"%d" % i) for i in range(10)] + [(E, TOPIC, b"e")])
    with Outbox(path, max_telemetry=4) as box:
        assert [item.payload for item in box.peek()] == [b"6", b"7", b"8", b"9", b"e"]
        assert box.depth() == 5
        assert box.take_dropped() == 6


def test_next_seq_is_monotonic_and_persisted(path: Path) -> None:
    with Outbox(path) as box:
        assert [box.next_seq("telemetry") for _ in range(3)] == [1, 2, 3]
        assert box.next_seq("session") == 1
    with Outbox(path) as box:
        assert box.next_seq("telemetry") == 4
        assert box.next_seq("session") == 2
        assert box.next_seq("job-update") == 1


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        (("bogus", TOPIC, b"x"), ValueError, r"items\[0\]\.kind must be one of"),
        ((T, "", b"x"), ValueError, r"items\[0\]\.topic must be a non-empty string"),
        ((T, TOPIC, "text"), TypeError, r"items\[0\]\.payload must be bytes, got str"),
        ((T, TOPIC), TypeError, r"items\[0\] must be a \(kind, topic, payload\) tuple"),
    ],
)
def test_put_rejects_bad_items_naming_the_field(
    outbox: Outbox, item: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        outbox.put_many([item])  # type: ignore[list-item]
    assert outbox.depth() == 0


def test_put_accepts_plain_strings_for_kind(outbox: Outbox) -> None:
    outbox.put("event", TOPIC, bytearray(b"e"))  # type: ignore[arg-type]
    assert kinds_and_payloads(outbox.peek()) == [(E, b"e")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_telemetry": 0}, "max_telemetry must be >= 1"),
        ({"max_telemetry_bytes": 0}, "max_telemetry_bytes must be >= 1"),
        ({"lock_timeout": -1}, "lock_timeout must be >= 0"),
    ],
)
def test_bad_settings_are_named(path: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outbox(path, **kwargs)  # type: ignore[arg-type]


def test_argument_checks(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="limit must be >= 1"):
        outbox.peek(limit=0)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        outbox.next_seq("")


def test_closed_outbox_fails_clearly_and_close_is_idempotent(outbox: Outbox) -> None:
    outbox.close()
    outbox.close()
    with pytest.raises(OutboxError, match="is closed"):
        outbox.put(T, TOPIC, b"x")
    with pytest.raises(OutboxError, match="is closed"):
        outbox.depth()


def test_second_instance_is_refused_without_touching_the_file(outbox: Outbox, path: Path) -> None:
    outbox.put(E, TOPIC, b"mine")
    with pytest.raises(OutboxError, match="in use by another process"):
        Outbox(path, lock_timeout=0)
    assert sorted(p.name for p in path.parent.iterdir() if "corrupt" in p.name) == []
    assert kinds_and_payloads(outbox.peek()) == [(E, b"mine")]


def test_file_is_private_wal_and_checks_clean(outbox: Outbox, path: Path) -> None:
    outbox.put(T, TOPIC, b"x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    outbox.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def test_disk_full_fails_clearly_and_loses_nothing_already_queued(outbox: Outbox) -> None:
    kept = outbox.put(E, TOPIC, b"already queued")
    conn = outbox._conn  # the only way to make a real SQLITE_FULL without filling a disk
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(OutboxError, match=r"put failed: database or disk is full \(SQLITE_FULL\)"):
        outbox.put_many([(T, TOPIC, b"x" * 4000)] * 20)
    assert outbox.depth() == 1
    assert [item.id for item in outbox.peek()] == [kept]
    # Still usable once there is room again.
    conn.execute("PRAGMA max_page_count = 1073741823")
    outbox.put(T, TOPIC, b"fits now")
    outbox.ack(kept)
    assert [item.payload for item in outbox.peek()] == [b"fits now"]
    assert outbox.depth() == 1
