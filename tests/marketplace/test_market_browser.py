"""The whole marketplace path in a real Chromium, in Italian: search → worker page → request
with a photo and a good (after a refused first try) → ranked assignment → quote with credit →
acceptance → done → rating, and the worker's average updated."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from control_plane.marketplace.models import ServiceRequest
from tests.marketplace.conftest import (
    Market,
    add_worker,
    in_days,
    open_market,
    png_bytes,
    seed_catalogue,
)
from tests.support.browser import LiveServer, launch_chromium

pytestmark = pytest.mark.browser

PASSWORD = "pw-secret-1"

# Every control labelled, every image described, one h1 (as the console's own tests check).
_A11Y = """
() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label");
    if (!named) problems.push("no label: " + el.outerHTML);
  }
  for (const el of document.querySelectorAll("button, a.button")) {
    if (!el.innerText.trim() && !el.getAttribute("aria-label")) {
      problems.push("no text: " + el.outerHTML);
    }
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push("no alt: " + img.outerHTML);
    else if (!img.complete || img.naturalWidth === 0) problems.push("broken: " + img.src);
  }
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  return problems;
}
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium for this module's tests."""
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path: Path, _sqlite_template: Path) -> Iterator[tuple[Market, LiveServer]]:
    """The app with its console under a real uvicorn (SQLite; the API tests cover both)."""
    db = tmp_path / "difronte.db"
    shutil.copyfile(_sqlite_template, db)
    with open_market(f"sqlite:///{db}", tmp_path / "media", console=True, lifespan=False) as m:
        with LiveServer(m.app) as server:
            yield m, server


def _log_in(page: Page, server: LiveServer, email: str) -> None:
    expect(page).to_have_url(f"{server.url}/login?next=" + page.url.split("next=", 1)[-1])
    page.get_by_label("Indirizzo e-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Entra").click()


def _open_as(page: Page, server: LiveServer, path: str, email: str) -> None:
    page.context.clear_cookies()
    page.goto(server.url + path)
    _log_in(page, server, email)
    expect(page).to_have_url(server.url + path)


def _accessible(page: Page) -> None:
    page.wait_for_function("() => [...document.images].every(img => img.complete)")
    assert page.evaluate(_A11Y) == []


def test_search_request_quote_accept_done_rate(
    site: tuple[Market, LiveServer], chromium: Browser, tmp_path: Path
) -> None:
    m, server = site
    cat = seed_catalogue(m)
    _, giulia = add_worker(
        m, "giulia@example.org", name="Giulia Bianchi", kind="artisan",
        skills=[cat["Imbiancatura"]], areas=["Milano"],
        description="Imbianchina: pitture lavabili, stucchi e decorazioni.",
    )  # fmt: skip
    add_worker(
        m, "marco@example.org", name="Marco Verdi", kind="factotum",
        skills=[cat["Verniciatura"]], areas=["Monza"], description="Tuttofare.",
    )  # fmt: skip
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="it-IT")
    context.set_default_timeout(15_000)
    page = context.new_page()

    # 1. Anyone searches as they type, and opens the worker's page.
    page.goto(server.url + "/market")  # leads to the search
    expect(page).to_have_url(server.url + "/market/search")
    page.get_by_label("Che cosa ti serve?").fill("pitture")
    page.get_by_role("button", name="Cerca").click()
    expect(page.get_by_role("heading", name="2 persone trovate")).to_be_visible()
    _accessible(page)
    page.get_by_role("link", name="Giulia Bianchi").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Giulia Bianchi")
    expect(page.locator("#rating")).to_contain_text("Nessuna recensione")

    # 2. Asking for a quote needs a login; then the form, already on her service.
    page.get_by_role("link", name="Chiedi un preventivo").click()
    _log_in(page, server, "anna@example.org")
    expect(page.get_by_role("heading", level=1)).to_have_text("Chiedi un preventivo")
    expect(page.get_by_label("Servizio")).to_have_value(str(cat["Imbiancatura"]))
    _accessible(page)

    # A first try with mistakes: every field says what is wrong; nothing is saved.
    page.get_by_label("Che cosa c'è da fare?").fill("Muri")
    page.get_by_label("Che cos'è?").first.fill("")
    page.locator("#good_description_0").fill("Marrone, in buono stato")
    page.get_by_role("button", name="Invia la richiesta").click()
    expect(page.locator("#description-error")).to_have_text(
        "Descrivi il lavoro in almeno 10 caratteri."
    )
    expect(page.locator("#area-error")).to_be_visible()
    expect(page.locator("#good_title_0-error")).to_be_visible()
    assert m.count(ServiceRequest) == 0

    page.get_by_label("Che cosa c'è da fare?").fill("Imbiancare soggiorno e corridoio, 40 mq.")
    page.get_by_label("Entro due settimane").check()
    page.get_by_label("Dove? La tua zona o il quartiere").fill("Milano Lambrate")
    page.locator("#photos").set_input_files(
        [{"name": "soggiorno.png", "mimeType": "image/png", "buffer": png_bytes(8, 6)}]
    )
    page.locator("#good_kind_0").select_option("furniture")
    page.locator("#good_title_0").fill("Poltrona in pelle")
    page.locator("#good_photo_0").set_input_files(
        [{"name": "poltrona.png", "mimeType": "image/png", "buffer": png_bytes(5, 5)}]
    )
    page.get_by_role("button", name="Invia la richiesta").click()
    expect(page.get_by_role("status")).to_contain_text("La tua richiesta è stata inviata")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Richiesta n. 1")
    _accessible(page)  # the photos load for their owner
    page.screenshot(path=str(tmp_path / "request.png"), full_page=True)

    # 3. The administrator: queue, ranked candidates with reasons, assignment, quote.
    _open_as(page, server, "/market/queue", "boss@example.org")
    page.get_by_role("link", name="N. 1").click()
    first = page.locator(".market-candidates tbody tr").first
    expect(first).to_contain_text("Giulia Bianchi")
    expect(first).to_contain_text("offre Imbiancatura")
    expect(first).to_contain_text("lavora in zona Milano Lambrate")
    _accessible(page)
    page.screenshot(path=str(tmp_path / "candidates.png"), full_page=True)
    page.get_by_role("button", name="Assegna a Giulia Bianchi").click()
    expect(page.get_by_role("status")).to_contain_text("Il lavoro è stato assegnato")
    page.get_by_label("Prezzo del lavoro, in euro").fill("250")
    page.get_by_label("Data del lavoro").fill(in_days(5))
    page.get_by_label("Accettalo").check()
    page.get_by_label("Valore in euro, scalato dal prezzo").fill("80")
    page.get_by_role("button", name="Invia il preventivo").click()
    expect(page.locator("#quote")).to_contain_text("Da pagare: 170,00 €")

    # 4. The client accepts.
    _open_as(page, server, "/market/requests", "anna@example.org")
    page.get_by_role("link", name="N. 1").click()
    expect(page.locator("#quote")).to_contain_text("Credito per i tuoi beni: −80,00 €")
    page.get_by_role("button", name="Sì, accetto").click()
    expect(page.get_by_role("status")).to_contain_text("il lavoro è fissato")
    expect(page.locator("#request-status")).to_have_text("Fissata")

    # 5. The worker finds the job in her list and marks it done.
    _open_as(page, server, "/market/jobs", "giulia@example.org")
    page.get_by_role("link", name="N. 1").click()
    page.get_by_role("button", name="Segna come fatto").click()
    expect(page.locator("#request-status")).to_have_text("Fatta")

    # 6. The client rates it, once.
    _open_as(page, server, "/market/requests/1", "anna@example.org")
    page.get_by_label("4 stelle").check()
    page.get_by_label("Due parole sul lavoro (facoltativo)").fill("Brava e puntuale")
    page.get_by_role("button", name="Invia la recensione").click()
    expect(page.get_by_role("status")).to_contain_text("Grazie per la tua recensione!")
    expect(page.locator("#review")).to_contain_text("Brava e puntuale")
    expect(page.get_by_role("button", name="Invia la recensione")).to_have_count(0)

    # 7. Her page shows the new average to everyone.
    page.context.clear_cookies()
    page.goto(f"{server.url}/market/workers/{giulia}")
    expect(page.locator("#rating")).to_contain_text("4,0")
    expect(page.locator("#rating")).to_contain_text("1 recensione")
    expect(page.get_by_text("Brava e puntuale")).to_be_visible()
    context.close()
