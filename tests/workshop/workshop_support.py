"""Helpers of the workshop's database, API and page tests: people, reports, a harness."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from control_plane.db import make_engine, make_sessionmaker, transaction
from control_plane.models import ApiToken, AuditEntry, Beneficiary, Role, User
from control_plane.security import hash_password, new_token, token_hash

GIB = 1024**3

# The people of every workshop test: (key, e-mail, role).
PEOPLE: tuple[tuple[str, str, Role], ...] = (
    ("admin", "admin@example.org", Role.ADMIN),
    ("lead", "lead@example.org", Role.WORKSHOP_LEAD),
    ("tech", "tech@example.org", Role.TECHNICIAN),
    ("trainee", "giulia@example.org", Role.TRAINEE),
    ("trainee2", "marco@example.org", Role.TRAINEE),
    ("caregiver", "anna@example.org", Role.CAREGIVER),
)

DISK_SERIAL = "S21PNXAG123456"


def good_report(serial: str = "PB0ABCD", disk_serial: str = DISK_SERIAL) -> dict[str, Any]:
    """A diagnostics report, in the edge's format, of a laptop fit for a home."""
    return {
        "v": 1,
        "generated_at": 1_772_700_000.0,
        "tool_version": "0.1.0",
        "system": {"manufacturer": "LENOVO", "product": "20B7S2EX00", "serial": serial},
        "cpu": {"model": "Intel(R) Core(TM) i5-4300U", "cores": 2, "threads": 4, "is_64bit": True},
        "memory": {
            "total_bytes": 7_900_000_000,
            "installed_bytes": 8 * GIB,
            "slots": 2,
            "modules": [{"size_bytes": 4 * GIB, "type": "DDR3"}] * 2,
        },
        "disks": [
            {
                "name": "sda",
                "model": "Samsung SSD 850 EVO 250GB",
                "serial": disk_serial,
                "size_bytes": 250_059_350_016,
                "rotational": False,
                "removable": False,
                "transport": "sata",
                "smart": {"available": True, "passed": True, "power_on_hours": 12_000},
            },
            {
                # The workshop's live USB stick: removable, never in need of a certificate.
                "name": "sdb",
                "model": "Cruzer",
                "serial": "USB-LIVE-1",
                "size_bytes": 16_000_000_000,
                "removable": True,
                "transport": "usb",
            },
        ],
        "battery": {"present": True, "health_pct": 81.9},
        "camera": {"present": True, "working": True},
        "microphone": {"present": True, "working": True},
        "rtc": {"present": True, "wakealarm": True, "max_ahead_s": 86_400, "battery_ok": True},
        "problems": {},
    }


def report_without_camera(serial: str, disk_serial: str) -> dict[str, Any]:
    """The same laptop with its camera gone: a telecare blocker."""
    report = copy.deepcopy(good_report(serial, disk_serial))
    report["camera"] = {"present": False, "working": None}
    return report


@dataclass
class Person:
    """A test person: id and bearer token."""

    id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The bearer header."""
        return {"Authorization": f"Bearer {self.token}"}


PASSWORD = "pw-secret-1"


@functools.cache
def _password_hash() -> str:
    # scrypt is slow on purpose; one hash serves every test person of the session.
    return hash_password(PASSWORD)


def make_people(db_url: str) -> dict[str, Person]:
    """Create the test people (password PASSWORD, a bearer token each) in a migrated DB."""
    people: dict[str, Person] = {}
    engine = make_engine(db_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            for key, email, role in PEOPLE:
                user = User(
                    email=email,
                    name=email.split("@")[0].capitalize(),
                    role=role.value,
                    password_hash=_password_hash(),
                )
                session.add(user)
                session.flush()
                token = new_token()
                session.add(ApiToken(user_id=user.id, token_hash=token_hash(token), name="test"))
                people[key] = Person(user.id, email, token)
    finally:
        engine.dispose()
    return people


@dataclass
class Db:
    """Direct access to a test database."""

    url: str
    factory: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.url)
        self.factory = make_sessionmaker(self.engine)

    def close(self) -> None:
        """Dispose of the engine."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success."""
        with transaction(self.factory) as session:
            yield session

    def beneficiary(self, name: str) -> int:
        """A beneficiary at home; returns the id."""
        with self.session() as session:
            row = Beneficiary(name=name)
            session.add(row)
            session.flush()
            return row.id

    def beneficiary_device(self, beneficiary_id: int) -> str | None:
        """The device a beneficiary is linked to."""
        with self.factory() as session:
            row = session.get(Beneficiary, beneficiary_id)
            assert row is not None
            return row.device_id

    def audit_actions(self, object_id: str) -> list[str]:
        """The audit actions recorded on one object, oldest first."""
        with self.factory() as session:
            return list(
                session.execute(
                    select(AuditEntry.action)
                    .where(AuditEntry.object_id == object_id)
                    .order_by(AuditEntry.id)
                ).scalars()
            )

    def count(self, model: Any) -> int:
        """How many rows a table has."""
        with self.factory() as session:
            return int(session.execute(select(func.count()).select_from(model)).scalar_one())


class WorkshopApi:
    """The control plane's API as the workshop's people use it."""

    def __init__(self, client: TestClient, people: dict[str, Person], db: Db) -> None:
        self.client = client
        self.people = people
        self.db = db

    def call(self, method: str, path: str, who: str = "lead", **kwargs: Any) -> httpx2.Response:
        """``METHOD /api/v1/workshop{path}`` as ``who``."""
        return self.client.request(
            method, f"/api/v1/workshop{path}", headers=self.people[who].headers, **kwargs
        )

    def ok(self, method: str, path: str, who: str = "lead", status: int = 200, **kw: Any) -> Any:
        """The JSON answer of a call that must succeed with ``status``."""
        response = self.call(method, path, who, **kw)
        assert response.status_code == status, response.text
        return response.json()

    def donate(self, *items: dict[str, Any], who: str = "lead", **fields: Any) -> dict[str, Any]:
        """Receive a donation of ``items``; returns the donation."""
        body = {"donor": "Comune di Roma", "consent_erase_reuse": True, "items": list(items)}
        body.update(fields)
        donation: dict[str, Any] = self.ok("POST", "/donations", who, 201, json=body)
        return donation

    def move(self, tag: str, to: str, who: str = "lead", **fields: Any) -> httpx2.Response:
        """Ask for a transition."""
        return self.call("POST", f"/machines/{tag}/transitions", who, json={"to": to, **fields})

    def moved(self, tag: str, *states: str, who: str = "lead", **fields: Any) -> dict[str, Any]:
        """Move through ``states``, each of which must be accepted; returns the last answer."""
        answer: dict[str, Any] = {}
        for state in states:
            response = self.move(tag, state, who, **fields)
            assert response.status_code == 200, f"{state}: {response.text}"
            answer = response.json()
        return answer

    def erase(self, tag: str, disk_serial: str, who: str = "tech", **fields: Any) -> Any:
        """Record a passed overwrite of one disk."""
        finished = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        body = {
            "disk_serial": disk_serial,
            "method": "overwrite",
            "passes": 1,
            "verification": "passed",
            "started_at": (finished - dt.timedelta(hours=2)).isoformat(),
            "finished_at": finished.isoformat(),
            "tool": "nwipe 0.34",
        }
        body.update(fields)
        return self.call("POST", f"/machines/{tag}/erasures", who, json=body)


def problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """The problem+json body of a refused call, checked for its status and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token in a rendered page."""
    match = _CSRF.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def log_in(client: TestClient, email: str) -> None:
    """Log in through the console's login form (as someone else: a fresh browser session)."""
    client.cookies.clear()
    form = client.get("/login")
    assert form.status_code == 200, form.text
    done = client.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "next": "/",
            "csrf_token": csrf_from(form.text),
        },
    )
    assert done.status_code == 303, done.text


def post_form(
    client: TestClient, page_path: str, action: str, data: dict[str, Any], **kw: Any
) -> httpx2.Response:
    """Open ``page_path`` and submit a form to ``action`` with its CSRF token, as a person would."""
    page = client.get(page_path)
    assert page.status_code == 200, page.text
    return client.post(action, data={**data, "csrf_token": csrf_from(page.text)}, **kw)
