"""Italian search, as people type it, with the same results on SQLite FTS5 and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from control_plane.marketplace import search
from control_plane.marketplace.models import SearchDoc
from tests.marketplace.conftest import Catalogue, Market, add_worker, seed_catalogue


def _people(m: Market, cat: Catalogue) -> dict[str, int]:
    rows = [
        ("giulia", "Giulia", "artisan", ["Imbiancatura"], ["Milano"],
         "Imbiancatura di appartamenti e uffici"),
        ("paolo", "Paolo", "factotum", ["Falegnameria"], ["Monza"],
         "Restauro mobili e pittura decorativa su legno"),
        ("sara", "Sara", "volunteer", ["Potatura siepi"], ["Milano"],
         "Curo orti e aiuole in città"),
        ("ahmed", "Ahmed", "factotum", ["Idraulica"], ["Sesto San Giovanni"],
         "Riparo rubinetti, scarichi e perdite"),
        ("elena", "Elena", "volunteer", ["Pulizia vetri"], ["Milano"], "Lavo finestre e vetrate"),
        ("franco", "Franco", "artisan", ["Pulizia appartamenti"], ["Monza"],
         "Pulizie di fondo dopo i lavori"),
    ]  # fmt: skip
    ids = {}
    for key, name, kind, skills, areas, description in rows:
        _, ids[name] = add_worker(
            m,
            f"{key}@example.org",
            name=name,
            kind=kind,
            skills=[cat[s] for s in skills],
            areas=areas,
            description=description,
        )
    return ids


@pytest.fixture(scope="module")
def seeded(module_market: Market) -> tuple[Market, Catalogue, dict[str, int]]:
    """The catalogue and six workers, shared by the read-only tests of this module."""
    cat = seed_catalogue(module_market)
    return module_market, cat, _people(module_market, cat)


def _names(m: Market, **params: Any) -> set[str]:
    body = m.ok(m.get("/search", params={"limit": 100, **params}))
    assert body["total"] == len(body["items"])
    return {w["display_name"] for w in body["items"]}


# (what is typed, the filters, who must be found): the same on both databases.
CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("pitture", {}, {"Giulia", "Paolo"}),  # stemming ("pittura"), and the category "Pittura"
    ("Pittura", {}, {"Giulia", "Paolo"}),
    ("imbianc", {}, {"Giulia"}),  # a partial word
    ("imbiancature", {}, {"Giulia"}),  # a plural of what is indexed
    ("citta", {}, {"Sara"}),  # accents, either way round
    ("CITTÀ", {}, {"Sara"}),
    ("giardinaggio", {}, {"Sara"}),  # a category name, not in her words
    ("giardin", {}, {"Sara"}),
    ("plumbing", {}, {"Ahmed"}),  # the English name of a service
    ("rubinett", {}, {"Ahmed"}),
    ("volontario", {}, {"Sara", "Elena"}),  # the profile, in words
    ("artigiana", {}, {"Giulia", "Franco"}),
    ("pulizia vetri", {}, {"Elena"}),  # every word must match
    ("pulizie", {}, {"Elena", "Franco"}),
    ("pulizia della casa", {}, set()),  # "della" ignored, "casa" matches nobody
    ("astronave", {}, set()),
    ("", {"kind": "artisan"}, {"Giulia", "Franco"}),
    ("pulizie", {"kind": "volunteer"}, {"Elena"}),
    ("", {"area": "Milano, Lambrate"}, {"Giulia", "Sara", "Elena"}),
    ("pulizie", {"area": "Monza"}, {"Franco"}),
    ("", {"kind": ["volunteer", "factotum"]}, {"Paolo", "Sara", "Ahmed", "Elena"}),
]


def test_italian_matching_cases(seeded: tuple[Market, Catalogue, dict[str, int]]) -> None:
    market, cat, _ = seeded
    failures = []
    for typed, filters, expected in CASES:
        found = _names(market, q=typed, **filters)
        if found != expected:
            failures.append(f"{typed!r} {filters}: found {sorted(found)}, want {sorted(expected)}")
    # Category filters: a category means all its services; a service means itself.
    assert _names(market, category=cat["Pulizie"]) == {"Elena", "Franco"}
    assert _names(market, category=cat["Pulizia vetri"]) == {"Elena"}
    assert _names(market, q="lavo", category=cat["Pulizie"]) == {"Elena", "Franco"}
    assert failures == []


def test_services_are_found_by_name_and_category(
    seeded: tuple[Market, Catalogue, dict[str, int]],
) -> None:
    market = seeded[0]
    body = market.ok(market.get("/search", params={"q": "imbianc"}))
    assert [s["name"] for s in body["services"]] == ["Imbiancatura"]
    body = market.ok(market.get("/search", params={"q": "riparazioni"}))
    assert {s["name"] for s in body["services"]} == {
        "Piccole riparazioni",
        "Idraulica",
        "Falegnameria",
    }


def test_search_follows_changes(market: Market) -> None:
    m = market
    cat = seed_catalogue(m)
    ids = _people(m, cat)
    boss = m.people["boss@example.org"]
    # A renamed category: the old name no longer finds its workers, the new one does.
    m.ok(m.patch(f"/categories/{cat['Giardinaggio']}", boss, {"name": "Verde e giardini"}))
    assert _names(m, q="giardinaggio") == set()
    assert _names(m, q="giardini") == {"Sara"}
    # A new description replaces the old words (the FTS entry is really replaced).
    m.ok(m.patch(f"/workers/{ids['Ahmed']}", boss, {"description": "Caldaie e termosifoni"}))
    assert _names(m, q="rubinett") == set()
    assert _names(m, q="caldaia") == {"Ahmed"}
    # New services: found by their names.
    m.ok(m.patch(f"/workers/{ids['Ahmed']}", boss, {"skills": [cat["Piccoli traslochi"]]}))
    assert _names(m, q="traslochi") == {"Ahmed"}
    assert _names(m, q="idraulica") == set()
    # An inactive worker leaves the search, and comes back.
    m.ok(m.patch(f"/workers/{ids['Giulia']}", boss, {"active": False}))
    assert _names(m, q="imbianc") == set()
    assert m.get(f"/workers/{ids['Giulia']}").status_code == 404
    m.ok(m.patch(f"/workers/{ids['Giulia']}", boss, {"active": True}))
    assert _names(m, q="imbianc") == {"Giulia"}


def test_ranking_orders_and_pages(seeded: tuple[Market, Catalogue, dict[str, int]]) -> None:
    m = seeded[0]
    # Relevance: more (and rarer) matching words rank higher on both backends.
    # Franco's services and description both say "pulizie"; Elena's only her category.
    body = m.ok(m.get("/search", params={"q": "pulizie"}))
    assert [w["display_name"] for w in body["items"]] == ["Franco", "Elena"]
    # Sorting by rating is the same everywhere; ties by id.
    by_rating = m.ok(m.get("/search", params={"sort": "rating", "limit": 2, "offset": 0}))
    rest = m.ok(m.get("/search", params={"sort": "rating", "limit": 10, "offset": 2}))
    assert by_rating["total"] == 6 and len(rest["items"]) == 4
    names = [w["display_name"] for w in by_rating["items"] + rest["items"]]
    assert names == ["Giulia", "Paolo", "Sara", "Ahmed", "Elena", "Franco"]


def test_bad_search_parameters_are_named(
    seeded: tuple[Market, Catalogue, dict[str, int]],
) -> None:
    market = seeded[0]
    r = market.get("/search", params={"limit": 0, "kind": "astronaut"})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"query.limit", "query.kind.0"}
    r = market.get("/search", params={"category": 999})
    assert r.status_code == 422 and r.json()["detail"].startswith("category:")


def test_index_rows_and_fts_stay_in_step(seeded: tuple[Market, Catalogue, dict[str, int]]) -> None:
    m = seeded[0]
    with m.factory() as session:
        docs = session.query(SearchDoc).count()
        backend = search.backend_for(session)
        if backend.name == "sqlite":
            # The FTS5 integrity check fails if an entry was deleted with the wrong text.
            session.execute(
                text("INSERT INTO market_search_fts(market_search_fts) VALUES ('integrity-check')")
            )
            fts = session.execute(text("SELECT count(*) FROM market_search_fts")).scalar_one()
            assert fts == docs
        # Rebuilding gives the same answers.
        backend.rebuild(session)
        session.commit()
    assert _names(m, q="imbianc") == {"Giulia"}


def test_query_syntax_is_never_passed_to_the_database(
    seeded: tuple[Market, Catalogue, dict[str, int]],
) -> None:
    market = seeded[0]
    for typed in ['"', "*", "(", "NEAR(imbianc", "a:*", "!", "''", "\\", "OR AND", "-x", "é"]:
        r = market.get("/search", params={"q": typed})
        assert r.status_code == 200, (typed, r.text)
