"""Who may do what, and bad input refused field by field with nothing stored half-way."""

from __future__ import annotations

import copy

from control_plane.workshop.models import DiagnosticsReport, Donation, Machine
from tests.workshop.workshop_support import WorkshopApi, good_report, problem


def test_roles_decide_who_does_what(ws: WorkshopApi) -> None:
    tag = ws.donate({"kind": "desktop"})["machines"][0]["asset_tag"]
    body = {"donor": "X", "consent_erase_reuse": True, "items": [{"kind": "laptop"}]}

    # Trainees: no intake, no diagnostics upload, no certificates or impact to hand out.
    assert problem(ws.call("POST", "/donations", "trainee", json=body), 403)
    report = good_report()
    assert problem(ws.call("POST", f"/machines/{tag}/diagnostics", "trainee", json=report), 403)
    assert problem(ws.call("GET", "/impact", "trainee"), 403)
    # ... and no skipping: a bench step only from the state right before it.
    ws.moved(tag, "triaged", who="trainee")
    assert problem(
        ws.move(tag, "recycled", "trainee", recycler="A", recycling_certificate_ref="B"), 403
    )
    # A technician may take any step, a caregiver has no business in the workshop at all.
    assert ws.call("POST", "/donations", "tech", json=body).status_code == 201
    assert problem(ws.call("GET", f"/machines/{tag}", "caregiver"), 403)
    assert problem(ws.client.get(f"/api/v1/workshop/machines/{tag}"), 401)


def test_bad_input_names_the_field_and_stores_nothing(ws: WorkshopApi) -> None:
    machines_before = ws.db.count(Machine)

    invalid = problem(
        ws.call(
            "POST",
            "/donations",
            json={"donor": "X", "consent_erase_reuse": True, "items": [{"weight_kg": -1}]},
        ),
        422,
    )
    assert invalid["errors"][0]["field"] == "items.0.weight_kg"
    no_consent = problem(ws.call("POST", "/donations", json={"donor": "X", "items": [{}]}), 422)
    assert no_consent["field"] == "consent_erase_reuse"
    assert "consenso" in no_consent["detail_it"]
    bad_manifest = problem(
        ws.call(
            "POST",
            "/donations",
            json={
                "donor": "X",
                "consent_erase_reuse": True,
                "manifest_csv": "kind,weight_kg\nlaptop,2\ntoaster,1\n",
            },
        ),
        422,
    )
    assert bad_manifest["field"] == "manifest line 3.kind"
    future = problem(
        ws.call(
            "POST",
            "/donations",
            json={
                "donor": "X",
                "consent_erase_reuse": True,
                "received_on": "2999-01-01",
                "items": [{}],
            },
        ),
        422,
    )
    assert future["field"] == "received_on"
    assert ws.db.count(Machine) == machines_before and ws.db.count(Donation) == 0

    # A serial already in the workshop: the whole donation is refused, tags are not spent.
    first = ws.donate({"kind": "laptop", "serial_number": "ABC123"})
    clash = problem(
        ws.call(
            "POST",
            "/donations",
            json={
                "donor": "Y",
                "consent_erase_reuse": True,
                "items": [{"serial_number": "NEW1"}, {"serial_number": "abc123"}],
            },
        ),
        409,
    )
    assert clash["field"] == "items[1].serial_number" and clash["code"] == "serial_in_use"
    assert ws.db.count(Machine) == 1
    second = ws.donate({"kind": "laptop"})
    assert second["machines"][0]["asset_tag"][-6:] == "000002"  # nothing skipped

    tag = first["machines"][0]["asset_tag"]
    url = f"/machines/{tag}/diagnostics"
    broken = copy.deepcopy(good_report(serial="ABC123"))
    broken["disks"][0]["smart"] = "fine"
    assert problem(ws.call("POST", url, json=broken), 422)["field"] == "disks[0].smart"
    assert problem(ws.call("POST", url, json={"v": 2}), 422)["field"] == "v"
    assert problem(ws.call("POST", url, json=[1, 2]), 422)
    # The report of another machine (a mistyped tag) is refused, unless told the serial
    # written at intake was the wrong one.
    other = problem(ws.call("POST", url, json=good_report(serial="ZZZ999")), 409)
    assert other["code"] == "serial_mismatch" and other["field"] == "system.serial"
    assert ws.db.count(DiagnosticsReport) == 0
    assert ws.ok("GET", f"/machines/{tag}")["diagnostics_at"] is None
    fixed = ws.ok("POST", url, params={"replace_serial": "true"}, json=good_report("ZZZ999"))
    assert fixed["serial_number"] == "ZZZ999"
    assert "workshop.machine.serial_replaced" in ws.db.audit_actions(tag)

    erasure = ws.erase(tag, "S1", method="overwrite", passes=None)
    assert problem(erasure, 422)["field"] == "passes"
    backwards = ws.erase(tag, "S1", started_at="2026-01-02T10:00:00+01:00",
                         finished_at="2026-01-01T10:00:00+01:00")  # fmt: skip
    assert problem(backwards, 422)["field"] == "finished_at"
    naive = ws.erase(tag, "S1", finished_at="2026-01-01T10:00:00")
    assert problem(naive, 422)["errors"][0]["field"] == "finished_at"
    assert problem(ws.erase(tag, "S1", method="magnets"), 422)["field"] == "method"
    assert ws.ok("GET", f"/machines/{tag}")["erasures"] == []

    assert problem(ws.move(tag, "flying"), 422)["field"] == "to"
    assert problem(ws.call("GET", "/machines/DF-1999-000001"), 404)["field"] == "asset_tag"
    assert problem(ws.call("GET", "/machines", params={"state": "lost"}), 422)["field"] == "state"
    assert (
        problem(
            ws.call("GET", "/impact", params={"start": "2026-02-01", "end": "2026-01-01"}), 422
        )["field"]
        == "end"
    )
