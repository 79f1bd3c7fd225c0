"""kill -9 in the middle of puts and acks: every committed row survives, the file stays healthy."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from edge.outbox import Outbox, OutboxKind

KINDS = [OutboxKind.TELEMETRY, OutboxKind.TELEMETRY, OutboxKind.EVENT, OutboxKind.JOB]

# The child announces each step on stdout (flushed) only once the call has returned, except
# "ACKING", announced before the ack so the parent knows which rows may legitimately be gone.
CHILD = r"""
import sys
from pathlib import Path
from edge.outbox import Outbox, OutboxKind

kinds = [OutboxKind.TELEMETRY, OutboxKind.TELEMETRY, OutboxKind.EVENT, OutboxKind.JOB]
box = Outbox(Path(sys.argv[1]), max_telemetry=1_000_000)
out = sys.stdout
i = int(sys.argv[2])
while True:
    kind = kinds[i % len(kinds)]
    if i % 7 == 0:
        out.write(f"SEQ {box.next_seq('telemetry')}\n")
    row = box.put(kind, f"difronte/v1/dev/pc-0001/{kind}", b"%d:" % i + b"x" * (i % 500))
    out.write(f"PUT {row} {i}\n")
    if i % 10 == 9:
        oldest = box.peek(limit=3)
        ids = [item.id for item in oldest]
        out.write("ACKING " + " ".join(map(str, ids)) + "\n")
        out.flush()
        box.ack(*ids)
        out.write("ACKED " + " ".join(map(str, ids)) + "\n")
    out.flush()
    i += 1
"""


def run_and_kill(path: Path, start: int, puts_before_kill: int) -> list[str]:
    """Run the child until it reported `puts_before_kill` puts, SIGKILL it, return its lines."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    lines: list[str] = []
    puts = 0
    try:
        while puts < puts_before_kill:
            line = child.stdout.readline().decode()
            if not line:
                raise AssertionError(f"child exited early: {child.stderr.read().decode()}")
            lines.append(line)
            puts += line.startswith("PUT ")
        os.kill(child.pid, signal.SIGKILL)
        rest = child.stdout.read().decode()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    # A line cut by the kill was never announced as done.
    complete = rest.split("\n")[:-1]
    return [line.rstrip("\n") for line in lines] + complete


def test_kill_9_loses_nothing_that_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    expected: dict[int, int] = {}  # row id -> i, for every put that returned
    acking: set[int] = set()  # may be gone: an ack was started for them
    acked: set[int] = set()  # must be gone: the ack returned
    last_seq = 0
    start = 0
    for _round in range(3):
        lines = run_and_kill(path, start, puts_before_kill=300)
        for line in lines:
            word, *fields = line.split()
            if word == "PUT":
                expected[int(fields[0])] = int(fields[1])
                start = max(start, int(fields[1]) + 1)
            elif word == "ACKING":
                acking.update(map(int, fields))
            elif word == "ACKED":
                acked.update(map(int, fields))
            elif word == "SEQ":
                last_seq = max(last_seq, int(fields[0]))
        # The killed child may have committed puts it never announced: skip past them.
        start += 1000

        with Outbox(path, max_telemetry=1_000_000) as box:
            assert box.recovered is None
            present = {item.id: item for item in box.peek(limit=1_000_000)}
            # Most announced rows are still queued, so the check below has teeth.
            assert len(present) > len(expected) // 2
            for row, i in expected.items():
                if row in acked:
                    assert row not in present, f"acked row {row} came back"
                elif row not in acking:
                    assert row in present, f"row {row} (put #{i}) was lost"
                    assert present[row].payload == b"%d:" % i + b"x" * (i % 500)
                    kind = present[row].kind
                    assert present[row].topic == f"difronte/v1/dev/pc-0001/{kind}"
                    assert kind == KINDS[i % len(KINDS)]
            assert box.depth() == len(present)
            seq = box.next_seq("telemetry")
            assert seq > last_seq
            last_seq = seq

        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
