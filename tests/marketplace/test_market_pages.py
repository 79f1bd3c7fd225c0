"""The marketplace pages over HTTP: Italian first, per-field messages, nothing half-saved,
and who may open what. (The whole path in a real browser is in test_market_browser.py.)"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_plane.marketplace.models import Good, Media, ServiceRequest
from control_plane.models import Role
from tests.marketplace.conftest import (
    Market,
    add_worker,
    in_days,
    open_market,
    png_bytes,
    seed_catalogue,
)

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def log_in(client: TestClient, email: str) -> None:
    form = client.get("/login")
    r = client.post(
        "/login",
        data={
            "email": email,
            "password": "pw-secret-1",
            "next": "/",
            "csrf_token": csrf(form.text),
        },
    )
    assert r.status_code == 303, r.text


@pytest.fixture
def site(tmp_path: Path, _sqlite_template: Path) -> Iterator[Market]:
    """The app with the console (on SQLite: the pages run the same queries as the API, whose
    tests cover PostgreSQL too)."""
    db = tmp_path / "difronte.db"
    shutil.copyfile(_sqlite_template, db)
    with open_market(f"sqlite:///{db}", tmp_path / "media", console=True) as m:
        yield m


def _form(cat_id: int, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "category_id": str(cat_id),
        "description": "Imbiancare la camera da letto.",
        "when": "two_weeks",
        "time_of_day": "morning",
        "area": "Milano Lambrate",
        "good_kind_0": "furniture",
        "good_title_0": "Poltrona",
        "good_description_0": "In pelle",
    }
    data.update(overrides)
    return data


def test_public_search_and_worker_pages_in_italian(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    _, wid = add_worker(
        m, "giulia@example.org", name="Giulia Bianchi", kind="artisan",
        skills=[cat["Imbiancatura"]], areas=["Milano"], description="Pitture lavabili.",
    )  # fmt: skip
    r = m.client.get("/market/search", params={"q": "pitture"})
    assert r.status_code == 200 and r.headers["content-language"] == "it"
    assert "Giulia Bianchi" in r.text and "1 persona trovata" in r.text
    assert "Artigiano" in r.text and "Imbiancatura" in r.text
    r = m.client.get("/market/search", params={"q": "astronave"})
    assert "Nessuno trovato" in r.text
    r = m.client.get(f"/market/workers/{wid}")
    assert r.status_code == 200 and "Nessuna recensione" in r.text
    assert m.client.get("/market/workers/9999").status_code == 404
    css = m.client.get("/market/market.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # In English on request.
    r = m.client.get("/market/search", params={"q": "pitture"}, headers={"accept-language": "en"})
    assert "1 person found" in r.text and "Wall painting" in r.text


def test_request_form_reports_every_field_and_saves_nothing(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    # The form needs a client: anonymous people are sent to log in.
    r = m.client.get("/market/requests/new")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    log_in(m.client, "anna@example.org")
    page = m.client.get(f"/market/requests/new?service={cat['Imbiancatura']}")
    assert page.status_code == 200 and "Chiedi un preventivo" in page.text
    token = csrf(page.text)

    bad = _form(
        cat["Pittura"],  # a category, not a service
        description="corta",
        when="exact",
        exact_date=in_days(-3),
        area="",
        good_title_0="",  # a description without a name
    )
    r = m.client.post(
        "/market/requests/new",
        data={**bad, "csrf_token": token},
        files=[("photos", ("virus.png", b"MZ\x90\x00", "image/png"))],
    )
    assert r.status_code == 422
    for message in (
        "Scegli il servizio che ti serve.",
        "Descrivi il lavoro in almeno 10 caratteri.",
        "Scegli un giorno, da oggi in poi.",
        "Scrivi la tua zona o il quartiere (da 2 a 120 caratteri).",
        "Dai un nome breve al bene che offri (da 2 a 120 caratteri).",
        "Le foto devono essere immagini JPEG, PNG o WebP",
    ):
        assert message in r.text, message
    assert 'aria-invalid="true" aria-describedby="description-error"' in r.text
    assert "corta" in r.text  # what was typed is kept
    assert (m.count(ServiceRequest), m.count(Good), m.count(Media)) == (0, 0, 0)
    assert not [p for p in m.media_dir.rglob("*") if p.is_file()]

    # A service-level refusal after the photos were written: the files go too.
    with_window = _form(
        cat["Imbiancatura"], when="range", window_start=in_days(5), window_end=in_days(1)
    )
    r = m.client.post(
        "/market/requests/new",
        data={**with_window, "csrf_token": token},
        files=[("photos", ("a.png", png_bytes(), "image/png"))],
    )
    assert r.status_code == 422 and "non prima del primo" in r.text
    assert (m.count(ServiceRequest), m.count(Media)) == (0, 0)

    # Without the CSRF token: refused.
    r = m.client.post("/market/requests/new", data=_form(cat["Imbiancatura"]))
    assert r.status_code == 403 and m.count(ServiceRequest) == 0

    # All good: saved with its photos and goods, then shown.
    r = m.client.post(
        "/market/requests/new",
        data={**_form(cat["Imbiancatura"]), "csrf_token": token},
        files=[
            ("photos", ("a.png", png_bytes(), "image/png")),
            ("good_photo_0", ("chair.png", png_bytes(3, 3), "image/png")),
        ],
    )
    assert r.status_code == 303, r.text
    page = m.client.get(r.headers["location"])
    assert "La tua richiesta è stata inviata" in page.text
    assert "Poltrona" in page.text and "da valutare" in page.text
    assert (m.count(ServiceRequest), m.count(Good), m.count(Media)) == (1, 1, 2)
    for src in re.findall(r'<img src="([^"]+)"', page.text):
        assert m.client.get(src).status_code == 200


def test_lists_and_permissions(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    add_worker(m, "giulia@example.org", name="Giulia", kind="artisan",
               skills=[cat["Imbiancatura"]], areas=["Milano"])  # fmt: skip
    anna = m.people["anna@example.org"]
    rid = m.ok(
        m.post(
            "/requests",
            anna,
            {
                "category_id": cat["Imbiancatura"],
                "description": "Imbiancare la cucina, due pareti.",
                "date_kind": "exact",
                "exact_date": in_days(3),
                "area": "Milano",
            },
        ),
        201,
    )["id"]
    log_in(m.client, "anna@example.org")
    assert f"N. {rid}" in m.client.get("/market/requests").text
    assert m.client.get("/market/queue").status_code == 403
    assert m.client.get("/market/jobs").status_code == 403
    m.client.post("/logout", data={"csrf_token": csrf(m.client.get("/").text)})

    m.person("bruno@example.org", Role.CLIENT)
    log_in(m.client, "bruno@example.org")
    assert m.client.get(f"/market/requests/{rid}").status_code == 403
    r = m.client.post(
        f"/market/requests/{rid}/cancel",
        data={"csrf_token": csrf(m.client.get("/market/requests").text)},
    )
    assert r.status_code == 403
    assert m.ok(m.get(f"/requests/{rid}", anna))["status"] == "new"
    m.client.post("/logout", data={"csrf_token": csrf(m.client.get("/").text)})

    log_in(m.client, "boss@example.org")
    queue = m.client.get("/market/queue")
    assert queue.status_code == 200 and f"N. {rid}" in queue.text and "Nuova" in queue.text
    detail = m.client.get(f"/market/requests/{rid}")
    assert "Chi può farlo" in detail.text and "offre Imbiancatura" in detail.text
