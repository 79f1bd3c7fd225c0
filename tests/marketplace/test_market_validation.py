"""Bad input on every form: a clear message per field, and nothing saved half-way.
Also who may do what: each route checks the person and the object."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.marketplace.models import (
    Category,
    Good,
    Media,
    Quote,
    Review,
    SearchDoc,
    ServiceRequest,
    StockItem,
    WorkerProfile,
)
from control_plane.models import Role
from tests.marketplace.conftest import (
    Catalogue,
    Market,
    Person,
    add_worker,
    in_days,
    png_bytes,
    seed_catalogue,
)


def _fields(response: Any, status: int = 422) -> set[str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    return {e["field"] for e in body["errors"]}


@pytest.fixture(scope="module")
def world(module_market: Market) -> tuple[Market, Catalogue, Person, int]:
    """One app per database for this module: each test uses its own people and requests, and
    counts rows relative to what was there before."""
    market = module_market
    cat = seed_catalogue(market)
    worker, worker_id = add_worker(
        market,
        "giulia@example.org",
        name="Giulia",
        kind="artisan",
        skills=[cat["Imbiancatura"]],
        areas=["Milano"],
    )
    return market, cat, worker, worker_id


def _request_body(cat: Catalogue, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "category_id": cat["Imbiancatura"],
        "description": "Imbiancare la cucina, due pareti.",
        "date_kind": "exact",
        "exact_date": in_days(3),
        "area": "Milano",
        "goods": [{"kind": "furniture", "title": "Tavolo"}],
    }
    body.update(overrides)
    return body


def test_catalogue_and_worker_forms(world: tuple[Market, Catalogue, Person, int]) -> None:
    m, cat, _, _ = world
    boss = m.people["boss@example.org"]
    before = (m.count(Category), m.count(SearchDoc), m.count(WorkerProfile))

    r = m.post("/categories", boss, {"name": " ", "name_en": "x" * 200, "position": -1})
    assert _fields(r) == {"name", "name_en", "position"}
    r = m.post("/categories", boss, {"name": "Cantine", "parent_id": 999})
    assert _fields(r) == {"parent_id"}
    r = m.post("/categories", boss, {"name": "Tinteggio", "parent_id": cat["Imbiancatura"]})
    assert _fields(r) == {"parent_id"}  # no services inside services
    r = m.post("/categories", boss, {"name": "pittura"})
    assert _fields(r, 409) == {"name"}

    plain = m.person("piero@example.org", Role.CLIENT)
    newcomer = m.person("nina@example.org", Role.WORKER)
    good = {
        "user_id": newcomer.id,
        "kind": "volunteer",
        "display_name": "Nina",
        "skills": [cat["Idraulica"]],
        "areas": ["Milano"],
    }
    r = m.post("/workers", boss, {**good, "kind": "astronaut", "skills": [], "areas": ["x"]})
    assert _fields(r) == {"kind", "skills", "areas"}
    r = m.post("/workers", boss, {**good, "availability": {"someday": ["morning"]}})
    assert _fields(r) == {"availability.someday.[key]"}
    r = m.post("/workers", boss, {**good, "availability": {"mon": ["midnight"]}})
    assert _fields(r) == {"availability.mon.0"}
    r = m.post("/workers", boss, {**good, "skills": [cat["Pittura"]]})
    assert _fields(r) == {"skills"}  # a category, not a service
    r = m.post("/workers", boss, {**good, "user_id": plain.id})
    assert _fields(r) == {"user_id"}  # not a worker
    r = m.post("/workers", boss, {**good, "photo_id": 12345})
    assert _fields(r) == {"photo_id"}
    assert (m.count(Category), m.count(SearchDoc), m.count(WorkerProfile)) == before
    # A worker may create their own profile, once.
    m.ok(m.post("/workers", newcomer, {**good, "user_id": None}), 201)
    assert _fields(m.post("/workers", newcomer, {**good, "user_id": None}), 409) == {"user_id"}
    # A client cannot create or edit profiles.
    assert m.post("/workers", plain, good).status_code == 403
    assert m.post("/categories", plain, {"name": "Nuova"}).status_code == 403


def test_request_form(world: tuple[Market, Catalogue, Person, int]) -> None:
    m, cat, _, _ = world
    anna = m.people["anna@example.org"]
    bruno = m.person("bruno.r@example.org", Role.CLIENT)
    brunos_photo = m.upload(bruno)
    before = (m.count(ServiceRequest), m.count(Good))

    # Shape errors, all reported together.
    r = m.post(
        "/requests",
        anna,
        {
            "category_id": "imbiancatura",
            "description": "corta",
            "date_kind": "someday",
            "exact_date": "31/02/2030",
            "goods": [{"kind": "car", "title": ""}],
        },
    )
    assert _fields(r) == {
        "category_id",
        "description",
        "date_kind",
        "exact_date",
        "area",
        "goods.0.kind",
        "goods.0.title",
    }
    # Meaning errors, all reported together, each naming its field.
    r = m.post(
        "/requests",
        anna,
        _request_body(
            cat,
            category_id=cat["Pittura"],
            exact_date=in_days(-1),
            photo_ids=[brunos_photo],
            goods=[{"kind": "furniture", "title": "Tavolo", "photo_ids": [424242]}],
        ),
    )
    assert _fields(r) == {"category_id", "exact_date", "photo_ids", "goods.0.photo_ids"}
    detail = r.json()["detail"]
    assert "is a category: choose one of its services" in detail
    assert "the date is in the past" in detail
    r = m.post(
        "/requests",
        anna,
        _request_body(cat, date_kind="window", window_start=in_days(9), window_end=in_days(2)),
    )
    assert _fields(r) == {"window_end"}
    r = m.post("/requests", anna, _request_body(cat, date_kind="window"))
    assert _fields(r) == {"window_start", "window_end"}
    own = m.upload(anna)
    r = m.post(
        "/requests",
        anna,
        _request_body(
            cat, photo_ids=[own], goods=[{"kind": "books", "title": "Libri", "photo_ids": [own]}]
        ),
    )
    assert _fields(r) == {"photo_ids"}  # the same photo twice
    # Nothing saved, and the photos are still free to use.
    assert (m.count(ServiceRequest), m.count(Good)) == before
    with m.factory() as session:
        for media_id in (own, brunos_photo):
            media = session.get(Media, media_id)
            assert media is not None and media.attached_to == ""

    # Only clients ask for quotes; nobody anonymous.
    worker = m.people["giulia@example.org"]
    assert m.post("/requests", worker, _request_body(cat)).status_code == 403
    assert m.client.post("/api/v1/market/requests", json=_request_body(cat)).status_code == 401


def _quoted_request(m: Market, cat: Catalogue, worker_id: int) -> tuple[int, list[int]]:
    anna, boss = m.people["anna@example.org"], m.people["boss@example.org"]
    body = _request_body(
        cat,
        goods=[{"kind": "furniture", "title": "Tavolo"}, {"kind": "clothes", "title": "Giacca"}],
    )
    req = m.ok(m.post("/requests", anna, body), 201)
    m.ok(m.post(f"/requests/{req['id']}/assign", boss, {"worker_id": worker_id}))
    return req["id"], [g["id"] for g in req["goods"]]


def test_quote_form(world: tuple[Market, Catalogue, Person, int]) -> None:
    m, cat, _, worker_id = world
    boss = m.people["boss@example.org"]
    rid, (table, jacket) = _quoted_request(m, cat, worker_id)
    quotes = m.count(Quote)

    r = m.post(f"/requests/{rid}/quote", boss, {"price_cents": -5, "date": "tomorrow"})
    assert _fields(r) == {"price_cents", "date"}
    # One valid assessment, one incomplete, one good forgotten, a past date: nothing applied.
    r = m.post(
        f"/requests/{rid}/quote",
        boss,
        {
            "price_cents": 10000,
            "date": in_days(-2),
            "assessments": [
                {"good_id": table, "accepted": True, "value_cents": 3000},
                {"good_id": 999, "accepted": False},
            ],
        },
    )
    assert _fields(r) == {
        "date",
        "assessments.1.good_id",
        "assessments.1.reason",
        "assessments",
    }
    assert "assess every offered good first: Giacca" in r.json()["detail"]
    r = m.post(
        f"/requests/{rid}/quote",
        boss,
        {
            "price_cents": 10000,
            "date": in_days(4),
            "assessments": [
                {"good_id": table, "accepted": True},
                {"good_id": jacket, "accepted": False, "reason": " "},
            ],
        },
    )
    assert _fields(r) == {"assessments.0.value_cents", "assessments.1.reason"}
    seen = m.ok(m.get(f"/requests/{rid}", boss))
    assert seen["status"] == "assigned" and seen["quote"] is None
    assert {g["status"] for g in seen["goods"]} == {"offered"}
    assert m.count(Quote) == quotes

    # Goods are assessed separately too; then a quote needs no assessments. Goods worth more
    # than the job pay for all of it, never more.
    r = m.post(f"/requests/{rid}/goods/assess", boss, {"assessments": []})
    assert _fields(r) == {"assessments"}
    m.ok(
        m.post(
            f"/requests/{rid}/goods/assess",
            boss,
            {
                "assessments": [
                    {"good_id": table, "accepted": True, "value_cents": 15000},
                    {"good_id": jacket, "accepted": False, "reason": "usurata"},
                ]
            },
        )
    )
    quote = m.ok(m.post(f"/requests/{rid}/quote", boss, {"price_cents": 10000, "date": in_days(4)}))
    assert (quote["quote"]["credit_cents"], quote["quote"]["due_cents"]) == (10000, 0)
    # A new quote replaces the pending one.
    again = m.ok(m.post(f"/requests/{rid}/quote", boss, {"price_cents": 20000, "date": in_days(6)}))
    assert again["quote"]["due_cents"] == 5000 and m.count(Quote) == quotes + 2


def test_decisions_and_permissions(world: tuple[Market, Catalogue, Person, int]) -> None:
    m, cat, worker, worker_id = world
    boss, anna = m.people["boss@example.org"], m.people["anna@example.org"]
    bruno = m.person("bruno.d@example.org", Role.CLIENT)
    rid, goods = _quoted_request(m, cat, worker_id)

    # Strangers see nothing; clients cannot administer; workers see only their jobs.
    assert m.get(f"/requests/{rid}", bruno).status_code == 403
    assert m.ok(m.get("/requests", bruno))["items"] == []
    assert m.get(f"/requests/{rid}/candidates", anna).status_code == 403
    assert m.post(f"/requests/{rid}/assign", anna, {"worker_id": worker_id}).status_code == 403
    assert m.get("/stock", anna).status_code == 403
    other_worker, _ = add_worker(
        m,
        "ugo@example.org",
        name="Ugo",
        kind="factotum",
        skills=[cat["Idraulica"]],
        areas=["Varese"],
    )
    assert m.get(f"/requests/{rid}", other_worker).status_code == 403
    assert m.ok(m.get("/requests", other_worker))["items"] == []
    assert m.post(f"/requests/{rid}/assign", boss, {"worker_id": 999}).status_code == 404

    # Actions out of turn are refused with the reason, and change nothing.
    r = m.post(f"/requests/{rid}/accept", anna)
    assert r.status_code == 409 and "cannot accept a request that is assigned" in r.text
    assess = [{"good_id": g, "accepted": False, "reason": "no"} for g in goods]
    m.ok(
        m.post(
            f"/requests/{rid}/quote",
            boss,
            {"price_cents": 100, "date": in_days(2), "assessments": assess},
        )
    )
    assert m.post(f"/requests/{rid}/accept", boss).status_code == 403  # not the client
    assert m.post(f"/requests/{rid}/accept", bruno).status_code == 403
    assert m.post(f"/requests/{rid}/complete", worker).status_code == 409
    r = m.post(f"/requests/{rid}/decline", anna, {"reason": "x" * 600})
    assert _fields(r) == {"reason"}
    declined = m.ok(m.post(f"/requests/{rid}/decline", anna, {"reason": "troppo caro"}))
    assert declined["status"] == "declined" and declined["quote"]["decline_reason"] == "troppo caro"
    # After a decline: a new quote, or closing; the client may cancel.
    cancelled = m.ok(m.post(f"/requests/{rid}/cancel", anna, {"reason": "fatto da me"}))
    assert cancelled["status"] == "canceled"
    assert m.post(f"/requests/{rid}/cancel", anna, {}).status_code == 409


def test_review_and_moderation_forms(world: tuple[Market, Catalogue, Person, int]) -> None:
    m, cat, worker, worker_id = world
    boss, anna = m.people["boss@example.org"], m.people["anna@example.org"]
    rid, goods = _quoted_request(m, cat, worker_id)
    assess = [{"good_id": g, "accepted": False, "reason": "no"} for g in goods]
    m.ok(
        m.post(
            f"/requests/{rid}/quote",
            boss,
            {"price_cents": 100, "date": in_days(2), "assessments": assess},
        )
    )
    m.ok(m.post(f"/requests/{rid}/accept", anna))
    m.ok(m.post(f"/requests/{rid}/complete", worker))

    reviews = m.count(Review)
    for stars in (0, 6, "five", None):
        assert _fields(m.post(f"/requests/{rid}/review", anna, {"stars": stars})) == {"stars"}
    r = m.post(f"/requests/{rid}/review", anna, {"stars": 5, "comment": "x" * 2001})
    assert _fields(r) == {"comment"}
    assert m.count(Review) == reviews
    review = m.ok(m.post(f"/requests/{rid}/review", anna, {"stars": 2}), 201)
    assert _fields(m.post(f"/reviews/{review['id']}/hide", boss, {"reason": "  "})) == {"reason"}
    assert m.post("/reviews/999/hide", boss, {"reason": "spam"}).status_code == 404
    page = m.ok(m.get(f"/workers/{worker_id}"))
    assert page["rating_average"] == 2.0


def test_photo_and_stock_forms(world: tuple[Market, Catalogue, Person, int]) -> None:
    m, _, _, _ = world
    anna, boss = m.people["anna@example.org"], m.people["boss@example.org"]
    media, stock = m.count(Media), m.count(StockItem)
    files = sorted(m.media_dir.rglob("*"))
    upload = "/api/v1/market/media"
    for data in (b"", b"MZ\x90\x00 not a photo", b"<svg xmlns='http://www.w3.org/2000/svg'/>"):
        r = m.client.post(
            upload, files={"file": ("x.png", data, "image/png")}, headers=anna.headers
        )
        assert _fields(r) == {"file"}
    big = png_bytes() + b"\x00" * (5 * 1024 * 1024)
    r = m.client.post(upload, files={"file": ("big.png", big, "image/png")}, headers=anna.headers)
    assert _fields(r) == {"file"} and "larger than" in r.json()["detail"]
    assert _fields(m.client.post(upload, headers=anna.headers)) == {"file"}
    assert m.count(Media) == media
    assert sorted(m.media_dir.rglob("*")) == files

    r = m.post("/stock", boss, {"source": "workshop", "kind": "electronics", "title": "PC"})
    assert _fields(r) == {"workshop_ref"}
    r = m.post("/stock", boss, {"source": "barter", "kind": "car", "title": "", "value_cents": -1})
    assert _fields(r) == {"source", "kind", "title", "value_cents"}
    assert m.count(StockItem) == stock
    pc = m.ok(
        m.post(
            "/stock",
            boss,
            {
                "source": "workshop",
                "kind": "electronics",
                "title": "PC ricondizionato",
                "workshop_ref": "DF-000123",
                "value_cents": 9000,
            },
        ),
        201,
    )
    r = m.post(
        "/stock",
        boss,
        {"source": "workshop", "kind": "electronics", "title": "PC", "workshop_ref": "DF-000123"},
    )
    assert _fields(r, 409) == {"workshop_ref"}
    assert m.ok(m.patch(f"/stock/{pc['id']}", boss, {"status": "sold"}))["status"] == "sold"
    r = m.patch(f"/stock/{pc['id']}", boss, {"status": "available"})
    assert _fields(r, 409) == {"status"}
