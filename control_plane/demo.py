"""``difronte demo``: Mosquitto, the control plane and simulated PCs, all on this machine.

Everything runs from one runtime directory (recreated each time): the broker's config, password
file and ACL; the SQLite database; and for each simulated PC its config, state, fake RTC and a
log of the power actions it would have taken. Ctrl-C stops every process started here.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from edge.config import (
    EdgeConfig,
    MqttConfig,
    PathsConfig,
    PowerConfig,
    TelemetryConfig,
    dump_config,
)

from .config import Settings
from .db import make_engine, make_sessionmaker, migrate, transaction
from .devices import create_device
from .models import ApiToken, Beneficiary, CaregiverAssignment, Role, User
from .security import hash_password, new_token, token_hash

DEMO_PASSWORD = "difronte-demo"
# (email, name, role) of the people the demo creates; all share DEMO_PASSWORD.
DEMO_PEOPLE = (
    ("admin@difronte.example", "Amministratrice", Role.ADMIN),
    ("flotta@difronte.example", "Franco della flotta", Role.FLEET_MANAGER),
    ("coordinatrice@difronte.example", "Carla Coordinatrice", Role.COORDINATOR),
    ("anna@difronte.example", "Anna (volontaria)", Role.CAREGIVER),
    ("bruno@difronte.example", "Bruno (volontario)", Role.CAREGIVER),
    ("tecnico@difronte.example", "Tito il tecnico", Role.TECHNICIAN),
    ("laboratorio@difronte.example", "Lia del laboratorio", Role.WORKSHOP_LEAD),
)
DEMO_BENEFICIARIES = (
    "Maria Rossi",
    "Giuseppe Bianchi",
    "Lucia Verdi",
    "Antonio Russo",
    "Rosa Esposito",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


class Demo:
    """The processes of one demo run."""

    def __init__(self, runtime: Path, port: int, devices: int) -> None:
        self.runtime = runtime.resolve()
        self.port = port
        self.devices = devices
        self.mqtt_port = _free_port()
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.settings = Settings(
            environment="development",
            database_url=f"sqlite:///{self.runtime / 'difronte.db'}",
            public_url=f"http://127.0.0.1:{port}",
            mqtt_port=self.mqtt_port,
            mqtt_password=DEMO_PASSWORD + "-broker",
            broker_password_file=self.runtime / "mosquitto" / "passwd",
            broker_acl_file=self.runtime / "mosquitto" / "acl",
            broker_pid_file=self.runtime / "mosquitto" / "mosquitto.pid",
        )

    def env(self) -> dict[str, str]:
        """The control plane's settings as environment variables for its process."""
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "DIFRONTE_ENVIRONMENT": s.environment,
                "DIFRONTE_DATABASE_URL": s.database_url,
                "DIFRONTE_PUBLIC_URL": s.public_url,
                "DIFRONTE_MQTT_PORT": str(s.mqtt_port),
                "DIFRONTE_MQTT_PASSWORD": s.mqtt_password,
                "DIFRONTE_BROKER_PASSWORD_FILE": str(s.broker_password_file),
                "DIFRONTE_BROKER_ACL_FILE": str(s.broker_acl_file),
                "DIFRONTE_BROKER_PID_FILE": str(s.broker_pid_file),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _spawn(
        self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        out = log.open("ab")
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        out.close()
        self.procs.append((name, proc))
        (self.runtime / "pids.json").write_text(
            json.dumps({n: p.pid for n, p in self.procs}, indent=1)
        )
        return proc

    def prepare(self) -> list[tuple[str, str]]:
        """Fresh runtime directory, database with demo people, devices and broker files."""
        if self.runtime.exists():
            shutil.rmtree(self.runtime)
        (self.runtime / "mosquitto").mkdir(parents=True)
        (self.runtime / "logs").mkdir()
        migrate(self.settings.database_url)
        engine = make_engine(self.settings.database_url)
        factory = make_sessionmaker(engine)
        credentials: list[tuple[str, str]] = []
        with transaction(factory) as session:
            users: dict[Role, list[User]] = {}
            for email, name, role in DEMO_PEOPLE:
                user = User(
                    email=email,
                    name=name,
                    role=role.value,
                    password_hash=hash_password(DEMO_PASSWORD),
                )
                session.add(user)
                users.setdefault(role, []).append(user)
            session.flush()
            token = new_token()
            session.add(
                ApiToken(user_id=users[Role.ADMIN][0].id, token_hash=token_hash(token), name="demo")
            )
            (self.runtime / "admin-token").write_text(token)
            caregivers = users[Role.CAREGIVER]
            for i in range(self.devices):
                device_id = f"pc-demo-{i + 1:02d}"
                _, password = create_device(
                    session,
                    self.settings,
                    device_id=device_id,
                    name=f"PC di {DEMO_BENEFICIARIES[i % 5]}",
                    group="roma-centro" if i % 2 == 0 else "roma-est",
                )
                credentials.append((device_id, password))
                person = Beneficiary(
                    name=DEMO_BENEFICIARIES[i % 5], device_id=device_id, address_area="Roma"
                )
                session.add(person)
                session.flush()
                session.add(
                    CaregiverAssignment(
                        beneficiary_id=person.id,
                        user_id=caregivers[i % len(caregivers)].id,
                        primary=True,
                    )
                )
                self._appointments(session, person, users[Role.COORDINATOR][0])
        engine.dispose()
        return credentials

    @staticmethod
    def _appointments(session: Session, person: Beneficiary, coordinator: User) -> None:
        """A call window open now (so the demo PCs stay on) and the usual Mon/Wed/Fri 10:00."""
        from zoneinfo import ZoneInfo

        from .schedules.appointments import create_appointment

        now = dt.datetime.now(ZoneInfo(person.timezone)).replace(
            second=0, microsecond=0, tzinfo=None
        )
        create_appointment(
            session,
            person=person,
            user=coordinator,
            start=now - dt.timedelta(minutes=5),
            duration_min=120,
            title="Chiamata di prova (demo)",
        )
        create_appointment(
            session,
            person=person,
            user=coordinator,
            start=(now + dt.timedelta(days=1)).replace(hour=10, minute=0),
            duration_min=30,
            title="Telefonata del mattino",
            rrule="FREQ=WEEKLY;BYDAY=MO,WE,FR",
        )

    def start_broker(self) -> None:
        """Mosquitto with the control plane's password file and ACL."""
        d = self.runtime / "mosquitto"
        conf = d / "mosquitto.conf"
        conf.write_text(
            f"listener {self.mqtt_port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {d / 'passwd'}\nacl_file {d / 'acl'}\npersistence false\n"
            f"log_dest file {d / 'mosquitto.log'}\nuser {getpass.getuser()}\n"
        )
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        proc = self._spawn("mosquitto", [mosquitto, "-c", str(conf)], d / "stdout.log")
        (d / "mosquitto.pid").write_text(str(proc.pid))
        self._wait_port(self.mqtt_port, "mosquitto", proc)
        _say(f"broker: mqtt://127.0.0.1:{self.mqtt_port} (log {d / 'mosquitto.log'})")

    def start_control_plane(self) -> None:
        """The control plane under uvicorn, in its own process."""
        log = self.runtime / "logs" / "control-plane.log"
        proc = self._spawn(
            "control-plane",
            [sys.executable, "-m", "control_plane.cli", "serve", "--port", str(self.port)],
            log,
            env=self.env(),
        )
        self._wait_port(self.port, "control plane", proc, timeout=60)
        _say(f"control plane: {self.settings.public_url} (log {log})")

    def start_devices(self, credentials: list[tuple[str, str]]) -> None:
        """One real ``difronte-edge`` process per simulated PC, hardware seams faked."""
        for device_id, password in credentials:
            home = self.runtime / "devices" / device_id
            (home / "rtc").mkdir(parents=True)
            config = EdgeConfig(
                device_id=device_id,
                control_plane_url=self.settings.public_url,
                mqtt=MqttConfig(
                    host="127.0.0.1", port=self.mqtt_port, password=password, keepalive=10
                ),
                paths=PathsConfig(
                    state_dir=str(home / "state"), rtc_dir=str(home / "rtc"), fake_rtc=True
                ),
                power=PowerConfig(backend="record", record_file=str(home / "power.jsonl")),
                telemetry=TelemetryConfig(interval_s=5.0),
            )
            path = home / "edge.toml"
            path.write_bytes(dump_config(config))
            self._spawn(
                device_id,
                [sys.executable, "-m", "edge.cli", "run", "--config", str(path)],
                self.runtime / "logs" / f"{device_id}.log",
            )
        _say(f"started {len(credentials)} simulated PCs (logs in {self.runtime / 'logs'})")

    def _wait_port(
        self, port: int, what: str, proc: subprocess.Popen[bytes], timeout: float = 20
    ) -> None:
        deadline = time.monotonic() + timeout
        while not _port_open(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with code {proc.returncode}; see its log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")
            time.sleep(0.1)

    def wait_online(self, timeout: float = 60) -> int:
        """Poll the API until every device is online; returns how many are."""
        token = (self.runtime / "admin-token").read_text()
        deadline = time.monotonic() + timeout
        online = 0
        with httpx.Client(
            base_url=self.settings.public_url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            while time.monotonic() < deadline:
                items = client.get("/api/v1/devices").json()["items"]
                now_online = sum(1 for d in items if d["online"])
                if now_online != online:
                    online = now_online
                    _say(f"{online}/{self.devices} PCs online")
                if online == self.devices:
                    break
                time.sleep(0.5)
        return online

    def stop(self) -> None:
        """Stop every process we started: devices first, then control plane, then broker."""
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 10
        for name, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"{name} did not stop; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        _say(f"stopped {len(self.procs)} processes")


def run_demo(*, port: int = 8000, devices: int = 3, runtime: str = "var/demo") -> int:
    """Run the demo until Ctrl-C (or SIGTERM)."""
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    demo = Demo(Path(runtime), port, devices)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        credentials = demo.prepare()
        demo.start_broker()
        demo.start_control_plane()
        demo.start_devices(credentials)
        online = demo.wait_online()
        _say(f"ready: {online}/{devices} PCs online — open {demo.settings.public_url}")
        _say(f"logins (password for all: {DEMO_PASSWORD}):")
        for email, name, role in DEMO_PEOPLE:
            _say(f"  {role.value:<14} {email}  ({name})")
        _say(f"API token of the admin: {(demo.runtime / 'admin-token').read_text()}")
        _say("press Ctrl-C to stop everything")
        while True:
            for name, proc in demo.procs:
                if proc.poll() is not None:
                    _say(f"{name} exited with code {proc.returncode}; stopping the demo")
                    raise KeyboardInterrupt
            time.sleep(1)
    except KeyboardInterrupt:
        _say("stopping")
        return 0
    except RuntimeError as exc:
        _say(f"failed: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        demo.stop()
