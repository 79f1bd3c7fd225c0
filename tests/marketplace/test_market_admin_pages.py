"""The marketplace administrators' pages: catalogue, worker profiles and stock, over HTTP and
once in a real Chromium. Italian first, a message per field, nothing half-saved, and nobody but
the administrators in."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from sqlalchemy import select

from control_plane.marketplace.models import Category, StockItem, WorkerProfile
from control_plane.models import Role
from tests.marketplace.conftest import Market, add_worker, open_market, seed_catalogue
from tests.support.browser import LiveServer, launch_chromium

PAGES = ("/market/admin/catalogue", "/market/admin/workers", "/market/admin/stock")
NO_ACCESS = "Non hai accesso a questa pagina."
EXPIRED = "Questa pagina è scaduta"
CHECK_FIELDS = "Controlla i campi segnati qui sotto: non è stato salvato niente."

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def log_in(client: TestClient, email: str) -> None:
    client.cookies.clear()
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


def post(m: Market, path: str, data: dict[str, Any], *, page: str | None = None) -> Any:
    """Post a form as the browser would: with the token of the page it is on."""
    token = csrf(m.client.get(page or path).text)
    return m.client.post(path, data={**data, "csrf_token": token})


def followed(m: Market, response: Any) -> str:
    """The page a successful form leads to (with its flash message)."""
    assert response.status_code == 303, response.text
    return str(m.client.get(response.headers["location"]).text)


def error_of(html: str, field: str) -> str:
    """The message shown next to ``field`` ("" if none)."""
    match = re.search(rf'<p class="market-error" id="{re.escape(field)}-error">([^<]*)</p>', html)
    return match.group(1) if match else ""


def buttons(html: str, item: int) -> list[str]:
    """The states the stock page offers for ``item`` (its buttons' values)."""
    row = html.split(f'<tr id="item-{item}">', 1)[1].split("</tr>", 1)[0]
    return re.findall(r'<button type="submit"[^>]* name="status" value="([a-z]+)"', row)


def db(m: Market, query: Any) -> list[Any]:
    with m.factory() as session:
        return list(session.scalars(query))


@pytest.fixture
def site(tmp_path: Path, _sqlite_template: Path) -> Iterator[Market]:
    """The app with the console, on SQLite (the service functions the pages call are tested on
    PostgreSQL too through the API)."""
    path = tmp_path / "difronte.db"
    shutil.copyfile(_sqlite_template, path)
    with open_market(f"sqlite:///{path}", tmp_path / "media", console=True) as m:
        yield m


# --- who may open them ---------------------------------------------------------------------


def test_pages_in_italian_and_english_for_an_administrator(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    add_worker(m, "giulia@example.org", name="Giulia Bianchi", kind="artisan",
               skills=[cat["Imbiancatura"]], areas=["Lambrate"])  # fmt: skip
    boss = m.people["boss@example.org"]
    m.ok(
        m.post("/stock", boss, {"source": "donation", "kind": "books", "title": "Enciclopedia"}),
        201,
    )
    log_in(m.client, "boss@example.org")

    home = m.client.get("/").text
    for path, label in zip(
        PAGES, ("Catalogo dei servizi", "Profili di chi lavora", "Magazzino"), strict=True
    ):
        assert f'href="{path}"' in home and label in home
    italian = {path: m.client.get(path) for path in PAGES}
    for r in italian.values():
        assert r.status_code == 200 and r.headers["content-language"] == "it"
    assert "Aggiungi una categoria o un servizio" in italian[PAGES[0]].text
    assert "Imbiancatura" in italian[PAGES[0]].text and "Wall painting" in italian[PAGES[0]].text
    assert "Giulia Bianchi" in italian[PAGES[1]].text and "Artigiano" in italian[PAGES[1]].text
    assert "Crea un profilo" in italian[PAGES[1]].text
    assert "Enciclopedia" in italian[PAGES[2]].text and "Disponibile" in italian[PAGES[2]].text
    assert "<h1>Magazzino</h1>" in italian[PAGES[2]].text
    assert "Segna come venduto" in italian[PAGES[2]].text

    r = post(m, "/lang", {"lang": "en", "next": PAGES[0]}, page=PAGES[0])
    assert r.status_code == 303
    english = {path: m.client.get(path) for path in PAGES}
    for r in english.values():
        assert r.status_code == 200 and r.headers["content-language"] == "en"
    assert "Services catalogue" in english[PAGES[0]].text
    assert "Add a category or a service" in english[PAGES[0]].text
    assert "Worker profiles" in english[PAGES[1]].text and "Artisan" in english[PAGES[1]].text
    assert "Wall painting" in english[PAGES[1]].text
    assert "<h1>Stock</h1>" in english[PAGES[2]].text and "Available" in english[PAGES[2]].text
    assert "Mark as sold" in english[PAGES[2]].text and "Donation" in english[PAGES[2]].text


@pytest.mark.parametrize("role", [Role.CLIENT, Role.WORKER, Role.CAREGIVER])
def test_other_roles_are_refused(site: Market, role: Role) -> None:
    m = site
    cat = seed_catalogue(m)
    m.person("someone@example.org", role)
    log_in(m.client, "someone@example.org")
    assert 'href="/market/admin/' not in m.client.get("/").text
    for path in PAGES:
        r = m.client.get(path)
        assert r.status_code == 403 and NO_ACCESS in r.text, path
    assert m.client.get(f"/market/admin/catalogue/{cat['Pittura']}").status_code == 403
    # Their own, valid token does not open the forms either.
    token = csrf(m.client.get("/").text)
    categories = m.count(Category)
    for path, data in (
        ("/market/admin/catalogue", {"name": "Cucito"}),
        (f"/market/admin/catalogue/{cat['Pittura']}/active", {"active": "0"}),
        ("/market/admin/stock", {"source": "donation", "kind": "books", "title": "Libri"}),
    ):
        r = m.client.post(path, data={**data, "csrf_token": token})
        assert r.status_code == 403 and NO_ACCESS in r.text, path
    assert m.count(Category) == categories and m.count(StockItem) == 0
    assert db(m, select(Category.active).where(Category.id == cat["Pittura"])) == [True]


def test_anonymous_people_are_sent_to_log_in(site: Market) -> None:
    for path in PAGES:
        r = site.client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path


# --- the catalogue -----------------------------------------------------------------------------


def test_add_rename_hide_a_category_and_its_service(site: Market) -> None:
    m = site
    log_in(m.client, "boss@example.org")
    page = followed(m, post(m, PAGES[0], {"parent_id": "", "name": "Cucito", "name_en": "Sewing"}))
    assert "La categoria Cucito è stata aggiunta." in page
    [sewing] = db(m, select(Category).where(Category.name == "Cucito"))
    assert sewing.parent_id is None and sewing.name_en == "Sewing" and sewing.active

    # "Add a service here" chooses the category in the form.
    form = m.client.get(f"{PAGES[0]}?parent={sewing.id}").text
    assert f'<option value="{sewing.id}" selected>' in form
    r = post(m, PAGES[0], {"parent_id": str(sewing.id), "name": "Orli", "name_en": "Hems"})
    page = followed(m, r)
    assert "Il servizio Orli è stato aggiunto a Cucito." in page
    [hems] = db(m, select(Category).where(Category.name == "Orli"))
    assert hems.parent_id == sewing.id
    public = m.ok(m.get("/categories"))
    assert [s["name"] for c in public if c["id"] == sewing.id for s in c["services"]] == ["Orli"]

    # Renamed: the tree and the public catalogue follow.
    edit = f"{PAGES[0]}/{hems.id}"
    assert 'value="Orli"' in m.client.get(edit).text
    data = {"name": "Orli e riparazioni", "name_en": "Hems and mending", "position": "2"}
    page = followed(m, post(m, edit, {**data, "active": "1"}))
    assert "Modifiche salvate." in page and "Orli e riparazioni" in page
    assert "Orli e riparazioni" in str(m.ok(m.get("/categories")))

    # Hidden: no longer offered to clients, still in the administrators' tree; then back.
    page = followed(m, post(m, f"{PAGES[0]}/{hems.id}/active", {"active": "0"}, page=PAGES[0]))
    assert "I clienti non possono più chiedere Orli e riparazioni." in page
    assert "Non visibile" in page
    assert "Orli e riparazioni" not in str(m.ok(m.get("/categories")))
    page = followed(m, post(m, f"{PAGES[0]}/{hems.id}/active", {"active": "1"}, page=PAGES[0]))
    assert "I clienti possono di nuovo chiedere Orli e riparazioni." in page
    assert "Orli e riparazioni" in str(m.ok(m.get("/categories")))


def test_catalogue_forms_name_each_bad_field_and_save_nothing(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    log_in(m.client, "boss@example.org")
    before = m.count(Category)

    r = post(m, PAGES[0], {"parent_id": "", "name": "X", "name_en": "Sewing", "position": "tre"})
    assert r.status_code == 422 and CHECK_FIELDS in r.text
    assert error_of(r.text, "name") == "Scrivi un nome da 2 a 120 caratteri."
    assert error_of(r.text, "position").startswith("Scrivi un numero intero da 0 a 10000")
    assert error_of(r.text, "name_en") == ""
    assert 'value="Sewing"' in r.text and 'value="tre"' in r.text  # what was typed stays
    assert 'aria-describedby="name-error"' in r.text

    # A service that already exists in that category (names compared without case).
    r = post(m, PAGES[0], {"parent_id": str(cat["Pittura"]), "name": "imbiancatura"})
    assert r.status_code == 409
    assert error_of(r.text, "name").startswith("Ce n'è già uno con questo nome qui")
    assert f'<option value="{cat["Pittura"]}" selected>' in r.text
    # A service cannot hold services (only an edited page can ask for it).
    r = post(m, PAGES[0], {"parent_id": str(cat["Imbiancatura"]), "name": "Stucchi"})
    assert r.status_code == 422 and error_of(r.text, "parent_id")
    assert m.count(Category) == before

    edit = f"{PAGES[0]}/{cat['Verniciatura']}"
    r = post(m, edit, {"name": "Imbiancatura", "name_en": "Something", "active": "1"})
    assert r.status_code == 409 and error_of(r.text, "name")
    r = post(m, edit, {"name": "", "name_en": "x" * 121, "active": "1"})
    assert r.status_code == 422
    assert error_of(r.text, "name") and error_of(r.text, "name_en") == "Al massimo 120 caratteri."
    [row] = db(m, select(Category).where(Category.id == cat["Verniciatura"]))
    assert (row.name, row.name_en, row.active) == ("Verniciatura", "Varnishing", True)
    assert m.client.get(f"{PAGES[0]}/99999").status_code == 404


# --- worker profiles ---------------------------------------------------------------------------


def test_create_and_change_a_worker_profile(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    luca = m.person("luca@example.org", Role.WORKER, name="Luca Neri")
    log_in(m.client, "boss@example.org")
    page = m.client.get(PAGES[1]).text
    assert "Luca Neri (luca@example.org)" in page and "Nessun profilo" in page

    data = {
        "user_id": str(luca.id),
        "kind": "factotum",
        "display_name": "Luca Neri",
        "description": "Piccoli lavori di casa.",
        "skills": [str(cat["Idraulica"]), str(cat["Falegnameria"])],
        "areas": "Lambrate, Città Studi",
        "availability_mon": ["morning", "afternoon"],
        "availability_sat": ["morning"],
    }
    page = followed(m, post(m, PAGES[1], data))
    assert "Il profilo di Luca Neri è stato creato" in page
    assert "Idraulica" in page and "Lambrate, Città Studi" in page and "Factotum" in page
    assert "Luca Neri (luca@example.org)" not in page  # he has his profile now
    [worker] = db(m, select(WorkerProfile))
    shown = m.ok(m.get(f"/workers/{worker.id}"))
    assert {s["name"] for s in shown["services"]} == {"Idraulica", "Falegnameria"}
    assert shown["availability"] == {"mon": ["morning", "afternoon"], "sat": ["morning"]}
    found = m.ok(m.get("/search", params={"q": "idraulico", "area": "Città Studi"}))
    assert [h["display_name"] for h in found["items"]] == ["Luca Neri"]

    # Changed: another profile, one service instead of two, a new area, no longer on Monday.
    edit = f"{PAGES[1]}/{worker.id}"
    form = m.client.get(edit).text
    assert 'value="Lambrate, Città Studi"' in form and 'value="factotum" checked' in form
    changed = {
        **data,
        "kind": "artisan",
        "skills": [str(cat["Falegnameria"])],
        "areas": "Lambrate, Ortica",
        "availability_mon": [],
        "active": "1",
    }
    page = followed(m, post(m, edit, changed))
    assert "Il profilo di Luca Neri è stato salvato." in page and "Artigiano" in page
    shown = m.ok(m.get(f"/workers/{worker.id}"))
    assert shown["kind"] == "artisan" and shown["areas"] == ["Lambrate", "Ortica"]
    assert [s["name"] for s in shown["services"]] == ["Falegnameria"]
    assert shown["availability"] == {"sat": ["morning"]}
    assert m.ok(m.get("/search", params={"q": "idraulica"}))["total"] == 0

    # Taken out of the search without being deleted.
    followed(m, post(m, edit, {**changed, "active": ""}))
    assert "Non è nella ricerca" in m.client.get(PAGES[1]).text
    assert m.ok(m.get("/search", params={"q": "falegnameria"}))["total"] == 0


def test_saving_a_profile_keeps_a_service_that_is_hidden_meanwhile(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    luca = m.person("luca@example.org", Role.WORKER, name="Luca Neri")
    log_in(m.client, "boss@example.org")
    data = {
        "user_id": str(luca.id),
        "kind": "factotum",
        "display_name": "Luca Neri",
        "skills": [str(cat["Idraulica"]), str(cat["Falegnameria"])],
        "areas": "Lambrate",
        "availability_sat": ["morning"],
    }
    followed(m, post(m, PAGES[1], data))
    [worker] = db(m, select(WorkerProfile))
    with m.factory() as session:
        session.get(Category, cat["Idraulica"]).active = False  # type: ignore[union-attr]
        session.commit()
    edit = f"{PAGES[1]}/{worker.id}"
    form = m.client.get(edit).text
    assert f'value="{cat["Idraulica"]}"' not in form  # not offered, so not on the form
    followed(m, post(m, edit, {**data, "skills": [str(cat["Falegnameria"])], "active": "1"}))
    with m.factory() as session:
        session.get(Category, cat["Idraulica"]).active = True  # type: ignore[union-attr]
        session.commit()
    shown = m.ok(m.get(f"/workers/{worker.id}"))
    assert {s["name"] for s in shown["services"]} == {"Idraulica", "Falegnameria"}


def test_worker_forms_name_each_bad_field_and_save_nothing(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    luca = m.person("luca@example.org", Role.WORKER, name="Luca Neri")
    anna = m.people["anna@example.org"]
    log_in(m.client, "boss@example.org")

    r = post(m, PAGES[1], {"user_id": "", "kind": "", "display_name": "L", "areas": " , "})
    assert r.status_code == 422 and CHECK_FIELDS in r.text
    assert error_of(r.text, "user_id") == "Scegli la persona a cui è destinato il profilo."
    assert error_of(r.text, "kind") == "Scegli Volontario, Factotum o Artigiano."
    assert error_of(r.text, "display_name").startswith("Scrivi il nome che vedranno")
    assert error_of(r.text, "skills").startswith("Spunta almeno un servizio")
    assert error_of(r.text, "areas").startswith("Scrivi almeno una zona")
    assert 'value="L"' in r.text

    good = {
        "user_id": str(luca.id),
        "kind": "volunteer",
        "display_name": "Luca Neri",
        "skills": [str(cat["Idraulica"])],
        "areas": "Lambrate",
        "availability_tue": ["evening"],
    }
    # A hidden service, an area with no letters, a client's account: the service refuses each.
    m.ok(
        m.patch(f"/categories/{cat['Idraulica']}", m.people["boss@example.org"], {"active": False})
    )
    r = post(m, PAGES[1], good)
    assert r.status_code == 422 and error_of(r.text, "skills")
    assert 'name="availability_tue" value="evening" checked' in r.text
    r = post(m, PAGES[1], {**good, "skills": [str(cat["Falegnameria"])], "areas": "!!"})
    assert r.status_code == 422 and error_of(r.text, "areas")
    r = post(m, PAGES[1], {**good, "skills": [str(cat["Falegnameria"])], "user_id": str(anna.id)})
    assert r.status_code == 422 and error_of(r.text, "user_id")
    assert m.count(WorkerProfile) == 0

    # A second profile for the same person.
    _, wid = add_worker(m, "giulia@example.org", name="Giulia", kind="artisan",
                        skills=[cat["Imbiancatura"]], areas=["Milano"])  # fmt: skip
    giulia = m.people["giulia@example.org"]
    r = post(m, PAGES[1], {**good, "skills": [str(cat["Falegnameria"])], "user_id": str(giulia.id)})
    assert r.status_code == 409
    assert error_of(r.text, "user_id") == "Questa persona ha già un profilo."
    assert m.count(WorkerProfile) == 1

    # Changing a profile: bad fields named, the profile as it was.
    edit = f"{PAGES[1]}/{wid}"
    r = post(m, edit, {"kind": "wizard", "display_name": "Giulia", "skills": [], "areas": ""})
    assert r.status_code == 422
    for field in ("kind", "skills", "areas"):
        assert error_of(r.text, field), field
    # Refused by the service after it applied the first fields: none of them stays.
    changed = {
        "kind": "volunteer",
        "display_name": "Giulia Verdi",
        "skills": [str(cat["Falegnameria"])],
        "areas": "!!",
        "active": "1",
    }
    r = post(m, edit, changed)
    assert r.status_code == 422 and error_of(r.text, "areas") and 'value="Giulia Verdi"' in r.text
    shown = m.ok(m.get(f"/workers/{wid}"))
    assert (shown["kind"], shown["display_name"], shown["areas"]) == (
        "artisan",
        "Giulia",
        ["Milano"],
    )
    assert [s["name"] for s in shown["services"]] == ["Imbiancatura"]
    assert m.client.get(f"{PAGES[1]}/99999").status_code == 404


# --- the stock ---------------------------------------------------------------------------------


def test_add_stock_items_and_change_their_state(site: Market) -> None:
    m = site
    log_in(m.client, "boss@example.org")
    pc = {
        "source": "workshop",
        "workshop_ref": "DF-0042",
        "kind": "electronics",
        "title": "PC fisso Lenovo",
        "description": "Ricondizionato, 8 GB",
        "value": "85,50",
    }
    page = followed(m, post(m, PAGES[2], pc))
    assert "Aggiunto al magazzino: PC fisso Lenovo." in page
    assert "DF-0042" in page and "85,50 €" in page and "Disponibile" in page
    page = followed(
        m, post(m, PAGES[2], {"source": "donation", "kind": "books", "title": "Atlante"})
    )
    assert "Atlante" in page
    items = {i["title"]: i for i in m.ok(m.get("/stock", m.people["boss@example.org"]))}
    assert items["PC fisso Lenovo"]["value_cents"] == 8550
    assert items["PC fisso Lenovo"]["source"] == "workshop"
    assert items["Atlante"]["value_cents"] == 0 and items["Atlante"]["source"] == "donation"

    # Each item offers the states it may move to, as buttons that post them.
    item = items["PC fisso Lenovo"]["id"]
    status = f"{PAGES[2]}/{item}/status"
    assert buttons(page, item) == ["reserved", "sold", "disposed"]
    assert 'aria-label="Prenota: PC fisso Lenovo">Prenota</button>' in page
    page = followed(m, post(m, status, {"status": "reserved"}, page=PAGES[2]))
    assert "PC fisso Lenovo ora è: Prenotato." in page
    assert buttons(page, item) == ["available", "sold", "disposed"]
    assert "Rendi di nuovo disponibile" in page
    page = followed(m, post(m, status, {"status": "sold"}, page=PAGES[2]))
    assert "PC fisso Lenovo ora è: Venduto." in page
    assert "Definitivo: non può più cambiare." in page and buttons(page, item) == []
    sold = m.client.get(f"{PAGES[2]}?status=sold").text
    assert "PC fisso Lenovo" in sold and "Atlante" not in sold
    assert "PC fisso Lenovo" not in m.client.get(f"{PAGES[2]}?status=available").text
    assert (
        m.ok(m.get("/stock", m.people["boss@example.org"], params={"status": "sold"}))[0]["id"]
        == item
    )


def test_stock_forms_name_each_bad_field_and_save_nothing(site: Market) -> None:
    m = site
    log_in(m.client, "boss@example.org")
    r = post(m, PAGES[2], {"source": "", "kind": "", "title": "", "value": "dieci euro"})
    assert r.status_code == 422 and CHECK_FIELDS in r.text
    assert error_of(r.text, "source") == "Scegli da dove arriva l'oggetto."
    assert error_of(r.text, "kind") == "Scegli che tipo di oggetto è."
    assert error_of(r.text, "title").startswith("Dai un nome breve all'oggetto")
    assert error_of(r.text, "value").startswith("Scrivi il valore in euro")
    assert 'value="dieci euro"' in r.text
    # Bartered goods come from their jobs only; a workshop PC needs its tag.
    r = post(m, PAGES[2], {"source": "barter", "kind": "books", "title": "Libri"})
    assert r.status_code == 422 and error_of(r.text, "source")
    r = post(m, PAGES[2], {"source": "workshop", "kind": "electronics", "title": "PC portatile"})
    assert r.status_code == 422 and error_of(r.text, "workshop_ref").startswith("Per un PC")
    assert m.count(StockItem) == 0

    pc = {"source": "workshop", "workshop_ref": "DF-7", "kind": "electronics", "title": "PC"}
    followed(m, post(m, PAGES[2], pc))
    r = post(m, PAGES[2], {**pc, "title": "Un altro PC"})
    assert r.status_code == 409
    assert error_of(r.text, "workshop_ref") == "Questa macchina è già in magazzino."
    assert m.count(StockItem) == 1

    # A sold item stays sold; an unknown state is refused; the item is as it was.
    [item] = db(m, select(StockItem.id))
    status = f"{PAGES[2]}/{item}/status"
    followed(m, post(m, status, {"status": "sold"}, page=PAGES[2]))
    for wanted, code in (("available", 409), ("lost", 422)):
        r = post(m, status, {"status": wanted}, page=PAGES[2])
        assert r.status_code == code
        assert error_of(r.text, f"status_{item}").startswith("Questo cambio non è possibile")
    assert db(m, select(StockItem.status)) == ["sold"]
    assert post(m, f"{PAGES[2]}/99999/status", {"status": "sold"}, page=PAGES[2]).status_code == 404


# --- CSRF --------------------------------------------------------------------------------------


def test_posts_without_a_valid_csrf_token_are_refused(site: Market) -> None:
    m = site
    cat = seed_catalogue(m)
    _, wid = add_worker(m, "giulia@example.org", name="Giulia", kind="artisan",
                        skills=[cat["Imbiancatura"]], areas=["Milano"])  # fmt: skip
    luca = m.person("luca@example.org", Role.WORKER, name="Luca Neri")
    boss = m.people["boss@example.org"]
    item = m.ok(
        m.post("/stock", boss, {"source": "donation", "kind": "books", "title": "Atlante"}), 201
    )
    log_in(m.client, "boss@example.org")
    worker = {"kind": "volunteer", "display_name": "Luca", "skills": [str(cat["Idraulica"])],
              "areas": "Lambrate", "user_id": str(luca.id)}  # fmt: skip
    forms = [
        (PAGES[0], {"name": "Cucito"}),
        (f"{PAGES[0]}/{cat['Pittura']}", {"name": "Pitture", "active": "1"}),
        (f"{PAGES[0]}/{cat['Pittura']}/active", {"active": "0"}),
        (PAGES[1], worker),
        (f"{PAGES[1]}/{wid}", {**worker, "display_name": "Giulia Rossi", "active": "1"}),
        (PAGES[2], {"source": "donation", "kind": "books", "title": "Libri"}),
        (f"{PAGES[2]}/{item['id']}/status", {"status": "sold"}),
    ]
    counts = (m.count(Category), m.count(WorkerProfile), m.count(StockItem))
    for path, data in forms:
        for token in ({}, {"csrf_token": "0" * 64}):
            r = m.client.post(path, data={**data, **token})
            assert r.status_code == 403 and EXPIRED in r.text, path
    assert (m.count(Category), m.count(WorkerProfile), m.count(StockItem)) == counts
    assert db(m, select(Category.name).where(Category.id == cat["Pittura"])) == ["Pittura"]
    assert db(m, select(Category.active).where(Category.id == cat["Pittura"])) == [True]
    assert db(m, select(WorkerProfile.display_name)) == ["Giulia"]
    assert db(m, select(StockItem.status)) == ["available"]


# --- in a real browser -------------------------------------------------------------------------

# Every control labelled, every button named, one h1 (as the marketplace's browser test checks).
_A11Y = """
() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label");
    if (!named) problems.push("no label: " + el.outerHTML);
  }
  for (const el of document.querySelectorAll("button, a.button")) {
    if (!el.innerText.trim() && !el.getAttribute("aria-label")) {
      problems.push("no text: " + el.outerHTML);
    }
  }
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  return problems;
}
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium for this module's browser test."""
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def live_site(tmp_path: Path, _sqlite_template: Path) -> Iterator[tuple[Market, LiveServer]]:
    """The app with its console under a real uvicorn (SQLite)."""
    path = tmp_path / "difronte.db"
    shutil.copyfile(_sqlite_template, path)
    with open_market(f"sqlite:///{path}", tmp_path / "media", console=True, lifespan=False) as m:
        with LiveServer(m.app) as server:
            yield m, server


def _accessible(page: Page) -> None:
    assert page.evaluate(_A11Y) == []


@pytest.mark.browser
def test_admin_adds_a_service_and_a_worker_clients_then_find(
    live_site: tuple[Market, LiveServer], chromium: Browser, tmp_path: Path
) -> None:
    m, server = live_site
    seed_catalogue(m)
    m.person("luca@example.org", Role.WORKER, name="Luca Neri")
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="it-IT")
    context.set_default_timeout(15_000)
    page = context.new_page()

    # The administrator logs in and finds the catalogue in the menu.
    page.goto(server.url + "/login")
    page.get_by_label("Indirizzo e-mail").fill("boss@example.org")
    page.get_by_label("Password").fill("pw-secret-1")
    page.get_by_role("button", name="Entra").click()
    page.get_by_role("navigation").get_by_role("link", name="Catalogo dei servizi").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Catalogo dei servizi")
    _accessible(page)

    # A new service in "Piccole riparazioni", after a first try without a name.
    page.get_by_role("link", name="Aggiungi un servizio a Piccole riparazioni").click()
    expect(page.get_by_label("Dove va?")).to_have_value(
        str(db(m, select(Category.id).where(Category.name == "Piccole riparazioni"))[0])
    )
    page.get_by_label("Nome in inglese (facoltativo)").fill("Roller shutters")
    page.get_by_role("button", name="Aggiungi", exact=True).click()
    expect(page.locator("#name-error")).to_have_text("Scrivi un nome da 2 a 120 caratteri.")
    expect(page.get_by_label("Nome in inglese (facoltativo)")).to_have_value("Roller shutters")
    page.get_by_label("Nome in italiano").fill("Riparazione tapparelle")
    page.get_by_role("button", name="Aggiungi", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        "Il servizio Riparazione tapparelle è stato aggiunto a Piccole riparazioni."
    )
    section = page.get_by_role("region", name="Piccole riparazioni")
    expect(section.get_by_role("cell", name="Riparazione tapparelle", exact=True)).to_be_visible()

    # A profile for Luca with that service.
    page.get_by_role("navigation").get_by_role("link", name="Profili di chi lavora").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Profili di chi lavora")
    _accessible(page)
    page.get_by_label("Per chi è il profilo?").select_option(label="Luca Neri (luca@example.org)")
    page.get_by_label("Factotum", exact=True).check()
    page.get_by_label("Nome che vedranno i clienti").fill("Luca Neri")
    page.get_by_label("Riparazione tapparelle").check()
    page.get_by_label("Zone dove lavora").fill("Lambrate, Città Studi")
    page.locator("input[name=availability_wed][value=morning]").check()
    page.get_by_role("button", name="Crea il profilo").click()
    expect(page.get_by_role("status")).to_contain_text("Il profilo di Luca Neri è stato creato")
    row = page.get_by_role("row").filter(has_text="Luca Neri")
    expect(row).to_contain_text("Riparazione tapparelle")
    expect(row).to_contain_text("Lambrate, Città Studi")
    page.screenshot(path=str(tmp_path / "workers.png"), full_page=True)

    # Anyone now finds him by what they type.
    page.context.clear_cookies()
    page.goto(server.url + "/market/search")
    page.get_by_label("Che cosa ti serve?").fill("tapparella")
    page.get_by_role("button", name="Cerca").click()
    expect(page.get_by_role("heading", name="1 persona trovata")).to_be_visible()
    page.get_by_role("link", name="Luca Neri").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Luca Neri")
    expect(page.locator(".market-services")).to_contain_text("Riparazione tapparelle")
    context.close()
