"""Run external tools (smartctl, timedatectl, dmidecode, ...) behind one injectable seam.

Collectors and diagnostics never call :mod:`subprocess` directly: they take a :class:`Runner`,
so tests feed recorded outputs and production uses :func:`default_runner`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "Runner",
    "ToolNotFound",
    "default_runner",
    "find_tool",
]

# Admin tools (smartctl, dmidecode) live in sbin, which is not on a normal user's PATH
# nor on the PATH systemd gives some units.
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a finished command printed and how it exited."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str = ""

    def first_error_line(self) -> str:
        """The first non-empty line of stderr (or stdout), for an error message."""
        for text in (self.stderr, self.stdout):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()
        return f"exit status {self.returncode}"


class CommandError(Exception):
    """A command could not be run at all."""


class ToolNotFound(CommandError):
    """The executable is not installed."""


class CommandTimeout(CommandError):
    """The command did not finish in time and was killed."""


class Runner(Protocol):
    """Runs argv and returns its output; raises :class:`CommandError` if it cannot run it.

    A non-zero exit status is *not* an error here: smartctl, for one, sets bits in its exit
    status for a failing disk while still printing a perfectly good report.
    """

    def __call__(self, argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult: ...


def find_tool(name: str) -> str | None:
    """Absolute path of an executable on PATH or in the sbin directories, or None."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN_DIRS])
    return shutil.which(name, path=search)


def default_runner(argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
    """Run argv with a timeout, in the C locale, capturing text output."""
    if not argv:
        raise ValueError("argv: empty command")
    exe = argv[0] if os.sep in argv[0] else find_tool(argv[0])
    if exe is None:
        raise ToolNotFound(f"{argv[0]}: not installed")
    # The C locale keeps tool output in the English the parsers expect, whatever the
    # device's regional settings are.
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        done = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ToolNotFound(f"{argv[0]}: not installed") from exc
    except PermissionError as exc:
        raise CommandError(f"{argv[0]}: permission denied") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(f"{argv[0]}: no answer within {timeout:g} s") from exc
    return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)
