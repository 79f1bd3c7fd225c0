"""What every section probe gets: the tool runner, the file-system roots, and the problems log."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.collectors.runner import Runner

__all__ = ["ProbeEnv"]


@dataclass(slots=True)
class ProbeEnv:
    """Roots to read from and the runner to call tools with; collects per-section problems."""

    run: Runner
    sysfs: Path = Path("/sys")
    proc: Path = Path("/proc")
    dev: Path = Path("/dev")
    etc: Path = Path("/etc")
    test_devices: bool = False
    problems: dict[str, str] = field(default_factory=dict)

    def note(self, section: str, why: str) -> None:
        """Record why (part of) a section could not be read; repeated reasons are kept once."""
        old = self.problems.get(section)
        if old is None:
            self.problems[section] = why
        elif why not in old.split("; "):
            self.problems[section] = f"{old}; {why}"

    def read(self, path: Path, section: str) -> str | None:
        """A small sysfs/procfs file, stripped; None if absent or unreadable (noted if denied)."""
        try:
            return path.read_text(errors="replace").strip()
        except PermissionError:
            self.note(section, f"{path}: permission denied")
        except OSError:
            # Missing attributes are normal (no serial on this bus), and some raise EINVAL
            # by design (a NIC's speed while its cable is out).
            pass
        return None

    def read_int(self, path: Path, section: str) -> int | None:
        """An integer attribute, or None."""
        text = self.read(path, section)
        try:
            return int(text) if text is not None else None
        except ValueError:
            return None
