"""The fleet pages in a real Chromium: health badges and filter, charts and their ranges,
acknowledging an alert, live alerts, a token for a new PC; accessible and phone-sized."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from control_plane import alerts
from control_plane.db import migrate, transaction
from control_plane.models import Role
from edge import protocol as p
from tests.fleet.test_fleet_pages import open_alert
from tests.support.browser import LiveServer, launch_chromium
from tests.web.conftest import PASSWORD, ConsoleHarness, build_app, recently
from tests.web.test_browser import _A11Y_PROBLEMS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium for this module's tests."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[ConsoleHarness, LiveServer]]:
    path = tmp_path / "console.db"
    migrate(f"sqlite:///{path}")
    url = f"sqlite:///{path}"
    harness = ConsoleHarness(url, build_app(url, alert_check_interval_s=3600))
    harness.add_user("maria@example.org", Role.FLEET_MANAGER, name="Maria Rossi")
    harness.add_device("casa-anna", name="Anna Bianchi", group="Lecce", last_seen=recently(3))
    harness.add_device(
        "casa-bruno", name="Bruno Verdi", group="Bari", online=True, last_seen=recently(0)
    )
    harness.console.live_interval = 0.3
    with LiveServer(harness.app) as server:
        yield harness, server


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="it-IT")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def _log_in(page: Page, server: LiveServer, path: str) -> None:
    page.goto(server.url + path)
    page.get_by_label("Indirizzo e-mail").fill("maria@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Entra").click()
    expect(page).to_have_url(server.url + path)


def _accessible(page: Page) -> None:
    problems = page.evaluate(_A11Y_PROBLEMS)
    assert problems == [], problems


def _telemetry(harness: ConsoleHarness, device_id: str, hours: int) -> None:
    now = p.now()
    topic = p.topic(p.TopicKind.TELEMETRY, device_id)
    harness.app.state.ingest.handle_many(
        [
            (
                topic,
                p.encode(
                    p.TelemetryBatch(
                        ts=now - 3600 * (hours - h),
                        seq=h + 1,
                        samples=[
                            p.Sample(
                                ts=now - 3600 * (hours - h),
                                metrics={"cpu.percent": float(h % 50), "mem.used_pct": 40.0},
                            )
                        ],
                    )
                ),
            )
            for h in range(hours)
        ]
    )


def test_fleet_pages_in_chromium(
    site: tuple[ConsoleHarness, LiveServer], page: Page, tmp_path: Path
) -> None:
    harness, server = site
    alert_id = open_alert(harness, "casa-anna", "disk_full", "disco root pieno al 95%")
    _telemetry(harness, "casa-anna", hours=72)
    _log_in(page, server, "/fleet")

    # The list: a health badge in words, and the filter for what needs attention.
    anna = page.locator("#device-casa-anna")
    expect(anna.locator(".health")).to_contain_text("Disco quasi pieno")
    expect(page.locator("#device-casa-bruno .health")).to_contain_text("Tutto bene")
    page.get_by_label("Salute").select_option("attention")
    page.get_by_role("button", name="Mostra").click()
    expect(page).to_have_url(server.url + "/fleet?group=&online=&health=attention")
    expect(page.locator("tr[data-device]")).to_have_count(1)
    _accessible(page)

    # The device page: the alert, charts, ranges.
    page.get_by_role("link", name="casa-anna").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Anna Bianchi")
    alert = page.locator(f"#alert-{alert_id}")
    expect(alert).to_contain_text("disco root pieno al 95%")
    cpu = page.locator("#chart-cpu-percent")
    expect(cpu.locator("svg polyline")).to_have_count(1)
    expect(cpu.locator("figcaption")).to_contain_text("Processore in uso")
    assert cpu.locator("svg").bounding_box()["width"] > 400  # type: ignore[index]
    page.get_by_role("link", name="ultimi 7 giorni").click()
    expect(page).to_have_url(f"{server.url}/fleet/casa-anna?range=7d#charts-heading")
    expect(page.get_by_role("link", name="ultimi 7 giorni")).to_have_attribute(
        "aria-current", "true"
    )
    # 72 hours of samples: the 7-day line starts three days back, not at the left edge.
    points = cpu.locator("svg polyline").first.get_attribute("points") or ""
    assert float(points.split()[0].split(",")[0]) > 300
    _accessible(page)
    page.screenshot(path=str(tmp_path / "device.png"), full_page=True)

    # Acknowledge: one click, then the alert says someone is on it.
    page.get_by_role("button", name="Me ne occupo io").click()
    expect(page.get_by_role("status")).to_contain_text("te ne occupi tu")
    expect(page.locator(f"#alert-{alert_id}")).to_contain_text("qualcuno se ne occupa")
    # The disk is cleaned up elsewhere: the open alert goes away without a reload.
    page.evaluate("window.__stillTheSamePage = true")
    with transaction(harness.factory) as session:
        alerts.resolve(session, "disk_full:casa-anna")
    expect(page.locator("#alerts-heading + p")).to_have_text("Nessun avviso aperto: va tutto bene.")
    assert page.evaluate("window.__stillTheSamePage") is True

    # On a phone nothing is wider than the screen, charts included.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the device page is {width}px wide on a 390px phone"
    page.screenshot(path=str(tmp_path / "device-phone.png"), full_page=True)


def test_a_token_for_a_new_pc_in_chromium(
    site: tuple[ConsoleHarness, LiveServer], page: Page
) -> None:
    _, server = site
    _log_in(page, server, "/fleet")
    page.get_by_role("link", name="Aggiungi un PC alla flotta").click()
    _accessible(page)
    page.get_by_label("Nome del PC (facoltativo)").fill("casa-dora")
    page.get_by_label("Per chi è").fill("Dora")
    page.get_by_label("Valido per").select_option("1")
    page.get_by_role("button", name="Crea il codice").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Codice pronto")
    expect(page.locator("#enroll-command")).to_contain_text("difronte-edge enroll --url")
    _accessible(page)
    page.get_by_role("link", name="Torna ai codici").click()
    row = page.locator("table.pending-tokens tr", has_text="casa-dora")
    expect(row).to_contain_text("Dora")
    row.get_by_role("button", name="Ritira il codice per casa-dora").click()
    expect(page.get_by_role("status")).to_contain_text("Il codice per casa-dora è stato ritirato.")
    expect(page.locator("table.pending-tokens")).to_have_count(0)
