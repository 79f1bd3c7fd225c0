"""Mosquitto's password and ACL files, written from the device registry.

Devices authenticate with their id as username. The ACL uses ``pattern`` lines with ``%u`` so
each device can touch only ``difronte/v1/dev/<its id>/...`` as the contract says; the control
plane's own account reads and writes the whole tree. After a change Mosquitto is sent SIGHUP,
which makes it re-read both files.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge.protocol import ROOT

log = logging.getLogger(__name__)

# What a device may do, row by row of the contract table.
_DEVICE_RULES = (
    ("readwrite", "status"),  # write its birth/will; read it back to repair a stale will
    ("read", "twin/desired"),
    ("write", "twin/reported"),
    ("write", "telemetry"),
    ("write", "events"),
    ("write", "jobs/get"),
    ("read", "jobs/notify"),
    ("write", "jobs/+/update"),
    ("read", "call/in"),
    ("write", "call/out"),
)


def render_acl(cp_username: str, *, extra_admins: Iterable[str] = ()) -> str:
    """The ACL file: the control plane sees everything, a device only its own topics."""
    lines = ["# Written by the ΔiFronte control plane; edits are overwritten.", ""]
    for admin in (cp_username, *extra_admins):
        lines += [f"user {admin}", f"topic readwrite {ROOT}/#", "topic read $SYS/#", ""]
    lines.append("# Every other user is a device: its username is its device id.")
    for access, suffix in _DEVICE_RULES:
        lines.append(f"pattern {access} {ROOT}/dev/%u/{suffix}")
    lines.append(f"pattern read {ROOT}/cp/status")
    return "\n".join(lines) + "\n"


def render_passwords(entries: Iterable[tuple[str, str]]) -> str:
    """The password file from (username, mosquitto hash) pairs."""
    return "".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries))


def _atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class BrokerFiles:
    """Where Mosquitto reads its credentials, and how to tell it to re-read them."""

    password_file: Path
    acl_file: Path
    pid_file: Path | None = None

    def write(
        self, cp_username: str, cp_password_hash: str, devices: Iterable[tuple[str, str]]
    ) -> None:
        """Rewrite both files atomically and reload the broker."""
        entries = [(cp_username, cp_password_hash), *devices]
        # 0640: Mosquitto reads it through the group of the credentials directory.
        _atomic_write(self.password_file, render_passwords(entries), mode=0o640)
        _atomic_write(self.acl_file, render_acl(cp_username), mode=0o644)
        self.reload()

    def reload(self) -> bool:
        """Send SIGHUP to the broker; False when no broker pid is known."""
        if self.pid_file is None or not self.pid_file.exists():
            return False
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (ValueError, ProcessLookupError, PermissionError) as exc:
            log.warning("could not reload the broker from %s: %s", self.pid_file, exc)
            return False
        return True
