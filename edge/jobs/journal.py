"""What the job runner has done, kept across restarts: each execution id is handled once.

One small JSON file in the state directory, rewritten atomically (write aside, fsync, rename)
on every change. An execution is written down as *started* before its operation runs, so a
crash mid-operation can never run it a second time: at the next start it is either resumed
(operations that restart the agent on purpose leave a note for that) or reported as
interrupted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.state import atomic_write

log = logging.getLogger(__name__)

KEEP_FINISHED = 2000  # far more than a device ever has pending; older ids are forgotten
STARTED = "started"
AWAITING_RESTART = "awaiting_restart"


class ExecutionJournal:
    """Execution id -> what happened to it; ``known`` answers "have I seen this one?"."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data.get("executions", {}) if isinstance(data, dict) else {}
            if isinstance(entries, dict):
                self._entries = {str(k): v for k, v in entries.items() if isinstance(v, dict)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            # A damaged journal must not stop the agent; set it aside for a person to see.
            log.error("job journal %s unreadable (%s); starting a new one", self.path, exc)
            self.path.replace(self.path.with_suffix(".damaged"))

    def _save(self) -> None:
        finished = [
            (entry.get("finished_at", 0.0), key)
            for key, entry in self._entries.items()
            if "outcome" in entry
        ]
        if len(finished) > KEEP_FINISHED:
            for _, key in sorted(finished)[: len(finished) - KEEP_FINISHED]:
                del self._entries[key]
        body = json.dumps({"executions": self._entries}, indent=1, sort_keys=True)
        # 0600: an operation's note may hold a secret for a moment (rotate-credentials).
        atomic_write(self.path, body.encode("utf-8"), mode=0o600)

    def known(self, execution_id: str) -> bool:
        """True once an execution has been started (or refused): never handle it again."""
        return execution_id in self._entries

    def get(self, execution_id: str) -> dict[str, Any] | None:
        """The entry of an execution."""
        return self._entries.get(execution_id)

    def start(self, execution_id: str, execution: dict[str, Any]) -> None:
        """Write down, durably, that an execution is about to run."""
        self._entries[execution_id] = {
            "state": STARTED,
            "execution": execution,
            "started_at": self._clock(),
            "note": {},
        }
        self._save()

    def note(
        self, execution_id: str, note: dict[str, Any], *, awaiting_restart: bool = False
    ) -> None:
        """Keep an operation's own state (what a resume after a restart needs)."""
        entry = self._entries[execution_id]
        entry["note"] = note
        if awaiting_restart:
            entry["state"] = AWAITING_RESTART
        self._save()

    def finish(self, execution_id: str, outcome: str) -> None:
        """Write down the final status; the note (maybe a secret) is dropped."""
        entry = self._entries.setdefault(execution_id, {})
        entry.pop("note", None)
        entry.pop("execution", None)
        entry["state"] = "finished"
        entry["outcome"] = outcome
        entry["finished_at"] = self._clock()
        self._save()

    def unfinished(self) -> list[tuple[str, dict[str, Any]]]:
        """Executions started but not finished (the agent stopped meanwhile), oldest first."""
        pending = [(k, v) for k, v in self._entries.items() if "outcome" not in v]
        return sorted(pending, key=lambda kv: kv[1].get("started_at", 0.0))
