"""coturn on loopback for tests: ``turnserver`` with REST (use-auth-secret) credentials."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from edge.calls.ice import parse_uri, probe
from tests.support.broker import free_port
from tests.support.wait import wait_until

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


class Coturn:
    """One ``turnserver`` process on 127.0.0.1 with a static auth secret."""

    def __init__(self, workdir: Path, secret: str = "turn-test-secret") -> None:
        self.workdir = workdir
        self.secret = secret
        self.port = free_port()
        self.log = workdir / "turnserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The TURN URI over UDP."""
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def start(self) -> Coturn:
        """Start it and wait until it answers STUN."""
        if not Path(TURNSERVER).exists():
            raise RuntimeError("turnserver: not installed; run ./dev setup (Debian coturn)")
        min_port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            TURNSERVER,
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            "--realm=difronte",
            "--listening-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--relay-ip=127.0.0.1",
            f"--min-port={min(min_port, 60000)}",
            f"--max-port={min(min_port, 60000) + 200}",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--allow-loopback-peers",
            "--no-software-attribute",
            "--log-file=stdout",
            "--simple-log",
            f"--pidfile={self.workdir / 'turnserver.pid'}",
            "--userdb",
            str(self.workdir / "turndb"),
        ]
        out = self.log.open("ab")
        self.proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)
        out.close()
        uri = parse_uri(self.url)
        wait_until(
            lambda: asyncio.run(probe(uri, 0.3)),
            timeout=15,
            message=f"turnserver on {self.port} (log: {self.log})",
        )
        return self

    def stop(self) -> None:
        """Terminate it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
