"""A coordinator registers a beneficiary in a real Chromium, links the PC and assigns a
caregiver; the caregiver, logged in, finds the person on her care page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from sqlalchemy import select

from control_plane.app import create_app
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.models import Beneficiary, CaregiverAssignment, Device, Role, User
from control_plane.security import hash_password
from tests.conftest import make_settings
from tests.support.browser import LiveServer, launch_chromium

pytestmark = pytest.mark.browser

PASSWORD = "pw-secret-1"

# Every form control has a label, every button words, one h1 per page, nothing too wide.
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


# Module scope: Playwright's sync API keeps an event loop running in the main thread while
# it lives, which would break later tests that call asyncio.run().
@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def chromium(playwright_session: Playwright) -> Iterator[Browser]:
    browser = launch_chromium(playwright_session)
    yield browser
    browser.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    """The control plane under uvicorn with a coordinator, a caregiver and a free PC."""
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        session.add_all(
            [
                User(
                    email="carla@example.org",
                    name="Carla Coordinatrice",
                    role=Role.COORDINATOR.value,
                    password_hash=hash_password(PASSWORD),
                ),
                User(
                    email="anna@example.org",
                    name="Anna Volontaria",
                    role=Role.CAREGIVER.value,
                    password_hash=hash_password(PASSWORD),
                ),
                Device(
                    id="pc-rosa", name="Lenovo M58", mqtt_password_hash="$7$unused", online=True
                ),
            ]
        )
    engine.dispose()
    app = create_app(make_settings(url, None), run_migrations=False)
    with LiveServer(app) as server:
        yield server, url


def log_in(tab: Page, email: str) -> None:
    tab.get_by_label("Indirizzo e-mail").fill(email)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Entra").click()


def test_coordinator_registers_a_person_and_the_caregiver_finds_them(
    site: tuple[LiveServer, str], chromium: Browser
) -> None:
    server, url = site
    context = chromium.new_context(viewport={"width": 412, "height": 900}, locale="it-IT")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    try:
        tab.goto(server.url + "/people")
        log_in(tab, "carla@example.org")
        expect(tab.get_by_role("heading", level=1)).to_have_text("Beneficiari")
        assert tab.evaluate(_A11Y) == []

        tab.get_by_role("link", name="Aggiungi un beneficiario").click()
        expect(tab.get_by_role("heading", level=1)).to_have_text("Nuovo beneficiario")
        assert tab.evaluate(_A11Y) == []
        # Saved without a name: the field says so, nothing else is lost.
        tab.get_by_label("Zona in cui vive").fill("Rione Sanità")
        tab.get_by_label("Il suo PC").select_option("pc-rosa")
        tab.get_by_label("Nome e cognome").evaluate("el => el.removeAttribute('required')")
        tab.get_by_role("button", name="Salva il beneficiario").click()
        expect(tab.locator("#name-error")).to_have_text(
            "Scrivi il nome della persona (al massimo 200 caratteri)."
        )
        expect(tab.get_by_label("Zona in cui vive")).to_have_value("Rione Sanità")
        expect(tab.get_by_label("Il suo PC")).to_have_value("pc-rosa")

        tab.get_by_label("Nome e cognome").fill("Rosa Esposito")
        tab.get_by_role("button", name="Salva il beneficiario").click()
        expect(tab.get_by_role("heading", level=1)).to_have_text("Rosa Esposito")
        expect(tab.get_by_role("status")).to_contain_text("Ora scegli chi chiamerà")
        expect(tab.locator("#pc")).to_contain_text("PC acceso")
        assert tab.evaluate(_A11Y) == []

        tab.get_by_label("Aggiungi un caregiver").select_option(
            label="Anna Volontaria (anna@example.org)"
        )
        tab.get_by_role("button", name="Aggiungi questo caregiver").click()
        expect(tab.get_by_role("status")).to_contain_text("Ora Anna Volontaria segue Rosa Esposito")
        expect(tab.locator("#caregiver-list")).to_contain_text("caregiver principale")

        tab.get_by_role("link", name="Beneficiari", exact=True).first.click()
        expect(tab.locator("#people")).to_contain_text("Anna Volontaria (principale)")
        tab.get_by_role("button", name="Esci").click()

        # Anna logs in and Rosa is on her care page, with her PC on.
        tab.goto(server.url + "/care")
        log_in(tab, "anna@example.org")
        expect(tab.locator("main")).to_contain_text("Rosa Esposito")
    finally:
        context.close()

    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        rosa = session.execute(select(Beneficiary)).scalar_one()
        assert rosa.device_id == "pc-rosa" and rosa.address_area == "Rione Sanità"
        (assignment,) = session.execute(select(CaregiverAssignment)).scalars()
        assert assignment.beneficiary_id == rosa.id and assignment.primary
    engine.dispose()
