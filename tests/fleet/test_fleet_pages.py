"""The fleet console pages through HTTP: health badges and filter, alerts, charts, twin,
revocation and enrollment tokens, in Italian and English."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane import alerts
from control_plane.db import migrate, transaction, utcnow
from control_plane.fleet.models import EnrollmentToken
from control_plane.models import Alert, Device, Role
from control_plane.twin import set_section
from edge import protocol as p
from tests.web.conftest import ConsoleHarness, build_app, csrf_from, login, recently


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet-console") / "console.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def harness(tmp_path: Path, template_db: Path) -> ConsoleHarness:
    path = tmp_path / "console.db"
    src, dst = sqlite3.connect(template_db), sqlite3.connect(path)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    url = f"sqlite:///{path}"
    return ConsoleHarness(
        url,
        build_app(
            url,
            public_url="http://cp.example.org:8000",
            # The rules run once at startup; after that, alerts the tests open stay as they are.
            alert_check_interval_s=3600,
        ),
    )


@pytest.fixture
def client(harness: ConsoleHarness) -> Iterator[TestClient]:
    harness.add_user("maria@example.org", Role.FLEET_MANAGER, name="Maria Rossi")
    harness.add_user("mario@example.org", Role.FLEET_MANAGER, name="Mario", locale="en")
    harness.add_device("casa-anna", name="Anna Bianchi", group="Lecce", last_seen=recently(3))
    harness.add_device("casa-bruno", name="Bruno Verdi", group="Bari", online=True,
                       last_seen=recently(0))  # fmt: skip
    with TestClient(harness.app, follow_redirects=False) as c:
        r = login(c, "maria@example.org")
        assert r.status_code == 303, r.text
        yield c


def open_alert(harness: ConsoleHarness, device_id: str, kind: str, message: str) -> int:
    with transaction(harness.factory) as session:
        alert, _ = alerts.raise_alert(
            session,
            key=f"{kind}:{device_id}",
            kind=kind,
            severity="warning",
            message=message,
            device_id=device_id,
        )
        return alert.id


def _row(html: str, device_id: str) -> str:
    match = re.search(rf'<tr id="device-{device_id}".*?</tr>', html, re.S)
    assert match, f"no row for {device_id}"
    return match.group(0)


def _ids(html: str) -> set[str]:
    return set(re.findall(r'<tr id="device-([a-z0-9-]+)"', html))


def test_health_badges_in_words_and_the_health_filter(
    client: TestClient, harness: ConsoleHarness
) -> None:
    open_alert(harness, "casa-anna", "disk_full", "disco pieno")
    open_alert(harness, "casa-anna", "offline", "spento")
    html = client.get("/fleet").text
    anna = _row(html, "casa-anna")
    assert "Disco quasi pieno" in anna and "Spento da troppo" in anna
    assert "Tutto bene" in _row(html, "casa-bruno")
    assert _ids(client.get("/fleet?health=attention").text) == {"casa-anna"}
    fine = client.get("/fleet?health=fine&group=Bari").text
    assert _ids(fine) == {"casa-bruno"}
    # The live region keeps the filter.
    assert 'data-live-src="/fleet/_rows?group=Bari&amp;health=fine"' in fine
    r = client.get("/fleet?health=sick")
    assert r.status_code == 400 and "salute:" in r.text
    assert 'href="/enrollment"' in html


def test_acknowledge_an_alert_from_the_device_page(
    client: TestClient, harness: ConsoleHarness
) -> None:
    alert_id = open_alert(harness, "casa-anna", "smart", "il disco segnala un guasto")
    page = client.get("/fleet/casa-anna")
    assert page.status_code == 200
    assert "Disco guasto" in page.text and "il disco segnala un guasto" in page.text
    action = f"/fleet/casa-anna/alerts/{alert_id}/ack"
    assert f'action="{action}"' in page.text
    # Without the form's token: refused, nothing changes.
    assert client.post(action, data={}).status_code == 403
    r = client.post(action, data={"csrf_token": csrf_from(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/fleet/casa-anna"
    after = client.get("/fleet/casa-anna").text
    assert "te ne occupi tu" in after and "qualcuno se ne occupa" in after
    assert f'action="{action}"' not in after  # acknowledged: no button any more
    with harness.factory() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.status == "acknowledged"
    wrong = client.post(
        f"/fleet/casa-bruno/alerts/{alert_id}/ack", data={"csrf_token": csrf_from(page.text)}
    )
    assert wrong.status_code == 404  # not this device's alert


def test_charts_over_selectable_ranges_with_gaps(
    client: TestClient, harness: ConsoleHarness
) -> None:
    now = p.now()
    topic = p.topic(p.TopicKind.TELEMETRY, "casa-bruno")
    # Six hours of one sample every 10 minutes, with the PC off for two hours in the middle.
    times = [now - 6 * 3600 + 600 * i for i in range(37) if not 12 <= i < 24]
    harness.app.state.ingest.handle_many(
        [
            (
                topic,
                p.encode(
                    p.TelemetryBatch(
                        ts=t,
                        seq=i + 1,
                        samples=[
                            p.Sample(
                                ts=t,
                                metrics={"cpu.percent": 10.0 + i, "temp.max_c": 40.0 + i % 5},
                            )
                        ],
                    )
                ),
            )
            for i, t in enumerate(times)
        ]
    )
    html = client.get("/fleet/casa-bruno").text  # the last 24 hours by default
    cpu = re.search(r'<figure class="chart" id="chart-cpu-percent">.*?</figure>', html, re.S)
    assert cpu, "no processor chart"
    chart = cpu.group(0)
    assert chart.count("<polyline") == 2  # the gap breaks the line
    assert 'role="img"' in chart and "Processore in uso" in chart
    assert "ora 34 %" in chart and "minimo 10 %" in chart and "massimo 34 %" in chart
    assert 'aria-current="true">ultime 24 ore' in html
    memory = re.search(r'id="chart-mem-used_pct">.*?</figure>', html, re.S)
    assert memory and "Nessuna misura in questo periodo." in memory.group(0)
    hour = client.get("/fleet/casa-bruno?range=1h").text
    assert 'aria-current="true">ultima ora' in hour
    hour_cpu = re.search(r'id="chart-cpu-percent">.*?</figure>', hour, re.S)
    assert hour_cpu and "minimo 29 %" in hour_cpu.group(0)  # only the last hour's samples
    r = client.get("/fleet/casa-bruno?range=1y")
    assert r.status_code == 400 and "periodo:" in r.text


def test_twin_desired_next_to_reported_and_alert_history(
    client: TestClient, harness: ConsoleHarness
) -> None:
    with transaction(harness.factory) as session:
        device = session.get(Device, "casa-bruno")
        assert device is not None
        set_section(session, device, "telemetry", {"interval_s": 300, "batch_max": 10})
        device.reported = {"desired_version": 0, "config": {"telemetry_interval_s": 60}}
    html = client.get("/fleet/casa-bruno").text
    assert "non ha ancora applicato" in html and "telemetry.interval_s" in html
    assert "config.telemetry_interval_s" in html
    harness.update_device("casa-bruno", reported={"desired_version": 1})
    assert (
        "ha applicato le impostazioni più recenti (versione 1)"
        in client.get("/fleet/casa-bruno").text
    )
    open_alert(harness, "casa-bruno", "rtc_drift", "orologio sbagliato")
    with transaction(harness.factory) as session:
        alerts.resolve(session, "rtc_drift:casa-bruno")
    html = client.get("/fleet/casa-bruno").text
    history = re.search(r'<table class="history">.*?</table>', html, re.S)
    assert history and "Batteria dell&#39;orologio" in history.group(0)
    assert "risolto" in history.group(0)
    assert "Nessun avviso aperto" in html


def test_revoking_asks_first_then_takes_the_pc_out(
    client: TestClient, harness: ConsoleHarness
) -> None:
    form = client.get("/fleet/casa-bruno/revoke")
    assert form.status_code == 200 and "Sì, metti casa-bruno fuori servizio" in form.text
    token = csrf_from(form.text)
    r = client.post("/fleet/casa-bruno/revoke", data={"csrf_token": token})
    assert r.status_code == 422 and "Spunta la casella" in r.text
    r = client.post("/fleet/casa-bruno/revoke", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 303
    page = client.get("/fleet/casa-bruno").text
    assert "casa-bruno è fuori servizio: non può più collegarsi." in page  # the flash
    assert "Questo PC è fuori servizio" in page and "/fleet/casa-bruno/revoke" not in page
    with harness.factory() as session:
        device = session.get(Device, "casa-bruno")
        assert device is not None and device.revoked_at is not None and device.online is False


def test_enrollment_tokens_from_the_console(client: TestClient, harness: ConsoleHarness) -> None:
    page = client.get("/enrollment")
    assert page.status_code == 200 and "Nessun codice in attesa." in page.text
    token = csrf_from(page.text)
    r = client.post(
        "/enrollment",
        data={"csrf_token": token, "device_id": "casa-carla", "name": "Carla", "validity": "1"},
    )
    assert r.status_code == 200, r.text
    secret = re.search(r'<code id="enroll-token">([^<]+)</code>', r.text)
    assert secret
    assert (
        f"difronte-edge enroll --url http://cp.example.org:8000 --token {secret.group(1)}" in r.text
    )
    # Typed on the PC (no console session there), it works (once).
    enrolled = TestClient(harness.app).post("/api/v1/enroll", json={"token": secret.group(1)})
    assert enrolled.status_code == 200 and enrolled.json()["device_id"] == "casa-carla"

    bad = client.post("/enrollment", data={"csrf_token": token, "device_id": "Casa Carla!"})
    assert bad.status_code == 422 and "lettere minuscole" in bad.text
    taken = client.post("/enrollment", data={"csrf_token": token, "device_id": "casa-anna"})
    assert taken.status_code == 422 and "già un PC con questo nome" in taken.text
    client.post("/enrollment", data={"csrf_token": token, "device_id": "casa-dora"})
    listing = client.get("/enrollment").text
    assert "casa-dora" in listing and "casa-carla" not in listing  # used tokens are gone
    with harness.factory() as session:
        token_id = session.execute(
            select(EnrollmentToken.id).where(EnrollmentToken.device_id == "casa-dora")
        ).scalar_one()
    r = client.post(f"/enrollment/{token_id}/withdraw", data={"csrf_token": token})
    assert r.status_code == 303
    assert "casa-dora" not in client.get("/enrollment").text.split("Codici non ancora usati")[1]
    assert (
        client.post(f"/enrollment/{token_id}/withdraw", data={"csrf_token": token}).status_code
        == 404
    )


def test_the_pages_in_english_and_closed_to_caregivers(harness: ConsoleHarness) -> None:
    harness.add_user("mario@example.org", Role.FLEET_MANAGER, name="Mario", locale="en")
    harness.add_user("anna@example.org", Role.CAREGIVER, name="Anna")
    harness.add_device("casa-anna", name="Anna Bianchi", last_seen=utcnow())
    # Opened before the app starts, so not one of the rules' kinds (they would resolve it).
    open_alert(harness, "casa-anna", "missed_wake", "non si è acceso")
    with TestClient(harness.app, follow_redirects=False) as c:
        login(c, "mario@example.org")
        assert "Did not wake up" in c.get("/fleet").text
        page = c.get("/fleet/casa-anna").text
        assert "Open alerts" in page and "Health over time" in page and "I am on it" in page
        assert "Add a PC to the fleet" in c.get("/enrollment").text
    with TestClient(harness.app, follow_redirects=False) as c:
        login(c, "anna@example.org")
        for path in ("/enrollment", "/fleet/casa-anna", "/fleet/casa-anna/revoke"):
            assert c.get(path).status_code == 403, path
