"""The console in a real Chromium: login, live updates without reload, looks, accessibility."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from control_plane.db import utcnow
from control_plane.models import Role
from tests.support.browser import LiveServer
from tests.web.conftest import PASSWORD, ConsoleHarness, recently

pytestmark = pytest.mark.browser

# Every form control must have a label (or an ARIA name), every button visible text.
_A11Y_PROBLEMS = """
() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label")
      || el.getAttribute("aria-labelledby");
    if (!named) problems.push("no label: " + el.outerHTML);
  }
  for (const el of document.querySelectorAll("button, a.button, [role=button]")) {
    if (!el.innerText.trim() && !el.getAttribute("aria-label")) {
      problems.push("no text: " + el.outerHTML);
    }
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push("no alt: " + img.outerHTML);
  }
  if (!document.documentElement.lang) problems.push("no <html lang>");
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  if (!document.querySelector("a.skip-link[href='#main']")) problems.push("no skip link");
  return problems;
}
"""


def _log_in(page: Page, server: LiveServer, path: str, email: str) -> None:
    page.goto(server.url + path)
    expect(page).to_have_url(f"{server.url}/login?next={path}")
    page.get_by_label("Indirizzo e-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Entra").click()
    expect(page).to_have_url(server.url + path)


def _assert_accessible(page: Page) -> None:
    problems = page.evaluate(_A11Y_PROBLEMS)
    assert problems == [], problems


@pytest.fixture
def fleet(harness: ConsoleHarness) -> ConsoleHarness:
    harness.add_user("maria@example.org", Role.FLEET_MANAGER, name="Maria Rossi")
    harness.add_device("casa-anna", name="Anna Bianchi", group="Lecce", last_seen=recently(3))
    harness.add_device(
        "casa-bruno",
        name="Bruno Verdi",
        group="Bari",
        online=True,
        last_seen=recently(0),
        rejected_count=2,
    )
    harness.add_device("casa-carla", name="Carla Neri", group="Lecce", last_seen=recently(26 * 60))
    return harness


def test_device_comes_online_without_reload(
    fleet: ConsoleHarness, live_server: LiveServer, browser_page: Page, tmp_path: Path
) -> None:
    page = browser_page
    _log_in(page, live_server, "/fleet", "maria@example.org")
    row = page.locator("#device-casa-anna")
    expect(row.locator(".state .badge-text")).to_have_text("Non in linea")
    expect(row).to_contain_text("3 minuti fa")
    # A mark on the window: a reload would wipe it.
    page.evaluate("window.__stillTheSamePage = true")

    fleet.update_device("casa-anna", online=True, last_seen=utcnow())

    expect(row.locator(".state .badge-text")).to_have_text("In linea")
    expect(row).to_contain_text("adesso")
    expect(page.locator(".summary")).to_contain_text("2 in linea")
    assert page.evaluate("window.__stillTheSamePage") is True

    shot = tmp_path / "fleet.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    _assert_accessible(page)
    # Large type: at least 20 px body text.
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 20


def test_login_page_accessible_and_switches_to_english(
    fleet: ConsoleHarness, live_server: LiveServer, browser_page: Page, tmp_path: Path
) -> None:
    page = browser_page
    page.goto(live_server.url + "/login")
    expect(page.locator("html")).to_have_attribute("lang", "it")
    _assert_accessible(page)
    page.screenshot(path=str(tmp_path / "login.png"), full_page=True)
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    page.get_by_label("E-mail address").fill("maria@example.org")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password. Please try again.")


def test_device_page_and_phone_layout(
    fleet: ConsoleHarness, live_server: LiveServer, browser_page: Page, tmp_path: Path
) -> None:
    page = browser_page
    fleet.update_device(
        "casa-bruno",
        boot_reason="rtc",
        agent_version="0.1.0",
        last_telemetry={
            "ts": 0.0,
            "metrics": {
                "cpu.percent": 12.0,
                "temp.max_c": 48.0,
                "mem.total_bytes": 4e9,
                "disk.root.used_pct": 61.0,
                "uptime_s": 7200.0,
            },
        },
        reported={"agent_version": "0.1.0", "vpn": {"public_key": "k=", "state": "up"}},
        last_telemetry_at=recently(1),
    )
    _log_in(page, live_server, "/fleet", "maria@example.org")
    page.get_by_role("link", name="casa-bruno").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bruno Verdi")
    expect(page.get_by_role("row", name="Processore in uso")).to_contain_text("12 %")
    _assert_accessible(page)
    page.screenshot(path=str(tmp_path / "device.png"), full_page=True)
    # The same page on a phone: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + "/fleet")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page is {width}px wide on a 390px phone"
    page.screenshot(path=str(tmp_path / "fleet-phone.png"), full_page=True)


def test_caregiver_sees_a_plain_refusal(
    harness: ConsoleHarness, live_server: LiveServer, browser_page: Page
) -> None:
    harness.add_user("anna@example.org", Role.CAREGIVER, name="Anna")
    page = browser_page
    _log_in(page, live_server, "/", "anna@example.org")
    response = page.goto(live_server.url + "/fleet")
    assert response is not None and response.status == 403
    expect(page.get_by_text("Non hai accesso a questa pagina.")).to_be_visible()
    page.get_by_role("button", name="Esci").click()
    expect(page).to_have_url(live_server.url + "/login")
    expect(page.get_by_role("status")).to_have_text("Hai chiuso la sessione. A presto!")
