"""A donated laptop walked through the workshop's API, from intake to a home and the fleet."""

from __future__ import annotations

import re
import time
from typing import cast

import httpx

from edge import protocol as p
from edge.diagnostics import upload_report
from tests.workshop.pdf_helpers import link_uris, pdf_text
from tests.workshop.workshop_support import (
    DISK_SERIAL,
    WorkshopApi,
    good_report,
    problem,
)

TAG = re.compile(r"^DF-\d{4}-\d{6}$")


def _diagnose(ws: WorkshopApi, tag: str, report: dict[str, object], who: str = "tech") -> object:
    # The edge's own uploader, over the test client's transport: what
    # "difronte-edge diagnose --upload URL --token-file F" sends, byte for byte.
    url = f"http://testserver/api/v1/workshop/machines/{tag}/diagnostics"
    # TestClient is built on a fork of httpx and speaks httpx.Client's API.
    client = cast(httpx.Client, ws.client)
    return upload_report(report, url, token=ws.people[who].token, client=client)


def test_a_donated_laptop_goes_from_intake_to_a_home_and_joins_the_fleet(ws: WorkshopApi) -> None:
    donation = ws.donate(
        {
            "kind": "laptop",
            "manufacturer": "Lenovo",
            "model": "ThinkPad T440",
            "serial_number": "PB0ABCD",
            "weight_kg": 2.1,
        },
        donor="Studio Bianchi",
    )
    machine = donation["machines"][0]
    tag = machine["asset_tag"]
    assert TAG.match(tag) and tag.endswith("-000001")
    assert machine["state"] == "received"

    # Its label: the tag and a QR code (a link) that opens its page in the console.
    label = ws.client.get(
        f"/api/v1/workshop/machines/{tag}/label.pdf", headers=ws.people["trainee"].headers
    )
    assert label.status_code == 200 and label.headers["content-type"] == "application/pdf"
    assert tag in pdf_text(label.content)
    assert link_uris(label.content) == [f"https://cp.example.org/workshop/machines/{tag}"]

    # A trainee does the bench steps; the technician uploads the diagnostics report.
    ws.moved(tag, "triaged", who="trainee")
    answer = _diagnose(ws, tag, good_report(serial="PB0ABCD"))
    assert isinstance(answer, dict)
    assert answer["suitable_for_telecare"] is True
    assert answer["disks_needing_certificate"] == [DISK_SERIAL]  # not the live USB stick
    ws.moved(tag, "wiped", who="trainee")

    # Not past "wiped" without a verified certificate for every disk the diagnostics found.
    refused = problem(ws.move(tag, "tested", who="trainee"), 409)
    assert refused["code"] == "certificate_missing" and refused["field"] == "to"
    assert DISK_SERIAL in refused["detail"] and DISK_SERIAL in refused["detail_it"]
    assert "certificato" in refused["detail_it"]
    failed = ws.erase(tag, DISK_SERIAL.lower(), who="trainee", verification="failed")
    assert failed.status_code == 201, failed.text
    # The diagnostics' spelling of the serial wins over the one typed.
    assert failed.json()["disk_serial"] == DISK_SERIAL
    assert failed.json()["disk_model"] == "Samsung SSD 850 EVO 250GB"
    assert problem(ws.move(tag, "tested", who="trainee"), 409)["code"] == "certificate_missing"
    passed = ws.erase(tag, DISK_SERIAL, who="trainee")
    assert passed.status_code == 201, passed.text
    assert passed.json()["operator"] == "Giulia"  # whoever recorded it, by default
    ws.moved(tag, "tested", "imaged", who="trainee")

    # Quality check and the way out are the supervisors' call.
    assert problem(ws.move(tag, "quality_checked", who="trainee"), 403)["field"] == "to"
    ws.moved(tag, "quality_checked", "ready")

    beneficiary = ws.db.beneficiary("Maria Rossi")
    missing = problem(ws.move(tag, "deployed"), 422)
    assert missing["code"] == "beneficiary_required" and missing["field"] == "beneficiary_id"
    assert problem(ws.move(tag, "deployed", beneficiary_id=999_999), 422)["field"] == (
        "beneficiary_id"
    )
    deployed = ws.moved(tag, "deployed", beneficiary_id=beneficiary, notes="consegnato a casa")
    device_id = tag.lower()
    assert deployed["machine"]["state"] == "deployed"
    assert deployed["transition"]["details"] == {
        "beneficiary_id": str(beneficiary),
        "device_id": device_id,
    }
    enrollment = deployed["enrollment"]
    assert enrollment["device_id"] == device_id
    assert enrollment["file"] == f"url=https://cp.example.org\ntoken={enrollment['token']}\n"
    # Deployed is the end of the road in the workshop.
    assert problem(ws.move(tag, "sold", buyer="Someone"), 409)["code"] == "terminal_state"

    # The PC is not a fleet device until it enrolls itself on its first boot at home.
    admin = ws.people["admin"].headers
    assert ws.client.get(f"/api/v1/devices/{device_id}", headers=admin).status_code == 404
    assert ws.db.beneficiary_device(beneficiary) is None
    enrolled = ws.client.post("/api/v1/enroll", json={"token": enrollment["token"]})
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["device_id"] == device_id
    # Its first birth message, through the control plane's real ingest path, links it.
    ws.client.app.state.ingest.handle(  # type: ignore[attr-defined]
        p.topic(p.TopicKind.STATUS, device_id),
        p.encode(p.Status(ts=time.time(), online=True, session=1, boot_reason="power")),
    )
    assert ws.db.beneficiary_device(beneficiary) == device_id
    device = ws.client.get(f"/api/v1/devices/{device_id}", headers=admin).json()
    assert device["online"] is True and device["group"] == "homes"
    assert device["name"] == f"Maria Rossi ({tag})"
    detail = ws.ok("GET", f"/machines/{tag}", "trainee")
    assert detail["device_linked"] is True and detail["beneficiary_id"] == beneficiary
    assert detail["allowed_targets"] == []

    # The whole journey, with who did each step.
    assert [(h["from_state"], h["to_state"], h["actor"]) for h in detail["history"]] == [
        (None, "received", "Lead"),
        ("received", "triaged", "Giulia"),
        ("triaged", "wiped", "Giulia"),
        ("wiped", "tested", "Giulia"),
        ("tested", "imaged", "Giulia"),
        ("imaged", "quality_checked", "Lead"),
        ("quality_checked", "ready", "Lead"),
        ("ready", "deployed", "Lead"),
    ]
    assert detail["history"][-1]["notes"] == "consegnato a casa"
    actions = ws.db.audit_actions(tag)
    assert actions.count("workshop.machine.transition") == 7
    assert actions.count("workshop.erasure.recorded") == 2
    assert "workshop.machine.diagnostics" in actions and actions[-1] == "workshop.machine.linked"

    # The erasure certificate, tied to the machine's serial; the failed attempt is history.
    cert = ws.client.get(f"/api/v1/workshop/machines/{tag}/certificate.pdf", headers=admin)
    assert cert.status_code == 200, cert.text
    text = pdf_text(cert.content)
    for expected in (
        "Certificato di cancellazione dei dati",
        "Data erasure certificate",
        tag,
        "PB0ABCD",
        DISK_SERIAL,
        "Studio Bianchi",
        "Giulia",
        "Tutti i dischi sono stati cancellati",
    ):
        assert expected in text, expected
    assert "Non superata" not in text
    summary = ws.client.get(
        f"/api/v1/workshop/donations/{donation['id']}/erasure-summary.pdf", headers=admin
    )
    assert summary.status_code == 200, summary.text
    summary_text = pdf_text(summary.content)
    assert donation["reference"] in summary_text and DISK_SERIAL in summary_text
    assert "PB0ABCD" in summary_text
