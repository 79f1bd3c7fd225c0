"""A real Mosquitto on a free port with a generated config, password file and ACL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from control_plane.broker import BrokerFiles
from control_plane.security import mosquitto_hash

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
CP_USER = "difronte-cp"
CP_PASSWORD = "cp-test-password"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """One broker process; its files live in ``workdir``."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.password_file = workdir / "passwd"
        self.acl_file = workdir / "acl"
        self.pid_file = workdir / "mosquitto.pid"
        self.log_file = workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto.conf"
        self.files = BrokerFiles(self.password_file, self.acl_file, self.pid_file)
        self.users: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_conf()
        self.set_users({})

    def _write_conf(self) -> None:
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.password_file}\n"
            f"acl_file {self.acl_file}\n"
            "persistence false\n"
            f"log_dest file {self.log_file}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            # Running as root in tests: keep root so the 0600 password file stays readable.
            "user root\n"
        )

    def set_users(self, users: dict[str, str]) -> None:
        """Replace the device accounts (plain passwords) and reload if running."""
        self.users = dict(users)
        self.files.write(
            CP_USER,
            mosquitto_hash(CP_PASSWORD),
            [(u, mosquitto_hash(pw)) for u, pw in self.users.items()],
        )

    def add_user(self, username: str, password: str) -> None:
        """Add one device account."""
        self.set_users({**self.users, username: password})

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        self.pid_file.write_text(str(self.proc.pid))
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_file.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start listening within 10 s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the broker (and wait for it)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.pid_file.unlink(missing_ok=True)

    def restart(self) -> None:
        """Stop and start again on the same port (clients must reconnect)."""
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: re-read the password and ACL files."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGHUP)

    def log_text(self) -> str:
        """What the broker logged."""
        return self.log_file.read_text(errors="replace")
