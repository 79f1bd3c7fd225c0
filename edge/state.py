"""Small persisted state of the daemon: session counter and the status file for operators."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` so that a power cut leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateFile:
    """A JSON document on disk, rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        try:
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self.data = loaded
        except (OSError, ValueError):
            # Missing or damaged: start empty; counters only ever move forward from here.
            self.data = {}

    def save(self) -> None:
        """Persist the current data."""
        atomic_write(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode())

    def bump(self, key: str) -> int:
        """Increment a persisted counter and return its new value."""
        value = int(self.data.get(key, 0)) + 1
        self.data[key] = value
        self.save()
        return value

    def update(self, **values: Any) -> None:
        """Set keys and persist."""
        self.data.update(values)
        self.save()
