"""update-agent: a new agent in a new virtual environment, switched to, rolled back if sick.

Layout under ``jobs.agent_root`` (``/opt/difronte``)::

    venvs/0.1.0/        one virtual environment per installed version
    venvs/0.2.0/
    current -> venvs/0.2.0      what the service runs (``current/bin/difronte-edge run``)
    downloads/          wheels being fetched

The steps: download the wheel over HTTPS (CA from ``jobs.ca_file``) while hashing it; a
sha256 that does not match fails the job before anything else is touched. Install it into a
fresh venv (built aside, then renamed into place). Write the update record, switch the
``current`` link atomically, and start the guard (``edge.jobs.guard``) *outside* the agent's
service: it restarts the service and waits for the new agent to report itself connected with
the new version; if that does not happen before the deadline it switches back and restarts
the old one. Whichever agent runs next reads the record and reports the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote, urlsplit

import msgspec
from msgspec import Meta

from edge import __version__
from edge.state import atomic_write

from .device_http import ssl_context
from .operations import AwaitRestart, BaseOperation, ExecutionContext, JobFailed, JobRejected

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

RECORD_NAME = "agent-update.json"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}\Z"
# A wheel's file name carries its metadata and pip insists on it: keep the URL's own name.
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.+-]+\.whl$")
RESUME_GRACE_S = 60.0
_guards: list[
    subprocess.Popen[bytes]
] = []  # beyond the guard's deadline, before we stop waiting for its verdict


class InstallError(Exception):
    """The wheel could not be installed into a new virtual environment."""


class AgentInstall:
    """The versioned venvs and the ``current`` link of one machine."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.venvs = self.root / "venvs"
        self.current = self.root / "current"
        self.downloads = self.root / "downloads"

    def current_target(self) -> Path | None:
        """The venv ``current`` points at, or None when it is not a link."""
        if not self.current.is_symlink():
            return None
        target = Path(os.readlink(self.current))
        return target if target.is_absolute() else self.root / target

    def switch(self, target: Path) -> None:
        """Point ``current`` at ``target`` atomically (a new link renamed over the old)."""
        tmp = self.root / f".current.{secrets.token_hex(4)}"
        os.symlink(os.path.relpath(target, self.root), tmp)
        try:
            os.replace(tmp, self.current)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # The rename is only durable once the directory itself is on disk.
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _commands(
        self, venv: Path, wheel: Path, python: str, pip_args: list[str]
    ) -> list[list[str]]:
        if importlib.util.find_spec("pip") is not None:
            # Fast path: an empty venv, filled by this interpreter's pip (pip >= 22.3).
            return [
                [python, "-m", "venv", "--without-pip", str(venv)],
                [
                    python, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-input", "--disable-pip-version-check", *pip_args, str(wheel),
                ],
            ]  # fmt: skip
        return [
            [python, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input",
                "--disable-pip-version-check", *pip_args, str(wheel),
            ],
        ]  # fmt: skip

    def install(
        self,
        wheel: Path,
        version: str,
        *,
        python: str = sys.executable,
        pip_args: list[str] | None = None,
        timeout: float = 900.0,
    ) -> Path:
        """A new venv ``venvs/<version>`` with ``wheel`` installed.

        Built in place (a venv cannot be moved: its scripts name their interpreter by path);
        a half-built one is removed on failure, and is harmless meanwhile: nothing points
        at it until the ``current`` link is switched.
        """
        final = self.venvs / version
        current = self.current_target()
        if current is not None and final.resolve() == current.resolve():
            raise InstallError(f"{final} is the running agent's venv")
        self.venvs.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)  # a leftover of an earlier, abandoned update
        try:
            for argv in self._commands(final, wheel, python, list(pip_args or [])):
                try:
                    done = subprocess.run(
                        argv, capture_output=True, text=True, timeout=timeout, check=False
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise InstallError(f"{argv[0]} {argv[1:3]}: {exc}") from exc
                if done.returncode != 0:
                    tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
                    raise InstallError(f"{' '.join(argv[1:4])} failed: {tail[-800:]}")
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return final

    def prune(self, keep: set[Path]) -> list[Path]:
        """Remove venvs (and leftovers) other than ``keep``; returns what was removed."""
        kept = {k.resolve() for k in keep}
        removed: list[Path] = []
        if not self.venvs.is_dir():
            return removed
        for entry in self.venvs.iterdir():
            if entry.resolve() not in kept:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed


async def download(
    url: str,
    dest: Path,
    *,
    sha256: str,
    ca_file: str | None,
    max_bytes: int,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Fetch ``url`` to ``dest`` over HTTPS, checking size and sha256; JobFailed otherwise.

    The file appears at ``dest`` only when its hash matches; nothing is left otherwise.
    """
    import httpx  # on demand: the idle daemon does without it

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    size = 0
    try:
        async with (
            httpx.AsyncClient(
                verify=ssl_context(ca_file) if transport is None else True,
                timeout=60.0,
                transport=transport,
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise JobFailed(f"download {url}: HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0)
            if total > max_bytes:
                raise JobFailed(f"download {url}: {total} bytes, more than {max_bytes}")
            reported = 0
            with part.open("wb") as fh:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise JobFailed(f"download {url}: more than {max_bytes} bytes")
                    digest.update(chunk)
                    fh.write(chunk)
                    if on_progress is not None and total and size * 10 // total > reported:
                        reported = size * 10 // total
                        await on_progress(size * 100 // total)
                fh.flush()
                os.fsync(fh.fileno())
    except httpx.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise JobFailed(f"download {url}: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    got = digest.hexdigest()
    if got != sha256:
        part.unlink(missing_ok=True)
        raise JobFailed(
            f"sha256 mismatch: expected {sha256}, got {got}; nothing was installed",
            sha256=got,
            bytes=str(size),
        )
    os.replace(part, dest)


def load_record(path: Path) -> dict[str, Any] | None:
    """The update record, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("update record %s unreadable: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def save_record(path: Path, record: dict[str, Any]) -> None:
    """Write the update record atomically."""
    atomic_write(path, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))


class UpdateParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, Meta(max_length=2000, pattern=r"^https://\S+\Z")]
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
    version: Annotated[str, Meta(pattern=VERSION_PATTERN)]
    health_deadline_s: Annotated[int, Meta(ge=10, le=3600)] | None = None


class UpdateAgent(BaseOperation):
    """Install a new agent beside the running one, switch, restart, roll back if sick."""

    name = "update-agent"
    params = UpdateParams

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport  # tests only: fetch through an in-process transport

    async def run(self, ctx: ExecutionContext, params: UpdateParams) -> dict[str, str]:
        """Download, check, install, switch, and hand over to the guard."""
        jobs = ctx.env.config.jobs
        install = AgentInstall(Path(jobs.agent_root))
        current = install.current_target()
        if current is None:
            raise JobFailed(
                f"{install.current} is not a link to a venv: this agent was not installed "
                "as versioned venvs, so it cannot be updated (or rolled back) safely"
            )
        if current.name == params.version:
            return {"version": params.version, "result": "already running this version"}
        filename = unquote(urlsplit(params.url).path.rsplit("/", 1)[-1])
        if not _WHEEL_NAME.fullmatch(filename):
            raise JobRejected(f"parameters.url: must name a .whl file, got {filename!r}")
        wheel = install.downloads / filename

        async def downloaded(pct: int) -> None:
            await ctx.progress(5 + pct * 30 // 100, step="downloading")

        await ctx.progress(5, step="downloading")
        await download(
            params.url,
            wheel,
            sha256=params.sha256,
            ca_file=jobs.ca_file,
            max_bytes=jobs.max_download_bytes,
            on_progress=downloaded,
            transport=self._transport,
        )
        await ctx.progress(40, step="installing")
        try:
            target = await asyncio.to_thread(
                install.install, wheel, params.version, pip_args=list(jobs.pip_args)
            )
        except InstallError as exc:
            raise JobFailed(f"install failed: {exc}", version=params.version) from exc
        finally:
            wheel.unlink(missing_ok=True)
        deadline_s = float(params.health_deadline_s or jobs.health_deadline_s)
        record_path = ctx.env.config.state_dir / RECORD_NAME
        record = {
            "execution_id": ctx.execution_id,
            "version": params.version,
            "from_version": __version__,
            "previous": str(current),
            "target": str(target),
            "agent_root": str(install.root),
            "state_dir": str(ctx.env.config.state_dir),
            "restart_command": list(jobs.restart_command),
            "health_deadline_s": deadline_s,
            "switched_at": ctx.env.clock(),
            "phase": "restarting",
            "reason": "",
        }
        await asyncio.to_thread(save_record, record_path, record)
        ctx.note({"record": str(record_path), "version": params.version})
        await asyncio.to_thread(install.switch, target)
        await ctx.progress(80, step=f"restarting into {params.version}")
        try:
            launch_guard(record_path, list(jobs.guard_launcher), ctx.env.config.state_dir)
        except OSError as exc:
            await asyncio.to_thread(install.switch, current)
            record_path.unlink(missing_ok=True)
            raise JobFailed(
                f"could not start the update guard: {exc}; still on {current.name}"
            ) from exc
        raise AwaitRestart(f"restarting into {params.version}", version=params.version)

    async def resume(self, ctx: ExecutionContext, note: dict[str, Any]) -> dict[str, str]:
        """Wait for the guard's verdict (it may still be deciding), then report it."""
        path = Path(str(note.get("record", "")))
        record = load_record(path)
        if record is None:
            raise JobFailed("interrupted before the switch: the agent was not changed")
        started = ctx.env.clock()
        limit = float(record.get("switched_at", started)) + float(
            record.get("health_deadline_s", 300)
        )
        while record.get("phase") == "restarting" and ctx.env.clock() < limit + RESUME_GRACE_S:
            await asyncio.sleep(1.0)
            record = load_record(path) or record
        version = str(record.get("version", ""))
        previous = Path(str(record.get("previous", "")))
        phase = record.get("phase")
        with contextlib.suppress(OSError):
            await asyncio.to_thread(path.replace, path.with_name(f"{path.stem}.done.json"))
        if phase == "healthy":
            install = AgentInstall(Path(str(record.get("agent_root", ""))))
            target = Path(str(record.get("target", "")))
            removed = await asyncio.to_thread(install.prune, {target, previous})
            return {
                "version": version,
                "previous": previous.name,
                "pruned": ",".join(p.name for p in removed),
            }
        if phase == "rolled_back":
            raise JobFailed(
                str(record.get("reason") or "the new agent was not healthy; rolled back"),
                version=version,
                running=previous.name,
            )
        if __version__ == version:
            return {"version": version, "previous": previous.name, "note": "guard silent"}
        raise JobFailed(
            f"the update did not complete (guard silent); running {__version__}",
            version=version,
        )


def launch_guard(record_path: Path, launcher: list[str], state_dir: Path) -> None:
    """Start ``python -m edge.jobs.guard <record>`` detached, through ``launcher``."""
    log_path = state_dir / "update-guard.log"
    argv = [*launcher, sys.executable, "-m", "edge.jobs.guard", str(record_path)]
    # Reap guards that ended (the launcher, or the guard itself when run directly), and keep
    # a handle on the others: a Popen dropped while running is a leak Python warns about.
    _guards[:] = [g for g in _guards if g.poll() is None]
    with log_path.open("ab") as out:
        guard = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our restart must not take the guard with us
            close_fds=True,
        )
    _guards.append(guard)
    log.info("update guard started: %s", " ".join(argv))
