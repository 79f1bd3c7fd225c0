"""The workshop pages in a real Chromium: a trainee on a phone, a lead at the desk."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import LiveServer
from tests.workshop.conftest import Console
from tests.workshop.workshop_support import PASSWORD

pytestmark = pytest.mark.browser

# Every control labelled, every button with text, one h1, nothing wider than the screen.
_PAGE_PROBLEMS = """
() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label");
    if (!named) problems.push("no label: " + el.outerHTML);
  }
  for (const el of document.querySelectorAll("button, a.button")) {
    if (!el.textContent.trim()) problems.push("no text: " + el.outerHTML);
  }
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width + 1) {
    problems.push("wider than the screen: " + document.documentElement.scrollWidth + " > " + width);
  }
  return problems;
}
"""


def _check(page: Page) -> None:
    # A URL expectation passes when navigation commits, before the document is parsed.
    page.wait_for_load_state("load")
    assert page.evaluate(_PAGE_PROBLEMS) == []


def _log_in(page: Page, server: LiveServer, email: str, path: str) -> None:
    page.goto(server.url + path)
    page.get_by_label("Indirizzo e-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Entra").click()
    expect(page).to_have_url(server.url + path)


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    """A cheap phone: narrow touch screen, Italian."""
    context = chromium.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True, locale="it-IT"
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def desk(chromium: Browser) -> Iterator[Page]:
    """A cheap laptop's screen, Italian."""
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="it-IT")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_a_trainee_on_a_phone_finds_a_machine_and_records_the_bench_steps(
    console: Console, live_console: LiveServer, phone: Page
) -> None:
    lead = {"Authorization": f"Bearer {console.people['lead'].token}"}
    with httpx.Client(base_url=f"{live_console.url}/api/v1/workshop", headers=lead) as api:
        created = api.post(
            "/donations",
            json={
                "donor": "Biblioteca civica",
                "consent_erase_reuse": True,
                "items": [{"kind": "laptop", "manufacturer": "HP", "serial_number": "CND1234"}],
            },
        )
        assert created.status_code == 201, created.text
    tag = created.json()["machines"][0]["asset_tag"]

    page = phone
    _log_in(page, live_console, "giulia@example.org", "/workshop")
    expect(page.locator("#board [data-state='received'] .count")).to_have_text("1")
    _check(page)
    page.get_by_label("Trova una macchina per etichetta o numero di serie").fill("cnd12")
    page.get_by_role("button", name="Trova").click()
    expect(page).to_have_url(f"{live_console.url}/workshop/machines/{tag}")
    expect(page.locator("#machine-state")).to_have_text("Ricevuta")
    _check(page)

    page.get_by_role("button", name="Triage fatto").click()
    expect(page.locator(".flash")).to_contain_text(f"{tag} ora è: Valutata")
    expect(page.locator("#machine-state")).to_have_text("Valutata")
    expect(page.locator(".ws-journey [aria-current='step']")).to_have_text("Valutata")
    expect(page.locator(".ws-journey .done")).to_have_text(["Ricevuta"])
    page.get_by_role("button", name="Dati cancellati").click()
    expect(page.locator("#machine-state")).to_have_text("Dati cancellati")
    # The next step needs diagnostics and certificates: refused, and the page says why.
    page.get_by_role("button", name="Collaudo fatto").click()
    expect(page.locator("#form-errors")).to_contain_text("Manca il rapporto di diagnostica")
    expect(page.locator("#machine-state")).to_have_text("Dati cancellati")
    expect(page.locator("#history tbody tr")).to_have_count(3)
    _check(page)


def test_a_lead_receives_a_donation_and_reads_the_impact(
    console: Console, live_console: LiveServer, desk: Page
) -> None:
    page = desk
    _log_in(page, live_console, "lead@example.org", "/workshop/donations/new")
    _check(page)
    page.get_by_label("Donatore", exact=True).fill("Officine Riunite")
    page.get_by_label("Marca").first.fill("Lenovo")
    page.locator("#kind_0").select_option("laptop")
    page.locator("#weight_kg_0").fill("2,5")
    page.get_by_role("button", name="Ricevi la donazione").click()
    # Forgot the consent: told so, and nothing typed is lost.
    expect(page.locator("#form-errors")).to_contain_text("Serve il consenso del donatore")
    expect(page.get_by_label("Donatore", exact=True)).to_have_value("Officine Riunite")
    page.get_by_label("Il donatore acconsente").check()
    page.get_by_role("button", name="Ricevi la donazione").click()
    expect(page.locator(".flash")).to_contain_text("Donazione ricevuta")
    expect(page.locator("h1")).to_contain_text("Donazione D-")
    _check(page)
    href = page.locator("#labels-link").get_attribute("href")
    labels = page.request.get(f"{live_console.url}{href}")  # with the page's cookies
    assert labels.ok and labels.headers["content-type"] == "application/pdf"

    page.goto(f"{live_console.url}/workshop/impact")
    expect(page.locator("#impact-chart rect")).to_have_count(5)
    expect(page.locator("[data-figure='received'] .count")).to_have_text("1")
    expect(page.locator("[data-figure='kg_kept_out_of_waste'] .count")).to_have_text("0,0")
    _check(page)
    csv = page.request.get(f"{live_console.url}{page.locator('#impact-csv').get_attribute('href')}")
    assert csv.ok and "received" in csv.text()
