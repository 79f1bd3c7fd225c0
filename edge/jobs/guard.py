"""The update guard: restart into the new agent, and roll back if it does not come up healthy.

Run as ``python -m edge.jobs.guard <record>`` by update-agent, with the *old* agent's
interpreter (known to work) and outside the agent's service (``systemd-run``), so that
restarting the service does not kill it. Healthy means the agent's status file says it is
connected to the broker, running the new version, written after the switch. The verdict goes
into the record (``phase``: ``healthy`` or ``rolled_back``), where the next agent reads it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .agent_update import AgentInstall, load_record, save_record

log = logging.getLogger("edge.jobs.guard")

POLL_S = 1.0


def healthy(state_dir: Path, version: str, since: float) -> bool:
    """True when the agent's status file says: connected, ``version``, written after ``since``."""
    try:
        status: Any = json.loads((state_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(status, dict):
        return False
    updated = status.get("updated")
    return (
        status.get("connected") is True
        and status.get("agent_version") == version
        and isinstance(updated, int | float)
        and updated >= since
    )


def _restart(command: Sequence[str]) -> str:
    """Run the restart command; '' when it worked, else why not."""
    if not command:
        return ""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{command[0]}: {exc}"
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[:300]
        return f"{' '.join(command)}: exit {done.returncode}: {output}"
    return ""


def run_guard(
    record_path: Path,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = POLL_S,
) -> str:
    """Restart, watch, and roll back if needed; returns the final phase."""
    record = load_record(record_path)
    if record is None or record.get("phase") != "restarting":
        log.error("no pending update in %s", record_path)
        return "none"
    version = str(record["version"])
    state_dir = Path(str(record["state_dir"]))
    command = [str(c) for c in record.get("restart_command", [])]
    since = float(record.get("switched_at", 0.0))
    log.info("restarting into %s", version)
    failure = _restart(command)
    deadline = clock() + float(record.get("health_deadline_s", 300))
    record["deadline"] = deadline
    save_record(record_path, record)
    while not failure and clock() < deadline:
        if healthy(state_dir, version, since):
            record["phase"] = "healthy"
            record["healthy_at"] = clock()
            save_record(record_path, record)
            log.info("agent %s is healthy", version)
            return "healthy"
        sleep(poll_s)
    previous = Path(str(record["previous"]))
    AgentInstall(Path(str(record["agent_root"]))).switch(previous)
    record["phase"] = "rolled_back"
    record["reason"] = (
        f"restart into {version} failed ({failure}); rolled back to {previous.name}"
        if failure
        else f"the new agent {version} did not report healthy within "
        f"{float(record.get('health_deadline_s', 300)):g} s; rolled back to {previous.name}"
    )
    record["rolled_back_at"] = clock()
    save_record(record_path, record)
    log.warning("%s", record["reason"])
    again = _restart(command)
    if again:
        log.error("restarting the previous agent failed too: %s", again)
    return "rolled_back"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m edge.jobs.guard <record>``."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s guard: %(message)s")
    if len(args) != 1:
        print("usage: python -m edge.jobs.guard <update record>", file=sys.stderr)
        return 2
    phase = run_guard(Path(args[0]))
    return 0 if phase == "healthy" else 1


if __name__ == "__main__":
    sys.exit(main())
