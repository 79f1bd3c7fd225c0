"""The workshop's console pages through their forms: intake, steps, erasures, work, impact."""

from __future__ import annotations

import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane.workshop.models import Donation, Erasure, Machine
from tests.workshop.conftest import Console
from tests.workshop.workshop_support import csrf_from, good_report, log_in, post_form

TAG = re.compile(r"DF-\d{4}-\d{6}")


def _today() -> str:
    return dt.datetime.now(ZoneInfo("Europe/Rome")).date().isoformat()


def _tags(console: Console) -> list[str]:
    with console.db.factory() as session:
        return list(session.scalars(select(Machine.asset_tag).order_by(Machine.asset_tag)))


def _receive(browser: TestClient, **fields: str) -> str:
    data = {"donor": "Scuola Media Verdi", "received_on": _today(), "consent_erase_reuse": "yes"}
    data.update(fields)
    done = post_form(browser, "/workshop/donations/new", "/workshop/donations/new", data)
    assert done.status_code == 303, done.text
    return done.headers["location"]


def test_intake_form_tags_the_items_and_names_what_is_wrong(
    console: Console, browser: TestClient
) -> None:
    log_in(browser, "lead@example.org")
    form = browser.get("/workshop/donations/new")
    assert form.status_code == 200 and "Ricevi una donazione" in form.text

    # No consent: refused, explained in Italian, what was typed is kept.
    refused = post_form(
        browser,
        "/workshop/donations/new",
        "/workshop/donations/new",
        {"donor": "Scuola", "received_on": _today(), "manufacturer_0": "Acer"},
    )
    assert refused.status_code == 422
    assert "Serve il consenso del donatore" in refused.text
    assert 'value="Acer"' in refused.text and 'value="Scuola"' in refused.text
    # A bad weight on the second row typed: the error sits on that row.
    bad_row = post_form(
        browser,
        "/workshop/donations/new",
        "/workshop/donations/new",
        {
            "donor": "Scuola",
            "received_on": _today(),
            "consent_erase_reuse": "yes",
            "model_0": "Aspire",
            "model_2": "Veriton",
            "weight_kg_2": "-3",
        },
    )
    assert bad_row.status_code == 422
    legend = bad_row.text.index("Oggetto 3")
    error = bad_row.text.index('class="field-error"', legend)
    assert (
        error < bad_row.text.index("Oggetto", legend + 10) if "Oggetto 4" in bad_row.text else True
    )
    assert console.db.count(Donation) == 0 and console.db.count(Machine) == 0

    location = _receive(
        browser,
        kind_0="laptop",
        manufacturer_0="Acer",
        model_0="Aspire 5",
        serial_number_0="NXABC",
        weight_kg_0="2,3",
        kind_1="monitor",
        model_1="Dell P2214H",
    )
    page = browser.get(location)
    assert page.status_code == 200
    assert "Donazione ricevuta" in page.text  # the flash
    tags = sorted(set(TAG.findall(page.text)))
    assert len(tags) == 2
    assert f"/api/v1/workshop/donations/{location.rsplit('/', 1)[1]}/labels.pdf" in page.text
    labels = browser.get(f"/api/v1/workshop/donations/{location.rsplit('/', 1)[1]}/labels.pdf")
    assert labels.status_code == 200 and labels.headers["content-type"] == "application/pdf"

    # A pallet's manifest, uploaded as a file.
    manifest = "kind,manufacturer,model,quantity\ndesktop,HP,Compaq 6000,3\n"
    page = browser.get("/workshop/donations/new")
    done = browser.post(
        "/workshop/donations/new",
        data={
            "donor": "Azienda Rossi",
            "received_on": _today(),
            "consent_erase_reuse": "yes",
            "csrf_token": csrf_from(page.text),
        },
        files={"manifest_file": ("pallet.csv", manifest.encode(), "text/csv")},
    )
    assert done.status_code == 303, done.text
    assert console.db.count(Machine) == 5


def test_the_machine_page_takes_a_trainee_through_the_bench_steps(
    console: Console, browser: TestClient
) -> None:
    log_in(browser, "lead@example.org")
    _receive(browser, kind_0="laptop", serial_number_0="PB0ABCD")
    log_in(browser, "giulia@example.org")
    board = browser.get("/workshop")
    assert board.status_code == 200 and "Macchine per stato" in board.text
    (tag,) = _tags(console)
    assert f'href="/workshop/machines/{tag}"' in board.text  # recently moved

    # The search box goes straight to the machine when one matches.
    found = browser.get("/workshop/machines", params={"q": "pb0ab"})
    assert found.status_code == 303 and found.headers["location"] == f"/workshop/machines/{tag}"
    page = browser.get(f"/workshop/machines/{tag}")
    assert page.status_code == 200
    assert 'id="step-triaged"' in page.text and 'id="step-recycled"' not in page.text

    moved = post_form(
        browser,
        f"/workshop/machines/{tag}",
        f"/workshop/machines/{tag}/transition",
        {"to": "triaged"},
    )
    assert moved.status_code == 303
    page = browser.get(f"/workshop/machines/{tag}")
    assert "ora è: Valutata" in page.text and 'data-state="triaged"' in page.text

    # The diagnostics come from the technician's upload; the erasure from the trainee.
    uploaded = browser.post(
        f"/api/v1/workshop/machines/{tag}/diagnostics",
        json=good_report("PB0ABCD"),
        headers={"Authorization": f"Bearer {console.people['tech'].token}"},
    )
    assert uploaded.status_code == 200, uploaded.text
    post_form(
        browser,
        f"/workshop/machines/{tag}",
        f"/workshop/machines/{tag}/transition",
        {"to": "wiped"},
    )
    refused = post_form(
        browser,
        f"/workshop/machines/{tag}",
        f"/workshop/machines/{tag}/transition",
        {"to": "tested"},
    )
    assert refused.status_code == 409
    assert "Manca un certificato di cancellazione verificato" in refused.text
    assert "S21PNXAG123456" in refused.text

    bad = post_form(
        browser,
        f"/workshop/machines/{tag}",
        f"/workshop/machines/{tag}/erasure",
        {
            "disk_serial": "S21PNXAG123456",
            "method": "overwrite",
            "passes": "1",
            "verification": "passed",
            "started_at": "2026-01-10T10:00",
            "finished_at": "2026-01-10T09:00",
        },
    )
    assert bad.status_code == 422 and "la fine è prima dell'inizio" in html.unescape(bad.text)
    assert "<details open" in bad.text  # the form stays open with what was typed
    done = post_form(
        browser,
        f"/workshop/machines/{tag}",
        f"/workshop/machines/{tag}/erasure",
        {
            "disk_serial": "S21PNXAG123456",
            "method": "overwrite",
            "passes": "3",
            "verification": "passed",
            "started_at": "2026-01-10T09:00",
            "finished_at": "2026-01-10T10:30",
            "operator": "Giulia",
        },
    )
    assert done.status_code == 303, done.text
    with console.db.factory() as session:
        row = session.scalars(select(Erasure)).one()
        # The form's wall-clock time is the workshop's: 10:30 in Rome in January is 09:30 UTC.
        assert row.finished_at == dt.datetime(2026, 1, 10, 9, 30, tzinfo=dt.UTC)
        assert row.passes == 3
    for state in ("tested", "imaged"):
        moved = post_form(
            browser,
            f"/workshop/machines/{tag}",
            f"/workshop/machines/{tag}/transition",
            {"to": state},
        )
        assert moved.status_code == 303
    page = browser.get(f"/workshop/machines/{tag}")
    assert 'data-state="imaged"' in page.text and 'id="step-' not in page.text  # the lead's turn
    history = page.text[page.text.index('id="history"') :]
    assert history.count("Giulia") == 4


def test_deployment_shows_the_enrollment_file_once(console: Console, browser: TestClient) -> None:
    beneficiary = console.db.beneficiary("Rosa Conti")
    log_in(browser, "lead@example.org")
    _receive(browser, kind_0="laptop", serial_number_0="PB0ABCD")
    (tag,) = _tags(console)
    lead = {"Authorization": f"Bearer {console.people['lead'].token}"}
    api = f"/api/v1/workshop/machines/{tag}"
    browser.post(f"{api}/transitions", json={"to": "triaged"}, headers=lead)
    browser.post(f"{api}/diagnostics", json=good_report("PB0ABCD"), headers=lead)
    browser.post(f"{api}/transitions", json={"to": "wiped"}, headers=lead)
    erasure = {
        "disk_serial": "S21PNXAG123456",
        "method": "nvme_format",
        "verification": "passed",
        "started_at": "2026-01-10T09:00:00Z",
        "finished_at": "2026-01-10T09:10:00Z",
    }
    assert browser.post(f"{api}/erasures", json=erasure, headers=lead).status_code == 201
    for state in ("tested", "imaged", "quality_checked", "ready"):
        assert (
            browser.post(f"{api}/transitions", json={"to": state}, headers=lead).status_code == 200
        )

    page_path = f"/workshop/machines/{tag}"
    action = f"/workshop/machines/{tag}/transition"
    missing = post_form(browser, page_path, action, {"to": "deployed", "beneficiary_id": ""})
    assert missing.status_code == 422 and "indicare il beneficiario" in missing.text
    assert "Rosa Conti" in missing.text  # the choice is still offered
    deployed = post_form(
        browser, page_path, action, {"to": "deployed", "beneficiary_id": str(beneficiary)}
    )
    assert deployed.status_code == 200
    assert "difronte-enroll.txt" in deployed.text
    assert re.search(r"url=http://testserver\ntoken=\S+", deployed.text)
    page = browser.get(page_path)
    assert "token=" not in page.text  # never shown again
    assert "non ancora: il PC si registra da solo" in page.text
    again = post_form(browser, page_path, f"/workshop/machines/{tag}/enrollment", {})
    assert again.status_code == 200 and "token=" in again.text


def test_work_orders_hours_and_progress_pages(console: Console, browser: TestClient) -> None:
    trainee = console.people["trainee"]
    log_in(browser, "lead@example.org")
    created = post_form(
        browser,
        "/workshop/work",
        "/workshop/work",
        {"title": "Pulizia tastiere", "assignee_id": str(trainee.id), "skills": ["disassembly"]},
    )
    assert created.status_code == 303, created.text
    order_path = created.headers["location"]
    wrong = post_form(
        browser, "/workshop/work", "/workshop/work", {"title": "", "assignee_id": str(trainee.id)}
    )
    assert wrong.status_code == 422 and "scrivere in cosa consiste" in wrong.text

    log_in(browser, "marco@example.org")
    assert browser.get(order_path).status_code == 404  # not theirs
    log_in(browser, "giulia@example.org")
    page = browser.get(order_path)
    assert page.status_code == 200 and "Pulizia tastiere" in page.text
    assert 'value="disassembly" checked' in page.text
    too_much = post_form(
        browser, order_path, f"{order_path}/hours", {"worked_on": _today(), "hours": "1,1"}
    )
    assert too_much.status_code == 422 and "quarti d'ora" in html.unescape(too_much.text)
    logged = post_form(
        browser,
        order_path,
        f"{order_path}/hours",
        {"worked_on": _today(), "hours": "1,5", "skills": ["disassembly", "repair"]},
    )
    assert logged.status_code == 303
    submitted = post_form(browser, order_path, f"{order_path}/status", {"status": "submitted"})
    assert submitted.status_code == 303
    page = browser.get(order_path)
    assert 'data-status="submitted"' in page.text and "1,5 ore registrate" in page.text
    progress = browser.get("/workshop/me", follow_redirects=True)
    assert progress.status_code == 200
    assert "Smontaggio e pulizia" in progress.text and "Riparazione" in progress.text
    assert browser.get(f"/workshop/trainees/{console.people['trainee2'].id}").status_code == 404
    # Trainees have no impact report and no intake.
    assert browser.get("/workshop/impact").status_code == 403
    assert browser.get("/workshop/donations/new").status_code == 403


def test_impact_page_and_who_gets_in(console: Console, browser: TestClient) -> None:
    assert browser.get("/workshop").status_code == 303  # to the login page
    log_in(browser, "anna@example.org")
    assert browser.get("/workshop").status_code == 403
    log_in(browser, "lead@example.org")
    _receive(browser, kind_0="desktop", weight_kg_0="8", kind_1="laptop", weight_kg_1="2")
    page = browser.get("/workshop/impact")
    assert page.status_code == 200
    assert 'id="impact-chart"' in page.text and page.text.count('class="bar bar-') == 5
    received = re.search(r'data-figure="received"><span class="count">(\d+)<', page.text)
    assert received and received.group(1) == "2"
    assert "/api/v1/workshop/impact.csv?start=" in page.text
    bad = browser.get("/workshop/impact", params={"start": "2026-05-01", "end": "2026-04-01"})
    assert bad.status_code == 422 and "il periodo finisce prima di iniziare" in bad.text
    # Without the CSRF token a form is refused, whoever is logged in.
    assert browser.post("/workshop/work", data={"title": "x"}).status_code == 403
    css = browser.get("/workshop/assets/workshop.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
