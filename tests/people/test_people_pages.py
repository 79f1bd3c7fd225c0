"""The people pages of the console through HTTP: Italian words, forms, permissions, CSRF."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from control_plane.models import Beneficiary, CaregiverAssignment, User
from tests.people.conftest import Env
from tests.web.conftest import csrf_from, login

NEW_PASSWORD = "una-password-lunga"


def post(client: TestClient, path: str, form_page: str, data: dict[str, object]) -> object:
    """Open ``form_page`` (for its CSRF token), then post ``data`` to ``path``."""
    page = client.get(form_page)
    assert page.status_code == 200, page.text
    return client.post(path, data={**data, "csrf_token": csrf_from(page.text)})


def error_of(html: str, field: str) -> str:
    """The message shown next to ``field``."""
    match = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', html)
    assert match, f"no message next to {field}"
    return match.group(1).replace("&#39;", "'")


def by_name(env: Env, name: str) -> Beneficiary | None:
    with env.session() as session:
        return session.execute(
            select(Beneficiary).where(Beneficiary.name == name)
        ).scalar_one_or_none()


# --- who may open what ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "people", "users"),
    [
        ("admin", 200, 200),
        ("coordinator", 200, 403),
        ("anna", 403, 403),
        ("fleet", 403, 403),
        ("worker", 403, 403),
        ("client", 403, 403),
    ],
)
def test_each_role_sees_only_its_pages(env: Env, who: str, people: int, users: int) -> None:
    person = env.beneficiary("Persona Di Prova")
    env.assign(person["id"], "anna")
    client = env.signed_in(who)
    pid = person["id"]
    uid = env.user_ids["anna"]
    for path in ("/people", "/people/new", f"/people/{pid}"):
        r = client.get(path)
        assert r.status_code == people, (path, r.status_code)
        if people == 403:
            assert "Non hai accesso a questa pagina" in r.text
    for path in ("/people/users", "/people/users/new", f"/people/users/{uid}"):
        assert client.get(path).status_code == users, path
    home = client.get("/").text
    assert ('href="/people"' in home) == (people == 200)
    assert ('href="/people/users"' in home) == (users == 200)

    # Posting is refused the same way (with a valid CSRF token: the role is what counts).
    token = csrf_from(home)
    before = env.count(Beneficiary), env.count(CaregiverAssignment)
    for path, data in (
        ("/people/new", {"name": "Intruso"}),
        (f"/people/{pid}", {"name": "Cambiato", "timezone": "Europe/Rome"}),
        (f"/people/{pid}/caregivers", {"user_id": str(env.user_ids["bruno"])}),
        (f"/people/{pid}/caregivers/{uid}/remove", {}),
        (f"/people/users/{uid}", {"name": "X", "role": "admin", "locale": "it"}),
        (f"/people/users/{uid}/password", {"password": NEW_PASSWORD}),
    ):
        r = client.post(path, data={**data, "csrf_token": token})
        expected = users if "/users" in path else people
        if expected == 403:
            assert r.status_code == 403, (who, path, r.status_code)
    if people == 403:
        assert (env.count(Beneficiary), env.count(CaregiverAssignment)) == before
        stored = env.stored(pid)
        assert stored is not None and stored.name == "Persona Di Prova"
    if users == 403:
        assert env.user(uid).role == "caregiver"


def test_anonymous_visitors_are_sent_to_log_in(env: Env) -> None:
    client = env.browser()
    for path in ("/people", "/people/users"):
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_forms_without_csrf_are_refused_and_save_nothing(env: Env) -> None:
    client = env.signed_in("admin")
    before = env.count(Beneficiary), env.count(User)
    r = client.post("/people/new", data={"name": "Senza Token", "timezone": "Europe/Rome"})
    assert r.status_code == 403 and "Questa pagina è scaduta" in r.text
    r = client.post(
        "/people/users/new",
        data={
            "email": env.tag("nocsrf") + "@example.org",
            "name": "Senza Token",
            "role": "caregiver",
            "locale": "it",
            "password": NEW_PASSWORD,
        },
    )
    assert r.status_code == 403
    r = client.post(
        "/people/new",
        data={"name": "Token Sbagliato", "timezone": "Europe/Rome", "csrf_token": "forged"},
    )
    assert r.status_code == 403
    assert (env.count(Beneficiary), env.count(User)) == before


# --- beneficiaries ---------------------------------------------------------------------------


def test_coordinator_registers_links_a_pc_and_assigns_a_caregiver(env: Env) -> None:
    pc = env.device(env.tag("pc-rosa"), online=True)
    client = env.signed_in("coordinator")
    listing = client.get("/people")
    assert "Beneficiari" in listing.text and "Aggiungi un beneficiario" in listing.text
    form = client.get("/people/new")
    assert pc in form.text  # a free PC is offered

    name = env.tag("Rosa Esposito")
    r = post(
        client,
        "/people/new",
        "/people/new",
        {
            "name": name,
            "timezone": "Europe/Rome",
            "address_area": "Rione Sanità",
            "notes": "Sente poco: parlare piano e chiaro.",
            "auto_answer": "1",
            "device_id": pc,
        },
    )
    assert r.status_code == 303, r.text  # type: ignore[attr-defined]
    person = by_name(env, name)
    assert person is not None and person.device_id == pc and person.auto_answer
    assert r.headers["location"] == f"/people/{person.id}"  # type: ignore[attr-defined]
    page = client.get(f"/people/{person.id}").text
    assert "Ora scegli chi chiamerà questa persona" in page
    assert "PC acceso" in page and "Nessuno chiama ancora questa persona" in page
    assert f'href="/care/people/{person.id}"' in page
    assert f'href="/schedules/people/{person.id}"' in page

    r = post(
        client,
        f"/people/{person.id}/caregivers",
        f"/people/{person.id}",
        {"user_id": str(env.user_ids["anna"])},
    )
    assert r.status_code == 303
    page = client.get(f"/people/{person.id}").text
    assert f"Ora Anna {env.n} segue {name}" in page and "caregiver principale" in page

    # Anna sees Rosa on her care page; Bruno does not.
    assert name in env.signed_in("anna").get("/care").text
    assert name not in env.signed_in("bruno").get("/care").text

    listing = client.get("/people").text
    assert name in listing and f"Anna {env.n} (principale)" in listing
    assert f'href="/care/people/{person.id}"' in listing
    assert [e.object_id for e in env.audit("beneficiary.create")] == [str(person.id)]
    assert [e.object_id for e in env.audit("caregiver.assign")] == [str(person.id)]


def test_a_pc_in_use_is_refused_naming_who_has_it(env: Env) -> None:
    pc = env.device(env.tag("pc-shared"))
    holder = env.beneficiary(env.tag("Maria Rossi"), device_id=pc)
    client = env.signed_in("coordinator")
    before = env.count(Beneficiary)
    r = post(
        client,
        "/people/new",
        "/people/new",
        {"name": "Giuseppe Verdi", "timezone": "Europe/Rome", "device_id": pc},
    )
    assert r.status_code == 409  # type: ignore[attr-defined]
    text = r.text  # type: ignore[attr-defined]
    assert error_of(text, "device_id") == (
        f"Questo PC è già in uso a casa di {holder['name']}. Scegline un altro, "
        f"oppure prima scollegalo da {holder['name']}."
    )
    assert 'value="Giuseppe Verdi"' in text  # what was typed is kept
    assert "Non è stato ancora salvato niente" in text
    assert env.count(Beneficiary) == before

    # Unlinked from Maria ("no longer at her home"), Giuseppe can have it.
    r = post(client, f"/people/{holder['id']}/unlink", f"/people/{holder['id']}", {})
    assert r.status_code == 303
    stored = env.stored(holder["id"])
    assert stored is not None and stored.device_id is None
    r = post(
        client,
        "/people/new",
        "/people/new",
        {"name": env.tag("Giuseppe Verdi"), "timezone": "Europe/Rome", "device_id": pc},
    )
    assert r.status_code == 303
    giuseppe = by_name(env, env.tag("Giuseppe Verdi"))
    assert giuseppe is not None and giuseppe.device_id == pc


def test_new_beneficiary_form_names_each_bad_field(env: Env) -> None:
    client = env.signed_in("coordinator")
    before = env.count(Beneficiary)
    r = post(
        client,
        "/people/new",
        "/people/new",
        {
            "name": "",
            "timezone": "Mars/Olympus",
            "address_area": "Via Roma " * 30,
            "notes": "Note da tenere",
            "device_id": env.tag("pc-ghost"),
        },
    )
    assert r.status_code == 422  # type: ignore[attr-defined]
    text = r.text  # type: ignore[attr-defined]
    assert error_of(text, "name") == "Scrivi il nome della persona (al massimo 200 caratteri)."
    assert error_of(text, "timezone") == "Scegli un fuso orario dall’elenco."
    assert error_of(text, "address_area") == "Al massimo 200 caratteri."
    assert error_of(text, "device_id") == "Questo PC non è registrato. Scegline uno dall’elenco."
    assert "Note da tenere" in text and 'aria-invalid="true"' in text
    r = post(client, "/people/new", "/people/new", {"name": "X", "notes": "n" * 5001})
    assert error_of(r.text, "notes") == "Al massimo 5000 caratteri."  # type: ignore[attr-defined]
    assert env.count(Beneficiary) == before


def test_edit_form_keeps_what_was_typed_and_saves_nothing_on_error(env: Env) -> None:
    revoked = env.device(env.tag("pc-retired"), revoked=True)
    person = env.beneficiary("Lucia Neri", address_area="Centro")
    client = env.signed_in("admin")
    page = f"/people/{person['id']}"
    r = post(
        client,
        page,
        page,
        {
            "name": "Lucia Neri Bianchi",
            "timezone": "Europe/Rome",
            "address_area": "Borgo",
            "device_id": revoked,
        },
    )
    assert r.status_code == 422  # type: ignore[attr-defined]
    text = r.text  # type: ignore[attr-defined]
    assert error_of(text, "device_id") == (
        "Questo PC è stato ritirato dal servizio. Scegline un altro."
    )
    assert 'value="Lucia Neri Bianchi"' in text and 'value="Borgo"' in text
    stored = env.stored(person["id"])
    assert stored is not None and stored.name == "Lucia Neri" and stored.address_area == "Centro"

    r = post(
        client,
        page,
        page,
        {"name": "Lucia Neri", "timezone": "Europe/Lisbon", "address_area": "Borgo"},
    )
    assert r.status_code == 303
    stored = env.stored(person["id"])
    assert stored is not None and stored.timezone == "Europe/Lisbon"
    assert stored.address_area == "Borgo" and stored.auto_answer is False  # box left empty
    (entry,) = [e for e in env.audit("beneficiary.update") if e.object_id == str(person["id"])]
    assert entry.data["timezone"] == ["Europe/Rome", "Europe/Lisbon"]


def test_caregivers_primary_and_removal_through_the_page(env: Env) -> None:
    person = env.beneficiary(env.tag("Franca Rossi"))
    pid = person["id"]
    client = env.signed_in("coordinator")
    for who in ("anna", "bruno"):
        r = post(
            client,
            f"/people/{pid}/caregivers",
            f"/people/{pid}",
            {"user_id": str(env.user_ids[who])},
        )
        assert r.status_code == 303
    page = client.get(f"/people/{pid}").text
    assert f'Rendi principale<span class="visually-hidden"> Bruno {env.n}' in page

    bruno = env.user_ids["bruno"]
    r = post(client, f"/people/{pid}/caregivers/{bruno}/primary", f"/people/{pid}", {})
    assert r.status_code == 303
    with env.session() as session:
        primary = session.execute(
            select(CaregiverAssignment.user_id).where(
                CaregiverAssignment.beneficiary_id == pid, CaregiverAssignment.primary.is_(True)
            )
        ).scalars()
        assert list(primary) == [bruno]

    anna = env.user_ids["anna"]
    r = post(client, f"/people/{pid}/caregivers/{anna}/remove", f"/people/{pid}", {})
    assert r.status_code == 303
    assert person["name"] not in env.signed_in("anna").get("/care").text
    assert person["name"] in env.signed_in("bruno").get("/care").text

    # Bad choices are named next to the field; nothing is added.
    before = env.count(CaregiverAssignment)
    for value, message in (
        ("", "Scegli un caregiver dall’elenco."),
        (str(env.user_ids["fleet"]), "Questo account non è di un caregiver."),
        (str(bruno), "Questo caregiver segue già questa persona."),
    ):
        r = post(client, f"/people/{pid}/caregivers", f"/people/{pid}", {"user_id": value})
        assert r.status_code in (409, 422)  # type: ignore[attr-defined]
        assert error_of(r.text, "user_id").startswith(message)  # type: ignore[attr-defined]
    r = post(client, f"/people/{pid}/caregivers/{anna}/remove", f"/people/{pid}", {})
    assert r.status_code == 409  # type: ignore[attr-defined]
    assert "Questo caregiver non segue più questa persona" in r.text  # type: ignore[attr-defined]
    assert env.count(CaregiverAssignment) == before
    assert env.audit("caregiver.remove")[0].data == {"user_id": anna, "primary": False}


def test_unknown_beneficiary_is_a_plain_not_found(env: Env) -> None:
    r = env.signed_in("coordinator").get("/people/999999")
    assert r.status_code == 404 and "Questa persona non è nell’elenco" in r.text


# --- accounts ---------------------------------------------------------------------------------


def test_admin_creates_an_account_that_can_log_in(env: Env) -> None:
    client = env.signed_in("admin")
    email = env.tag("giulia.bruni") + "@example.org"
    r = post(
        client,
        "/people/users/new",
        "/people/users/new",
        {
            "email": email,
            "name": "Giulia Bruni",
            "role": "caregiver",
            "locale": "en",
            "password": NEW_PASSWORD,
        },
    )
    assert r.status_code == 303, r.text  # type: ignore[attr-defined]
    listing = client.get("/people/users")
    assert "L’account di Giulia Bruni è pronto" in listing.text
    assert email in listing.text and NEW_PASSWORD not in listing.text
    assert email in client.get("/people/users?role=caregiver").text
    assert email not in client.get("/people/users?role=client").text

    fresh = env.browser()
    assert login(fresh, email, NEW_PASSWORD).status_code == 303
    home = fresh.get("/")
    assert home.headers["content-language"] == "en"  # the language chosen for her
    assert env.audit("user.create")[-1].data["email"] == email


def test_new_account_form_names_each_bad_field(env: Env) -> None:
    client = env.signed_in("admin")
    before = env.count(User)
    r = post(
        client,
        "/people/users/new",
        "/people/users/new",
        {
            "email": "non è una email",
            "name": "",
            "role": "pope",
            "locale": "fr",
            "password": "corta",
        },
    )
    assert r.status_code == 422  # type: ignore[attr-defined]
    text = r.text  # type: ignore[attr-defined]
    assert error_of(text, "email").startswith("Scrivi un indirizzo e-mail valido")
    assert error_of(text, "name") == "Scrivi il nome (al massimo 200 caratteri)."
    assert error_of(text, "role") == "Scegli un ruolo dall’elenco."
    assert error_of(text, "locale") == "Scegli italiano o inglese."
    assert error_of(text, "password") == "La password deve avere almeno 10 caratteri."
    assert 'value="non è una email"' in text and "corta" not in text  # never echoed

    taken = env.emails["anna"].upper()
    r = post(
        client,
        "/people/users/new",
        "/people/users/new",
        {
            "email": taken,
            "name": "Doppia",
            "role": "client",
            "locale": "it",
            "password": NEW_PASSWORD,
        },
    )
    assert r.status_code == 409  # type: ignore[attr-defined]
    assert error_of(r.text, "email") == (  # type: ignore[attr-defined]
        "Esiste già un account con questo indirizzo e-mail."
    )
    assert env.count(User) == before


def test_switching_an_account_off_stops_its_login(env: Env) -> None:
    anna = env.user_ids["anna"]
    client = env.signed_in("admin")
    anna_console = env.signed_in("anna")
    assert anna_console.get("/care").status_code == 200
    r = post(
        client,
        f"/people/users/{anna}",
        f"/people/users/{anna}",
        {"name": "Anna Volontaria", "role": "caregiver", "locale": "it"},  # box left empty
    )
    assert r.status_code == 303
    stored = env.user(anna)
    assert not stored.is_active and stored.name == "Anna Volontaria"
    assert "Disattivato" in client.get("/people/users").text
    # Her open session ends, a new login is refused, her token stops working.
    assert anna_console.get("/care").status_code == 303
    assert login(env.browser(), env.emails["anna"]).status_code == 200
    assert env.client.get("/api/v1/auth/me", headers=env.h("anna")).status_code == 401


def test_account_edit_and_new_password_errors(env: Env) -> None:
    me = env.user_ids["admin"]
    anna = env.user_ids["anna"]
    client = env.signed_in("admin")
    r = post(
        client,
        f"/people/users/{me}",
        f"/people/users/{me}",
        {"name": "Io", "role": "client", "locale": "it"},
    )
    assert r.status_code == 422  # type: ignore[attr-defined]
    text = r.text  # type: ignore[attr-defined]
    assert error_of(text, "role").startswith("Non puoi cambiare il tuo ruolo")
    assert error_of(text, "is_active") == "Non puoi disattivare il tuo account."
    assert env.user(me).name == f"Admin {env.n}"

    page = f"/people/users/{anna}"
    r = post(client, f"{page}/password", page, {"password": "   "})
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert error_of(r.text, "password") == "La password deve avere almeno 10 caratteri."  # type: ignore[attr-defined]
    r = post(client, f"{page}/password", page, {"password": NEW_PASSWORD})
    assert r.status_code == 303
    assert "La nuova password è salvata" in client.get(page).text
    assert login(env.browser(), env.emails["anna"]).status_code == 200  # the old one: refused
    assert login(env.browser(), env.emails["anna"], NEW_PASSWORD).status_code == 303
    assert [e.object_id for e in env.audit("user.password_set")] == [str(anna)]


def test_pages_speak_english_to_english_speakers(env: Env) -> None:
    client = env.signed_in("coordinator")
    token = csrf_from(client.get("/people").text)
    client.post("/lang", data={"lang": "en", "next": "/people", "csrf_token": token})
    r = client.get("/people")
    assert "<h1>Beneficiaries</h1>" in r.text and "Add a beneficiary" in r.text
    r = post(client, "/people/new", "/people/new", {"name": "", "timezone": "Europe/Rome"})
    assert error_of(r.text, "name") == "Write the person's name (at most 200 characters)."  # type: ignore[attr-defined]
    with env.session() as session:
        assert (
            session.execute(
                select(func.count())
                .select_from(User)
                .where(User.locale == "en", User.id == env.user_ids["coordinator"])
            ).scalar_one()
            == 1
        )


def test_care_and_schedule_pages_lead_coordinators_to_the_persons_sheet(env: Env) -> None:
    person = env.beneficiary(env.tag("Elsa Neri"))
    pid = person["id"]
    env.assign(pid, "anna")
    link = f'<a href="/people/{pid}" id="manage-person">PC, chi chiama e dati della persona</a>'
    coordinator = env.signed_in("coordinator")
    for path in (f"/care/people/{pid}", f"/schedules/people/{pid}"):
        page = coordinator.get(path)
        assert page.status_code == 200 and link in page.text, path
    caregiver = env.signed_in("anna")  # sees the person, cannot change who calls
    page = caregiver.get(f"/care/people/{pid}")
    assert page.status_code == 200 and 'id="manage-person"' not in page.text
