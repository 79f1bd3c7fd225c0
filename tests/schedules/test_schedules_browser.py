"""A caregiver sets appointments in a real Chromium; the PC's schedule follows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from control_plane.app import create_app
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.models import Beneficiary, CaregiverAssignment, Device, Role, User
from control_plane.security import hash_password
from tests.conftest import make_settings
from tests.support.browser import LiveServer, launch_chromium

pytestmark = pytest.mark.browser

ROME = ZoneInfo("Europe/Rome")
PASSWORD = "pw-secret-1"

# Every form control has a label, every button words, one h1 per page.
_A11Y = """
() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label")) {
      problems.push("no label: " + el.outerHTML);
    }
  }
  for (const el of document.querySelectorAll("button, a.button")) {
    if (!el.innerText.trim()) problems.push("no text: " + el.outerHTML);
  }
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  if (document.documentElement.scrollWidth > window.innerWidth + 1) problems.push("too wide");
  return problems;
}
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[LiveServer, int, str]]:
    """The control plane under uvicorn, with Anna, her Maria and Maria's PC."""
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        anna = User(
            email="anna@example.org",
            name="Anna Volontaria",
            role=Role.CAREGIVER.value,
            password_hash=hash_password(PASSWORD),
        )
        session.add_all([anna, Device(id="pc-maria", mqtt_password_hash="$7$unused", name="Maria")])
        session.flush()
        maria = Beneficiary(name="Maria Rossi", timezone="Europe/Rome", device_id="pc-maria")
        session.add(maria)
        session.flush()
        session.add(CaregiverAssignment(beneficiary_id=maria.id, user_id=anna.id))
        maria_id = maria.id
    engine.dispose()
    app = create_app(make_settings(url, None), run_migrations=False)
    with LiveServer(app) as server:
        yield server, maria_id, url


@pytest.fixture
def tab() -> Iterator[Page]:
    """A fresh Chromium tab in Italian, the size of a phone."""
    with sync_playwright() as playwright:
        browser: Browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 412, "height": 900}, locale="it-IT")
        context.set_default_timeout(10_000)
        yield context.new_page()
        context.close()
        browser.close()


def desired_days(url: str) -> set[dt.date]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        device = session.get(Device, "pc-maria")
        assert device is not None
        wakes = (device.desired or {}).get("schedule", {}).get("wakes", [])
    engine.dispose()
    return {dt.datetime.fromtimestamp(w["start"], ROME).date() for w in wakes}


def test_caregiver_sets_weekly_appointments_and_a_pause(
    site: tuple[LiveServer, int, str], tab: Page
) -> None:
    server, _maria, url = site
    tab.goto(server.url + "/schedules")
    tab.get_by_label("Indirizzo e-mail").fill("anna@example.org")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Entra").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Appuntamenti")
    assert tab.evaluate(_A11Y) == []

    tab.get_by_role("link", name="Maria Rossi").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Appuntamenti di Maria Rossi")
    tab.get_by_role("link", name="Aggiungi un appuntamento").click()
    assert tab.evaluate(_A11Y) == []

    today = dt.datetime.now(ROME).date()
    monday = today + dt.timedelta(days=(0 - today.weekday()) % 7 or 7)
    tab.get_by_label("In quale giorno (il primo)?").fill(monday.isoformat())
    tab.get_by_label("A che ora?").fill("10:00")
    tab.get_by_label("Quanto dura?").select_option("30")
    tab.get_by_label("Ogni settimana, in questi giorni:").check()
    for day in ("Lunedì", "Mercoledì", "Venerdì"):
        tab.get_by_label(day, exact=True).check()
    tab.get_by_role("button", name="Salva l’appuntamento").click()

    expect(tab.get_by_role("status")).to_contain_text("L’appuntamento è salvato")
    expect(tab.locator("#series")).to_contain_text(
        "Ogni lunedì, mercoledì e venerdì alle 10:00, per 30 minuti"
    )
    expect(tab.locator("#next-slots li").first).to_contain_text("Lunedì")
    assert tab.evaluate(_A11Y) == []
    days = desired_days(url)
    assert monday in days and {d.weekday() for d in days} == {0, 2, 4}

    # Maria goes to her daughter's on Wednesday: no call that day.
    wednesday = monday + dt.timedelta(days=2)
    tab.get_by_role("link", name="Aggiungi giorni senza appuntamenti").click()
    tab.get_by_label("Dal", exact=True).fill(wednesday.isoformat())
    tab.get_by_label("Fino al (compreso)").fill(wednesday.isoformat())
    tab.get_by_label("Perché? (facoltativo)").fill("dalla figlia")
    tab.get_by_role("button", name="Salva", exact=True).click()
    expect(tab.get_by_role("status")).to_contain_text("Nessun appuntamento in quei giorni")
    expect(tab.locator("#pauses")).to_contain_text("dalla figlia")
    assert wednesday not in desired_days(url)
