"""Work orders and hours, a trainee's progress, and the impact report against the records."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

from tests.workshop.pdf_helpers import pdf_text
from tests.workshop.workshop_support import WorkshopApi, good_report, problem


def _today() -> dt.date:
    return dt.datetime.now(ZoneInfo("Europe/Rome")).date()


def test_trainees_log_their_work_and_leads_sign_it_off(ws: WorkshopApi) -> None:
    tag = ws.donate({"kind": "laptop"})["machines"][0]["asset_tag"]
    trainee, trainee2 = ws.people["trainee"], ws.people["trainee2"]
    order = {
        "title": "Smonta e pulisci",
        "assignee_id": trainee.id,
        "asset_tag": tag.lower(),
        "skills": ["disassembly", "data_erasure"],
    }
    assert problem(ws.call("POST", "/work-orders", "trainee", json=order), 403)
    not_trainee = {**order, "assignee_id": ws.people["tech"].id}
    assert problem(ws.call("POST", "/work-orders", json=not_trainee), 422)["field"] == "assignee_id"
    bad_skill = {**order, "skills": ["juggling"]}
    assert problem(ws.call("POST", "/work-orders", json=bad_skill), 422)["field"] == "skills[0]"
    created = ws.ok("POST", "/work-orders", json=order, status=201)
    assert created["asset_tag"] == tag and created["status"] == "open"
    assert created["supervisor_id"] == ws.people["lead"].id
    oid = created["id"]

    # A trainee sees only their own work; someone else's does not even exist for them.
    assert ws.ok("GET", "/work-orders", "trainee")["total"] == 1
    assert ws.ok("GET", "/work-orders", "trainee2")["total"] == 0
    assert ws.ok("GET", "/work-orders", "tech")["total"] == 1
    assert problem(ws.call("GET", f"/work-orders/{oid}", "trainee2"), 404)
    today = _today().isoformat()
    hours = {"worked_on": today, "hours": 2.5}
    assert problem(ws.call("POST", f"/work-orders/{oid}/hours", "trainee2", json=hours), 404)

    for wrong, field in (
        ({"hours": 0.1}, "hours"),
        ({"hours": 13}, "hours"),
        ({"worked_on": (_today() + dt.timedelta(days=2)).isoformat()}, "worked_on"),
        ({"skills": ["juggling"]}, "skills[0]"),
    ):
        body = {**hours, **wrong}
        refused = problem(ws.call("POST", f"/work-orders/{oid}/hours", "trainee", json=body), 422)
        assert refused["field"] == field, refused
    entry = ws.ok("POST", f"/work-orders/{oid}/hours", "trainee", json=hours, status=201)
    assert entry["person_id"] == trainee.id and entry["skills"] == ["disassembly", "data_erasure"]
    assert ws.ok("GET", f"/work-orders/{oid}", "trainee")["status"] == "in_progress"
    # A lead may log time for the trainee too (a forgotten day).
    yesterday = (_today() - dt.timedelta(days=1)).isoformat()
    on_behalf = {"worked_on": yesterday, "hours": 1, "skills": ["repair"], "person_id": trainee.id}
    ws.ok("POST", f"/work-orders/{oid}/hours", json=on_behalf, status=201)
    assert problem(
        ws.call(
            "POST",
            f"/work-orders/{oid}/hours",
            "trainee",
            json={**on_behalf, "person_id": trainee2.id},
        ),
        403,
    )

    ws.ok("PATCH", f"/work-orders/{oid}", "trainee", json={"status": "submitted"})
    assert problem(ws.call("PATCH", f"/work-orders/{oid}", "trainee", json={"status": "done"}), 409)
    done = ws.ok(
        "PATCH", f"/work-orders/{oid}", json={"status": "done", "review_notes": "Ottimo lavoro"}
    )
    assert done["status"] == "done" and done["completed_at"] and done["hours_logged"] == 3.5
    closed = ws.call("POST", f"/work-orders/{oid}/hours", "trainee", json=hours)
    assert problem(closed, 409)["field"] == "work_order_id"

    progress = ws.ok("GET", f"/trainees/{trainee.id}/progress", "trainee")
    assert progress["total_hours"] == 3.5 and progress["days_worked"] == 2
    assert progress["hours_by_skill"] == {"disassembly": 2.5, "data_erasure": 2.5, "repair": 1.0}
    assert progress["work_orders_by_status"]["done"] == 1 and progress["machines"] == [tag]
    assert problem(ws.call("GET", f"/trainees/{trainee.id}/progress", "trainee2"), 404)
    assert ws.ok("GET", f"/trainees/{trainee.id}/progress", "lead")["total_hours"] == 3.5
    actions = ws.db.audit_actions(str(oid))
    assert actions.count("workshop.hours.logged") == 2
    assert actions.count("workshop.work_order.status") == 2


def test_the_impact_report_adds_up_the_records(ws: WorkshopApi) -> None:
    donation = ws.donate(
        {"kind": "laptop", "serial_number": "L1", "weight_kg": 2.0},
        {"kind": "desktop", "serial_number": "D1", "weight_kg": 3.5},
        {"kind": "monitor"},
    )
    laptop, desktop, _monitor = (m["asset_tag"] for m in donation["machines"])
    ws.moved(laptop, "triaged")
    ws.ok(
        "POST", f"/machines/{laptop}/diagnostics", json=good_report(serial="L1", disk_serial="D-L1")
    )
    ws.moved(laptop, "wiped")
    assert ws.erase(laptop, "D-L1").status_code == 201
    beneficiary = ws.db.beneficiary("Lucia Neri")
    ws.moved(laptop, "tested", "imaged", "quality_checked", "ready")
    ws.moved(laptop, "deployed", beneficiary_id=beneficiary)
    ws.moved(desktop, "recycled", recycler="RAEE", recycling_certificate_ref="R-1")
    for who, hours in (("trainee", 2.5), ("trainee2", 1.0)):
        order = ws.ok(
            "POST",
            "/work-orders",
            json={"title": "Triage", "assignee_id": ws.people[who].id, "asset_tag": laptop},
            status=201,
        )
        ws.ok(
            "POST",
            f"/work-orders/{order['id']}/hours",
            who,
            json={"worked_on": _today().isoformat(), "hours": hours},
            status=201,
        )

    # Around today, so the test does not care which side of midnight it runs on.
    period = {
        "start": (_today() - dt.timedelta(days=1)).isoformat(),
        "end": (_today() + dt.timedelta(days=1)).isoformat(),
    }
    figures = ws.ok("GET", "/impact", "tech", params=period)
    expected = {
        "received": 3,
        "wiped": 1,
        "reused": 1,
        "deployed": 1,
        "sold": 0,
        "donated_on": 0,
        "recycled": 1,
        "in_service_at_end": 1,
        "hours_worked": 3.5,
        "people": 2,
        "kg_kept_out_of_waste": 2.0,
        "kg_recycled": 3.5,
        "machines_without_weight": 0,
    }
    assert {k: figures[k] for k in expected} == expected
    # A period before any of it: nothing.
    empty = ws.ok("GET", "/impact", params={"start": "2020-01-01", "end": "2020-12-31"})
    assert empty["received"] == 0 and empty["hours_worked"] == 0

    as_csv = ws.call("GET", "/impact.csv", params=period)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = {r["metric"]: r["value"] for r in csv.DictReader(io.StringIO(as_csv.text))}
    assert rows["received"] == "3" and rows["kg_kept_out_of_waste"] == "2"
    assert rows["hours_worked"] == "3.5" and rows["period_start"] == period["start"]
    as_pdf = ws.call("GET", "/impact.pdf", params=period)
    assert as_pdf.status_code == 200, as_pdf.text
    text = pdf_text(as_pdf.content)
    assert "Rapporto di impatto" in text and "Impact report" in text
    assert "Kg sottratti ai rifiuti" in text and "2,0 kg" in text and "3,5 h" in text
