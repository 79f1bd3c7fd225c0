"""The console's remote-access page in a real Chromium: Italian, live, for technicians only."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from control_plane.db import transaction, utcnow
from control_plane.models import Role
from control_plane.vpn.models import VpnPeer
from control_plane.vpn.pages import tunnel_state
from tests.support.browser import LiveServer
from tests.web.conftest import PASSWORD, ConsoleHarness, login, recently

LONG_AGO = dt.timedelta(hours=3)


def _peer(harness: ConsoleHarness, device_id: str, address: str) -> None:
    with transaction(harness.factory) as session:
        session.add(
            VpnPeer(
                device_id=device_id,
                public_key=(device_id[-1] * 43 + "=")[:43] + "=",
                address=address,
                enrolled_at=utcnow() - LONG_AGO,
                key_changed_at=utcnow() - LONG_AGO,
                hub_rx_bytes=0,
                hub_tx_bytes=0,
            )
        )


def _telemetry(age_s: float) -> dict[str, object]:
    return {"ts": utcnow().timestamp(), "metrics": {"vpn.handshake_age_s": age_s}}


@pytest.fixture
def tunnels(harness: ConsoleHarness) -> ConsoleHarness:
    harness.add_user("tina@example.org", Role.TECHNICIAN, name="Tina Verdi")
    harness.add_user("anna@example.org", Role.CAREGIVER)
    since = utcnow() - LONG_AGO
    harness.add_device(
        "casa-a", name="Anna", group="Lecce", online=True, status_at=since,
        last_telemetry=_telemetry(20),
    )  # fmt: skip
    harness.add_device("casa-b", group="Lecce", online=True, status_at=since)
    harness.add_device("casa-c", group="Lecce", online=False, last_seen=recently(600))
    for n, device_id in enumerate(("casa-a", "casa-b", "casa-c"), start=2):
        _peer(harness, device_id, f"10.8.0.{n}")
    return harness


def test_tunnel_state_words() -> None:
    now = utcnow()
    assert tunnel_state(True, now - dt.timedelta(seconds=30), now, 600) == "connected"
    assert tunnel_state(True, None, now, 600) == "silent"
    assert tunnel_state(False, now - dt.timedelta(hours=2), now, 600) == "off"


def test_only_fleet_managers_and_technicians_see_the_page(tunnels: ConsoleHarness) -> None:
    with TestClient(tunnels.app, follow_redirects=False) as client:
        login(client, "anna@example.org")
        assert client.get("/vpn").status_code == 403
    with TestClient(tunnels.app, follow_redirects=False) as client:
        login(client, "tina@example.org")
        page = client.get("/vpn")
        assert page.status_code == 200
        assert "Accesso a distanza" in page.text and "10.8.0.2" in page.text


@pytest.mark.browser
def test_technician_sees_each_tunnel_and_it_updates_by_itself(
    tunnels: ConsoleHarness, live_server: LiveServer, browser_page: Page
) -> None:
    page = browser_page
    page.goto(live_server.url + "/vpn")
    page.get_by_label("Indirizzo e-mail").fill("tina@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Entra").click()
    expect(page).to_have_url(live_server.url + "/vpn")
    expect(page.get_by_role("heading", level=1)).to_have_text("Accesso a distanza")
    expect(page.locator("#vpn-casa-a .badge-text")).to_have_text("Collegato")
    expect(page.locator("#vpn-casa-b .badge-text")).to_have_text("Non raggiungibile")
    expect(page.locator("#vpn-casa-c .badge-text")).to_have_text("PC spento")
    expect(page.locator(".summary")).to_contain_text("1 PC collegato")
    expect(page.locator(".summary")).to_contain_text("1 acceso ma non raggiungibile")
    # The PC's telemetry shows a fresh handshake: the row changes without a reload.
    tunnels.update_device("casa-b", last_telemetry=_telemetry(5))
    expect(page.locator("#vpn-casa-b .badge-text")).to_have_text("Collegato")
    expect(page.locator(".summary")).to_contain_text("2 PC collegati")
    # The navigation offers the page to a technician.
    expect(page.get_by_role("link", name="Accesso a distanza").first).to_be_visible()
