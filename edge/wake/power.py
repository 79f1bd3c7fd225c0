"""Power backends: what "power off" and "suspend" mean on this machine.

``SystemdPower`` asks systemd-logind through ``systemctl``; ``RecordingPower`` only writes
down what it was asked, for tests and the demo (where powering off the host would be rude).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

PowerAction = Literal["poweroff", "suspend", "reboot"]


class PowerError(Exception):
    """The power action could not be requested."""


class PowerBackend(Protocol):
    """Turns the machine off or suspends it."""

    async def poweroff(self) -> None:
        """Power the machine off (the RTC alarm brings it back)."""
        ...

    async def suspend(self) -> None:
        """Suspend to RAM (the RTC alarm resumes it)."""
        ...


class SystemdPower:
    """``systemctl poweroff`` / ``systemctl suspend``: logind applies inhibitors and policy."""

    def __init__(self, systemctl: str = "systemctl", *, timeout_s: float = 30.0) -> None:
        self._systemctl = systemctl
        self._timeout_s = timeout_s

    async def poweroff(self) -> None:
        """Ask systemd to power off."""
        await self._run("poweroff")

    async def suspend(self) -> None:
        """Ask systemd to suspend."""
        await self._run("suspend")

    async def reboot(self) -> None:
        """Ask systemd to reboot (the ``reboot`` job)."""
        await self._run("reboot")

    async def _run(self, verb: str) -> None:
        cmd = [self._systemctl, verb]
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise PowerError(f"{' '.join(cmd)}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PowerError(f"{' '.join(cmd)}: no answer in {self._timeout_s:g} s") from None
        if proc.returncode != 0:
            detail = (err or out).decode(errors="replace").strip()
            raise PowerError(f"{' '.join(cmd)}: {detail or f'exit status {proc.returncode}'}")


class RecordingPower:
    """Appends ``{"action": ..., "ts": ...}`` JSON lines to a file instead of acting."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock

    async def poweroff(self) -> None:
        """Record a power-off."""
        self._record("poweroff")

    async def suspend(self) -> None:
        """Record a suspend."""
        self._record("suspend")

    async def reboot(self) -> None:
        """Record a reboot."""
        self._record("reboot")

    def actions(self) -> list[dict[str, Any]]:
        """Everything recorded so far, oldest first."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def _record(self, action: PowerAction) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"action": action, "ts": self._clock()}) + "\n")
