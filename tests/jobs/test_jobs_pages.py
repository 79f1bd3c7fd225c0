"""The jobs console pages: start a job from the form, watch it, open one PC's run, stop it.

Server-side checks go through a TestClient with a real login and CSRF tokens; the live
rollout view runs in Debian's Chromium against a real uvicorn.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect

from control_plane.db import migrate
from control_plane.jobs.pages import bar, job_from_form
from control_plane.jobs.service import JobSpecError
from control_plane.models import Role
from edge import protocol as p
from tests.support.browser import LiveServer, launch_chromium
from tests.web.conftest import PASSWORD, ConsoleHarness, build_app, csrf_from, login


@pytest.fixture
def harness(tmp_path: Path, manual_ticks: None) -> ConsoleHarness:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    migrate(url)
    h = ConsoleHarness(url, build_app(url))
    h.add_user("fabio@example.org", Role.FLEET_MANAGER, name="Fabio")
    h.add_user("tina@example.org", Role.TECHNICIAN, name="Tina")
    h.add_user("carla@example.org", Role.CAREGIVER, name="Carla")
    for i in range(3):
        h.add_device(f"pc-page-{i}", group="roma", online=i != 2)
    return h


@pytest.fixture
def client(harness: ConsoleHarness) -> Iterator[TestClient]:
    with TestClient(harness.app, follow_redirects=False) as c:
        yield c


def _report(
    h: ConsoleHarness, device: str, execution: str, status: str, seq: int, **details: str
) -> None:
    msg = p.JobUpdate(
        ts=p.now(),
        execution_id=execution,
        status=status,
        seq=seq,
        details=details,  # type: ignore[arg-type]
    )
    h.app.state.ingest.handle(p.topic(p.TopicKind.JOB_UPDATE, device, execution), p.encode(msg))


def _tick(h: ConsoleHarness) -> None:
    from control_plane.db import utcnow
    from control_plane.jobs import run_tick

    run_tick(h.factory, utcnow())


def _executions(h: ConsoleHarness, job_id: str) -> dict[str, str]:
    from sqlalchemy import select

    from control_plane.jobs.models import JobExecution

    with h.factory() as session:
        rows = session.execute(
            select(JobExecution.device_id, JobExecution.execution_id).where(
                JobExecution.job_id == job_id
            )
        ).all()
    return dict(rows)


def test_a_fleet_manager_checks_starts_watches_and_stops_a_job(
    harness: ConsoleHarness, client: TestClient
) -> None:
    assert login(client, "fabio@example.org").status_code == 303
    listing = client.get("/jobs")
    assert listing.status_code == 200
    assert "Operazioni a distanza" in listing.text and "Ancora nessuna operazione." in listing.text
    form = client.get("/jobs/new?operation=reboot")
    assert 'value="reboot" selected' in form.text
    token = csrf_from(form.text)
    fields = {
        "csrf_token": token,
        "operation": "run-diagnostics",
        "devices": "",
        "group": "roma",
        "rate": "2",
        "abort_pct": "50",
        "abort_min": "2",
        "timeout_min": "10",
        "retries": "0",
    }
    checked = client.post("/jobs/new", data={**fields, "action": "check"})
    assert checked.status_code == 200
    assert "Questa operazione andrà a 3 PC" in checked.text
    assert 'pc-page-2 <span class="hint">(spento ora' in checked.text
    assert 'value="roma" selected' in checked.text, "what was typed is kept"

    bad = client.post(
        "/jobs/new", data={**fields, "group": "", "devices": "pc-nope-1", "action": "start"}
    )
    assert bad.status_code == 422
    assert "Controlla questo: targets.devices" in bad.text and "pc-nope-1" in bad.text

    started = client.post("/jobs/new", data={**fields, "action": "start"})
    assert started.status_code == 303
    job_url = started.headers["location"]
    job_id = job_url.rsplit("/", 1)[1]
    page = client.get(job_url)
    assert "L&#39;operazione è partita." in page.text
    assert "al massimo 2 PC al minuto" in page.text
    assert "In corso" in page.text and "0 su 3 fatti" in page.text

    _tick(harness)
    runs = _executions(harness, job_id)
    _report(harness, "pc-page-0", runs["pc-page-0"], "IN_PROGRESS", 1, step="probing")
    _report(harness, "pc-page-1", runs["pc-page-1"], "FAILED", 1, reason="camera missing")
    live = client.get(f"/jobs/{job_id}/_progress", headers={"X-Live": "1"})
    assert live.status_code == 200 and "<html" not in live.text
    rows = re.findall(r'<tr data-device="([^"]+)" data-status="([^"]+)"', live.text)
    assert rows[0] == ("pc-page-1", "FAILED"), "problems first"
    assert "camera missing" in live.text and "probing" in live.text
    assert 'aria-label="Fatta: 0' not in live.text
    assert "Non riuscita: 1" in live.text

    detail = client.get(f"/jobs/{job_id}/executions/{runs['pc-page-1']}")
    assert detail.status_code == 200
    assert "pc-page-1 nell'operazione" in detail.text
    assert "Passo per passo" in detail.text and "il PC" in detail.text

    stopped = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert stopped.status_code == 303
    after = client.get(job_url)
    assert "L&#39;operazione è stata fermata." in after.text
    assert "Annullata" in after.text
    assert "Ferma questa operazione" not in after.text, "nothing left to stop"
    again = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert "Questa operazione era già finita." in client.get(again.headers["location"]).text
    assert client.post(f"/jobs/{job_id}/cancel", data={}).status_code == 403, "CSRF"
    assert client.get("/jobs/nope").status_code == 404


def test_who_may_do_what(harness: ConsoleHarness, client: TestClient) -> None:
    assert client.get("/jobs").status_code == 303, "anonymous: to the login page"
    login(client, "carla@example.org")
    assert client.get("/jobs").status_code == 403
    client.cookies.clear()
    login(client, "tina@example.org")
    form = client.get("/jobs/new")
    assert form.status_code == 200
    assert 'value="run-diagnostics"' in form.text and 'value="reboot"' not in form.text
    refused = client.post(
        "/jobs/new",
        data={
            "csrf_token": csrf_from(form.text),
            "operation": "reboot",
            "devices": "pc-page-0",
            "action": "start",
        },
    )
    assert refused.status_code == 422 and "operation" in refused.text


def test_form_parsing_names_the_field() -> None:
    spec = job_from_form(
        {
            "operation": "set-config",
            "devices": "PC-1, pc-2;pc-3",
            "settings": "telemetry.interval_s = 30\ntimezone = Europe/Rome\n",
            "timeout_min": "5",
            "retries": "2",
            "maintenance_window": "on",
        }
    )
    assert spec.targets.devices == ["pc-1", "pc-2", "pc-3"]
    assert spec.parameters == {"settings": {"telemetry.interval_s": 30, "timezone": "Europe/Rome"}}
    assert spec.timeout_s == 300 and spec.retries == 2 and spec.maintenance_window
    for form, field in [
        ({"operation": "reboot", "devices": "pc-1", "rate": "many"}, "rate"),
        ({"operation": "reboot", "devices": "pc-1", "abort_pct": "150"}, "abort_pct"),
        ({"operation": "set-config", "devices": "pc-1", "settings": "oops"}, "settings"),
        ({"operation": "reboot"}, "targets"),
    ]:
        with pytest.raises(JobSpecError, match=f"^{field}"):
            job_from_form(form)


def test_the_bar_adds_up() -> None:
    segments = bar({"SUCCEEDED": 1, "FAILED": 1, "QUEUED": 2, "CANCELED": 0})
    assert [(s.status, s.x, s.width) for s in segments] == [
        ("SUCCEEDED", 0.0, 25.0),
        ("FAILED", 25.0, 25.0),
        ("QUEUED", 50.0, 50.0),
    ]
    assert bar({}) == []


# --- in a real browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        yield browser
        browser.close()


@pytest.mark.browser
def test_the_rollout_updates_live_in_the_browser(
    harness: ConsoleHarness, chromium: Browser
) -> None:
    harness.console.live_interval = 0.3
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="it-IT")
    context.set_default_timeout(10_000)
    page: Page = context.new_page()
    try:
        with LiveServer(harness.app) as server:
            page.goto(server.url + "/jobs/new")
            page.get_by_label("Indirizzo e-mail").fill("fabio@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Entra").click()
            expect(page.locator("h1")).to_have_text("Nuova operazione")
            page.get_by_label("Operazione", exact=True).select_option("collect-logs")
            page.get_by_label("Oppure un intero gruppo").select_option("roma")
            page.get_by_role("button", name="Controlla quali PC").click()
            expect(page.locator("#job-targets h2")).to_have_text("Questa operazione andrà a 3 PC")
            page.get_by_role("button", name="Avvia l'operazione").click()
            expect(page.locator(".flash")).to_have_text("L'operazione è partita.")
            job_id = page.url.rsplit("/", 1)[1]
            expect(page.locator("#job-status")).to_have_text("In corso")

            _tick(harness)
            runs = _executions(harness, job_id)
            _report(harness, "pc-page-0", runs["pc-page-0"], "SUCCEEDED", 1)
            _report(
                harness, "pc-page-1", runs["pc-page-1"], "FAILED", 1, reason="journal unreadable"
            )
            # No reload: the live region shows the failure first, and the bar has its segments.
            first = page.locator("#job-live tbody tr").first
            expect(first).to_have_attribute("data-device", "pc-page-1")
            expect(first).to_contain_text("journal unreadable")
            expect(page.locator("#job-live .seg")).to_have_count(3)
            expect(page.locator(".job-legend [data-status='FAILED']")).to_contain_text("1")
            first.get_by_role("link").click()
            expect(page.locator("#ex-status")).to_have_text("Non riuscita")
            expect(page.locator(".history tbody tr")).to_have_count(2)
            page.go_back()
            page.get_by_role("button", name="Ferma questa operazione").click()
            expect(page.locator(".flash")).to_have_text("L'operazione è stata fermata.")
            expect(page.locator("#job-status")).to_have_text("Annullata")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1366
    finally:
        context.close()
