"""A pallet through the workshop's API, and a machine without a camera to recycling."""

from __future__ import annotations

from typing import cast

import httpx

from edge.diagnostics import upload_report
from tests.workshop.pdf_helpers import link_uris
from tests.workshop.workshop_support import (
    WorkshopApi,
    problem,
    report_without_camera,
)


def _diagnose(ws: WorkshopApi, tag: str, report: dict[str, object], who: str = "tech") -> object:
    # The edge's own uploader, over the test client's transport: what
    # "difronte-edge diagnose --upload URL --token-file F" sends, byte for byte.
    url = f"http://testserver/api/v1/workshop/machines/{tag}/diagnostics"
    # TestClient is built on a fork of httpx and speaks httpx.Client's API.
    client = cast(httpx.Client, ws.client)
    return upload_report(report, url, token=ws.people[who].token, client=client)


def test_a_pallet_comes_in_and_a_machine_without_a_camera_goes_to_recycling(
    ws: WorkshopApi,
) -> None:
    manifest = (
        "kind;manufacturer;model;serial_number;weight_kg;quantity\n"
        "laptop;Dell;Latitude E6400;DL123;2,5;\n"
        "desktop;HP;Compaq 6000;;8;2\n"
    )
    donation = ws.donate(manifest_csv=manifest, items=[])
    tags = [m["asset_tag"] for m in donation["machines"]]
    assert [t[-6:] for t in tags] == ["000001", "000002", "000003"]
    assert [m["weight_kg"] for m in donation["machines"]] == [2.5, 8.0, 8.0]
    labels = ws.client.get(
        f"/api/v1/workshop/donations/{donation['id']}/labels.pdf",
        headers=ws.people["trainee"].headers,
    )
    assert labels.status_code == 200
    assert link_uris(labels.content) == [
        f"https://cp.example.org/workshop/machines/{t}" for t in tags
    ]

    dell, hp, _ = tags
    ws.moved(dell, "triaged")
    answer = _diagnose(ws, dell, report_without_camera("DL123", "WD-WCC4M0"))
    assert isinstance(answer, dict)
    assert answer["suitable_for_telecare"] is False
    blocker = answer["blockers"][0]
    assert blocker["code"] == "no_camera" and "webcam" in blocker["fix_it"].lower()
    ws.moved(dell, "wiped")
    assert ws.erase(dell, "WD-WCC4M0").status_code == 201
    ws.moved(dell, "tested", "imaged", "quality_checked", "ready")
    beneficiary = ws.db.beneficiary("Giovanni Verdi")
    refused = problem(ws.move(dell, "deployed", beneficiary_id=beneficiary), 409)
    assert refused["code"] == "telecare_blockers" and "no_camera" in refused["detail"]

    # Recycling needs the recycler and its certificate reference, named field by field.
    no_ref = problem(ws.move(dell, "recycled", recycler="RAEE Lazio srl"), 422)
    assert no_ref["field"] == "recycling_certificate_ref"
    assert ws.ok("GET", f"/machines/{dell}")["state"] == "ready"  # nothing moved
    done = ws.moved(dell, "recycled", recycler="RAEE Lazio srl", recycling_certificate_ref="R-88")
    assert done["transition"]["details"] == {
        "recycler": "RAEE Lazio srl",
        "recycling_certificate_ref": "R-88",
    }
    assert done["machine"]["allowed_targets"] == []

    # A machine can go to recycling straight from intake too.
    ws.moved(hp, "recycled", recycler="RAEE Lazio srl", recycling_certificate_ref="R-89")
    board = ws.ok("GET", "/board", "trainee")
    assert board["recycled"] == 2 and board["received"] == 1 and board["deployed"] == 0
    found = ws.ok("GET", "/machines", "trainee", params={"q": "dl12"})
    assert [m["asset_tag"] for m in found["items"]] == [dell]
    found = ws.ok("GET", "/machines", "trainee", params={"state": "recycled"})
    assert sorted(m["asset_tag"] for m in found["items"]) == sorted([dell, hp])
