"""The appointment pages of the console through HTTP: Italian words, forms, permissions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane.models import AuditEntry
from control_plane.schedules.models import Appointment, ScheduleException
from tests.schedules.conftest import Env
from tests.web.conftest import csrf_from, login

ROME = ZoneInfo("Europe/Rome")


@pytest.fixture
def browser(env: Env) -> Iterator[TestClient]:
    """A client of its own (its own cookies), redirects not followed.

    Not entered as a context manager: the module's app is already running its lifespan.
    """
    client = TestClient(env.client.app, follow_redirects=False)  # type: ignore[arg-type]
    yield client
    client.close()


def sign_in(env: Env, client: TestClient, who: str) -> None:
    email = next(e for e in _emails(env) if e.startswith(f"{who}."))
    assert login(client, email).status_code == 303


def _emails(env: Env) -> list[str]:
    from control_plane.models import User

    with env.session() as session:
        ids = list(env.user_ids.values())
        return list(session.execute(select(User.email).where(User.id.in_(ids))).scalars())


def post(client: TestClient, path: str, form_page: str, data: dict[str, object]) -> object:
    page = client.get(form_page)
    assert page.status_code == 200, page.text
    return client.post(path, data={**data, "csrf_token": csrf_from(page.text)})


def next_weekday(day: int) -> dt.date:
    """The next date (after today, Rome) falling on weekday ``day`` (0 = Monday)."""
    today = dt.datetime.now(ROME).date()
    return today + dt.timedelta(days=(day - today.weekday()) % 7 or 7)


def test_caregiver_adds_a_weekly_appointment_in_italian(env: Env, browser: TestClient) -> None:
    bid = env.beneficiary("Maria Rossi", device_id="pc-pages-1")
    sign_in(env, browser, "anna")
    listing = browser.get("/schedules")
    assert listing.status_code == 200 and "Appuntamenti" in listing.text
    assert "Maria Rossi" in listing.text and "Nessun appuntamento" in listing.text

    monday = next_weekday(0)
    r = post(
        browser,
        f"/schedules/people/{bid}/new",
        f"/schedules/people/{bid}/new",
        {
            "date": monday.isoformat(),
            "time": "10:00",
            "duration_min": "30",
            "repeat": "weekly",
            "days": ["MO", "WE", "FR"],
            "title": "Telefonata",
        },
    )
    assert r.status_code == 303, r.text  # type: ignore[attr-defined]
    person = browser.get(f"/schedules/people/{bid}")
    assert "L’appuntamento è salvato" in person.text
    assert "Ogni lunedì, mercoledì e venerdì alle 10:00, per 30 minuti" in person.text
    assert "Lunedì" in person.text and "10:00–10:30" in person.text
    schedule = env.desired_schedule("pc-pages-1")
    assert schedule is not None and len(schedule["wakes"]) >= 5
    with env.session() as session:
        (appt,) = session.execute(
            select(Appointment).where(Appointment.beneficiary_id == bid)
        ).scalars()
        assert appt.rrule == "FREQ=WEEKLY;BYDAY=MO,WE,FR"
        assert appt.caregiver_ids == [env.user_ids["anna"]]
        actions = session.execute(
            select(AuditEntry.action).where(AuditEntry.actor_id == env.user_ids["anna"])
        ).scalars()
        assert "appointment.create" in list(actions)


def test_form_errors_are_plain_and_keep_what_was_typed(env: Env, browser: TestClient) -> None:
    bid = env.beneficiary("Giuseppe Bianchi")
    sign_in(env, browser, "anna")
    r = post(
        browser,
        f"/schedules/people/{bid}/new",
        f"/schedules/people/{bid}/new",
        {
            "date": "not a day",
            "time": "25:99",
            "duration_min": "30",
            "repeat": "weekly",
            "title": "Promemoria",
        },
    )
    assert r.status_code == 422  # type: ignore[attr-defined]
    text = r.text  # type: ignore[attr-defined]
    assert "Scrivi il giorno" in text and "Scrivi l’ora" in text
    assert "Scegli almeno un giorno della settimana" in text
    assert 'value="Promemoria"' in text


def test_change_from_a_day_and_pause(env: Env, browser: TestClient) -> None:
    bid = env.beneficiary("Lucia Verdi", device_id="pc-pages-2")
    start = dt.datetime.now(ROME).date() + dt.timedelta(days=1)
    appt = env.appointment(
        bid, start=f"{start}T10:00:00", duration_min=30, rrule="FREQ=DAILY", who="anna"
    )
    sign_in(env, browser, "anna")
    edit = f"/schedules/appointments/{appt['id']}/edit"
    assert "Ogni giorno alle 10:00" in browser.get(edit).text
    from_day = start + dt.timedelta(days=3)
    r = post(
        browser,
        edit,
        edit,
        {
            "effective_from": from_day.isoformat(),
            "time": "11:30",
            "duration_min": "45",
            "repeat": "daily",
        },
    )
    assert r.status_code == 303, r.text  # type: ignore[attr-defined]
    person = browser.get(f"/schedules/people/{bid}").text
    assert "La modifica è salvata" in person
    assert "Ogni giorno alle 10:00" in person and "Ogni giorno alle 11:30, per 45 minuti" in person
    with env.session() as session:
        rows = list(
            session.execute(
                select(Appointment)
                .where(Appointment.beneficiary_id == bid)
                .order_by(Appointment.id)
            ).scalars()
        )
    assert rows[0].until == from_day - dt.timedelta(days=1)
    assert rows[1].previous_id == rows[0].id

    holiday = start + dt.timedelta(days=1)
    r = post(
        browser,
        f"/schedules/people/{bid}/pause",
        f"/schedules/people/{bid}/pause",
        {"first_day": holiday.isoformat(), "last_day": "", "reason": "Ferragosto"},
    )
    assert r.status_code == 303  # type: ignore[attr-defined]
    schedule = env.desired_schedule("pc-pages-2")
    assert schedule is not None
    days = {dt.datetime.fromtimestamp(w["start"], ROME).date() for w in schedule["wakes"]}
    assert holiday not in days and start in days
    with env.session() as session:
        (pause,) = session.execute(
            select(ScheduleException).where(ScheduleException.beneficiary_id == bid)
        ).scalars()
    r = post(browser, f"/schedules/pauses/{pause.id}/delete", f"/schedules/people/{bid}", {})
    assert r.status_code == 303  # type: ignore[attr-defined]
    schedule = env.desired_schedule("pc-pages-2")
    assert schedule is not None
    assert holiday in {
        dt.datetime.fromtimestamp(w["start"], ROME).date() for w in schedule["wakes"]
    }

    r = post(browser, f"/schedules/appointments/{rows[1].id}/stop", f"/schedules/people/{bid}", {})
    assert r.status_code == 303  # type: ignore[attr-defined]
    assert "L’appuntamento è annullato" in browser.get(f"/schedules/people/{bid}").text


def test_pages_check_who_is_asking(env: Env, browser: TestClient) -> None:
    theirs = env.beneficiary("Assistito di Bruno", carers=("bruno",))
    appt = env.appointment(theirs, who="bruno", start="2030-01-07T10:00:00", duration_min=30)
    sign_in(env, browser, "anna")
    assert "Assistito di Bruno" not in browser.get("/schedules").text
    for path in (
        f"/schedules/people/{theirs}",
        f"/schedules/people/{theirs}/new",
        f"/schedules/appointments/{appt['id']}/edit",
    ):
        r = browser.get(path)
        assert r.status_code == 404, path
        assert "Questa persona non è nell’elenco" in r.text
    # A form without its CSRF token is refused.
    r = browser.post(f"/schedules/appointments/{appt['id']}/stop", data={})
    assert r.status_code == 403

    other = TestClient(env.client.app, follow_redirects=False)  # type: ignore[arg-type]
    sign_in(env, other, "fleet")
    assert other.get("/schedules").status_code == 403
    assert browser.get("/schedules/people/999999").status_code == 404
