"""The whole call in real Chromium: log in, call a running PC, media both ways, hang up,
record a problem with a social-services escalation, see it in the coordinator's console."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from control_plane.models import Role
from tests.care.env import CareEnv
from tests.care.turn import Coturn
from tests.support.broker import Mosquitto
from tests.support.browser import launch_chromium
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


@pytest.fixture
def env(tmp_path: Path, broker: Mosquitto, coturn: Coturn) -> Iterator[CareEnv]:
    e = CareEnv(tmp_path, broker, coturn, call_answer_timeout_s=20.0).start()
    yield e
    e.stop()


def _log_in(page: Page, env: CareEnv, email: str, path: str) -> None:
    page.goto(env.server.url + path)
    page.get_by_label("Indirizzo e-mail").fill(email)
    page.get_by_label("Password").fill("pw-secret-1")
    page.get_by_role("button", name="Entra").click()
    expect(page).to_have_url(env.server.url + path)


def _call_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("window.difronteCall || {}")
    return state


def test_caregiver_calls_the_pc_and_escalates_to_social_services(
    env: CareEnv, chromium: Browser
) -> None:
    anna, _ = env.user("anna@example.org", Role.CAREGIVER)
    env.user("coord@example.org", Role.COORDINATOR)
    password = env.register("pc-browser-01")
    ben = env.beneficiary("Maria Rossi", "pc-browser-01", [anna])
    env.start_edge("pc-browser-01", password)
    env.appointment_now(ben, [anna])
    env.wait_schedule_applied("pc-browser-01")

    caregiver = chromium.new_context(locale="it-IT")
    page = caregiver.new_page()
    try:
        _log_in(page, env, "anna@example.org", "/care")
        person = page.locator(f"#person-{ben}")
        expect(person).to_contain_text("PC acceso")
        expect(person).to_contain_text("Appuntamento adesso")
        person.get_by_role("link", name="Chiama Maria Rossi").click()
        expect(page.locator("#call-status")).to_have_text(
            "Stai parlando con Maria Rossi.", timeout=30_000
        )
        # The browser decodes the PC's synthetic camera...
        stats = wait_until(
            lambda: (
                (s := _call_state(page).get("stats") or {}).get("framesDecoded", 0) >= 10
                and s.get("videoBytesReceived", 0) > 0
                and s.get("audioBytesReceived", 0) > 0
                and s
            ),
            timeout=30,
            message="inbound video and audio in Chromium's stats",
        )
        assert stats["frameWidth"] == 320
        # ...and the PC's sink receives Chromium's fake camera and microphone.
        wait_until(
            lambda: (
                (d := env.calls(ben)[-1].stats_device).get("frames_received", 0) >= 10
                and d.get("audio_samples_received", 0) >= 48_000
            ),
            timeout=30,
            message="frames and audio at the PC",
        )
        # The browser's figures are stored with the call too.
        wait_until(
            lambda: env.calls(ben)[-1].stats_browser.get("framesDecoded", 0) >= 10,
            message="browser stats on the call record",
        )
        page.get_by_role("button", name="Riaggancia").click()
        expect(page.locator("#call-status")).to_have_text("La chiamata è terminata.")
        events = _call_state(page)["events"]
        assert events[:5] == ["camera", "ready", "accepted", "answer", "connected"]
        page.get_by_role("link", name="Scrivi com’è andata").click()
        call = env.calls(ben)[-1]
        expect(page).to_have_url(f"{env.server.url}/care/calls/{call.id}")
        expect(page.locator("#call-status")).to_contain_text("Avvenuta")
        expect(page.locator(".care-quality")).to_contain_text("Fotogrammi ricevuti")
        page.get_by_label("C’è un problema").check()
        page.get_by_label("Qual è il problema? (poche parole)").fill(
            "Vive da sola, non ha da mangiare"
        )
        page.get_by_label("Servizi sociali").check()
        page.get_by_role("button", name="Salva l’esito").click()
        expect(page).to_have_url(f"{env.server.url}/care/people/{ben}")
        expect(page.locator(".flash")).to_contain_text("Grazie. L’esito è registrato.")
        expect(page.locator(".care-timeline")).to_contain_text("Servizi sociali")
    finally:
        caregiver.close()
    wait_until(
        lambda: env.edge_status("pc-browser-01")["call"]["state"] == "idle",
        message="the PC back to idle",
    )

    coordinator = chromium.new_context(locale="it-IT")
    page = coordinator.new_page()
    try:
        _log_in(page, env, "coord@example.org", "/care/escalations")
        row = page.locator(".care-escalations tbody tr").first
        expect(row).to_contain_text("Maria Rossi")
        expect(row).to_contain_text("Servizi sociali")
        expect(row).to_contain_text("Vive da sola, non ha da mangiare")
        expect(row.locator(".state")).to_have_text("Aperta")
        row.get_by_role("link", name="Maria Rossi").click()
        page.get_by_role("button", name="Me ne occupo io").click()
        expect(page.locator("#escalation-status")).to_have_text("Presa in carico")
    finally:
        coordinator.close()
