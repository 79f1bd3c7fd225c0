"""The console's pages through HTTP: login, throttling, CSRF, language, roles, fleet."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from control_plane.models import Role
from control_plane.web import nav
from control_plane.web.console import LANG_COOKIE
from control_plane.web.i18n import N_
from control_plane.web.sessions import COOKIE_NAME
from tests.web.conftest import (
    PASSWORD,
    ConsoleHarness,
    build_app,
    csrf_from,
    login,
    recently,
)


def _html_lang(html: str) -> str:
    match = re.search(r'<html lang="([a-z]+)">', html)
    assert match, "no <html lang>"
    return match.group(1)


@pytest.fixture
def fleet_manager(harness: ConsoleHarness) -> int:
    return harness.add_user("maria@example.org", Role.FLEET_MANAGER, name="Maria Rossi")


# --- logging in and out --------------------------------------------------------------------


def test_login_success_starts_a_session_and_follows_next(
    client: TestClient, fleet_manager: int
) -> None:
    r = login(client, "maria@example.org", next="/fleet?group=Lecce")
    assert r.status_code == 303
    assert r.headers["location"] == "/fleet?group=Lecce"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    home = client.get("/")
    assert home.status_code == 200
    assert "Maria Rossi" in home.text and "Gestore dei dispositivi" in home.text
    assert "Buongiorno, Maria Rossi!" in home.text or "Buonasera, Maria Rossi!" in home.text


def test_email_is_matched_without_regard_to_case(client: TestClient, fleet_manager: int) -> None:
    assert login(client, "  Maria@Example.ORG ").status_code == 303


def test_login_failure_says_so_plainly(client: TestClient, fleet_manager: int) -> None:
    r = login(client, "maria@example.org", password="wrong")
    assert r.status_code == 200
    assert "E-mail o password sbagliate" in r.text
    assert 'value="maria@example.org"' in r.text  # no retyping the e-mail
    unknown = login(client, "nobody@example.org")
    assert "E-mail o password sbagliate" in unknown.text
    assert client.get("/").status_code == 303  # still nobody logged in


def test_empty_fields_are_named(client: TestClient) -> None:
    assert "Scrivi il tuo indirizzo e-mail" in login(client, "").text
    assert "Scrivi la tua password" in login(client, "maria@example.org", password="").text


def test_inactive_person_cannot_log_in(client: TestClient, harness: ConsoleHarness) -> None:
    harness.add_user("gone@example.org", Role.CAREGIVER, active=False)
    assert "E-mail o password sbagliate" in login(client, "gone@example.org").text


def test_five_failures_then_even_the_right_password_waits(
    client: TestClient, fleet_manager: int
) -> None:
    for _ in range(5):
        assert login(client, "maria@example.org", password="wrong").status_code == 200
    r = login(client, "maria@example.org")
    assert r.status_code == 429
    assert "Troppi tentativi sbagliati. Riprova tra 15 minuti." in r.text
    assert int(r.headers["retry-after"]) > 800
    assert client.get("/").status_code == 303
    # Someone else is not locked out by Maria's typos.
    assert "Troppi" not in login(client, "luca@example.org", password="wrong").text


def test_logout_ends_the_session(client: TestClient, fleet_manager: int) -> None:
    login(client, "maria@example.org")
    home = client.get("/")
    r = client.post("/logout", data={"csrf_token": csrf_from(home.text)})
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    page = client.get("/login")
    assert "Hai chiuso la sessione. A presto!" in page.text
    assert client.get("/").status_code == 303
    # The old page's token died with the session.
    again = client.post("/logout", data={"csrf_token": csrf_from(home.text)})
    assert again.status_code == 403


def test_unauthenticated_page_redirects_to_login_with_next(client: TestClient) -> None:
    r = client.get("/fleet/casa-anna?x=1")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/fleet/casa-anna%3Fx%3D1"
    page = client.get(r.headers["location"])
    assert 'name="next" value="/fleet/casa-anna?x=1"' in page.text


def test_login_never_redirects_off_site(client: TestClient, fleet_manager: int) -> None:
    r = login(client, "maria@example.org", next="https://evil.example/")
    assert r.headers["location"] == "/"
    assert client.get("/login?next=//evil.example/").headers["location"] == "/"


# --- CSRF ----------------------------------------------------------------------------------


def test_post_without_csrf_token_gets_a_plain_403_page(
    client: TestClient, fleet_manager: int
) -> None:
    client.get("/login")
    r = client.post("/login", data={"email": "maria@example.org", "password": PASSWORD})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert "Questa pagina è scaduta" in r.text and "ricarica la pagina" in r.text
    assert client.get("/").status_code == 303  # not logged in


def test_post_with_a_token_from_another_session_is_refused(
    harness: ConsoleHarness, fleet_manager: int
) -> None:
    with TestClient(harness.app) as other:
        foreign = csrf_from(other.get("/login").text)
    with TestClient(harness.app, follow_redirects=False) as client:
        client.get("/login")
        r = client.post(
            "/login",
            data={"email": "maria@example.org", "password": PASSWORD, "csrf_token": foreign},
        )
        assert r.status_code == 403


def test_api_calls_with_the_cookie_need_the_csrf_header(
    client: TestClient, fleet_manager: int
) -> None:
    login(client, "maria@example.org")
    me = client.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["email"] == "maria@example.org"
    refused = client.post("/api/v1/devices", json={"id": "casa-zeta"})
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.json()["detail"]
    token = csrf_from(client.get("/").text)
    created = client.post(
        "/api/v1/devices", json={"id": "casa-zeta"}, headers={"X-CSRF-Token": token}
    )
    assert created.status_code == 201, created.text


# --- language ------------------------------------------------------------------------------


def test_italian_by_default(client: TestClient) -> None:
    r = client.get("/login")
    assert _html_lang(r.text) == "it"
    assert "Entra" in r.text and "Indirizzo e-mail" in r.text
    assert r.headers["content-language"] == "it"


def test_browser_language_is_honoured(client: TestClient) -> None:
    r = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert _html_lang(r.text) == "en" and "E-mail address" in r.text


def test_switch_to_english_and_back(client: TestClient, harness: ConsoleHarness) -> None:
    page = client.get("/login")
    r = client.post(
        "/lang", data={"lang": "en", "next": "/login", "csrf_token": csrf_from(page.text)}
    )
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert f"{LANG_COOKIE}=en" in r.headers["set-cookie"]
    english = client.get("/login")
    assert _html_lang(english.text) == "en" and "Log in" in english.text
    # Chosen on the login page, kept after logging in.
    user_id = harness.add_user("luca@example.org", Role.CAREGIVER)
    login(client, "luca@example.org")
    assert harness.user(user_id).locale == "en"
    home = client.get("/")
    assert _html_lang(home.text) == "en"
    client.post("/lang", data={"lang": "it", "next": "/", "csrf_token": csrf_from(home.text)})
    assert harness.user(user_id).locale == "it"
    assert _html_lang(client.get("/").text) == "it"


def test_unknown_language_is_refused_by_name(client: TestClient) -> None:
    page = client.get("/login")
    r = client.post("/lang", data={"lang": "fr", "csrf_token": csrf_from(page.text)})
    assert r.status_code == 400 and "lang:" in r.text


# --- roles and the home page ---------------------------------------------------------------


def test_caregiver_gets_a_plain_403_on_the_fleet(
    client: TestClient, harness: ConsoleHarness
) -> None:
    harness.add_user("anna@example.org", Role.CAREGIVER, name="Anna")
    login(client, "anna@example.org")
    for path in ("/fleet", "/fleet/casa-anna", "/fleet/_rows"):
        r = client.get(path)
        assert r.status_code == 403, path
        assert "Non hai accesso a questa pagina" in r.text
        assert "Traceback" not in r.text
    home = client.get("/")
    assert 'href="/fleet"' not in home.text
    # What a caregiver does get: the pages registered for their role.
    assert all(item.path != "/fleet" for item in nav.nav_for(Role.CAREGIVER.value))


@pytest.mark.parametrize("role", [Role.FLEET_MANAGER, Role.TECHNICIAN, Role.ADMIN])
def test_fleet_roles_see_the_fleet_card(
    client: TestClient, harness: ConsoleHarness, role: Role
) -> None:
    harness.add_user("p@example.org", role)
    login(client, "p@example.org")
    home = client.get("/")
    assert 'href="/fleet"' in home.text and "Dispositivi" in home.text
    assert client.get("/fleet").status_code == 200


@pytest.fixture
def registered_page() -> Iterator[None]:
    nav.register_nav("/appointments", N_("Devices"), [Role.CAREGIVER], order=10)
    yield
    nav.unregister_nav("/appointments")


def test_feature_pages_join_the_nav_without_touching_the_layout(
    client: TestClient, harness: ConsoleHarness, registered_page: None
) -> None:
    harness.add_user("anna@example.org", Role.CAREGIVER)
    login(client, "anna@example.org")
    assert 'href="/appointments"' in client.get("/").text


def test_the_menu_marks_the_most_specific_entry_only() -> None:
    items = [
        nav.NavItem(path=p, label_msgid=p, roles=frozenset({Role.ADMIN.value}))
        for p in ("/people", "/people/users", "/market/search")
    ]
    assert nav.current_nav(items, "/people/users/3") == "/people/users"
    assert nav.current_nav(items, "/people/7") == "/people"
    assert nav.current_nav(items, "/people") == "/people"
    assert nav.current_nav(items, "/peoplex") is None
    assert nav.current_nav(items, "/") is None


def test_register_nav_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="path"):
        nav.register_nav("https://x", "Label", [Role.ADMIN])
    with pytest.raises(ValueError, match="roles"):
        nav.register_nav("/x", "Label", ["astronaut"])


def test_pages_carry_security_headers(client: TestClient) -> None:
    r = client.get("/login")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


# --- the fleet -----------------------------------------------------------------------------


@pytest.fixture
def fleet(harness: ConsoleHarness, client: TestClient, fleet_manager: int) -> ConsoleHarness:
    harness.add_device("casa-anna", name="Anna Bianchi", group="Lecce", last_seen=recently(3))
    harness.add_device(
        "casa-bruno",
        name="Bruno Verdi",
        group="Bari",
        online=True,
        last_seen=recently(0),
        rejected_count=2,
    )
    harness.add_device("casa-carla", group="Lecce", online=True, last_seen=recently(120))
    login(client, "maria@example.org")
    return harness


def _row(html: str, device_id: str) -> str:
    match = re.search(rf'<tr id="device-{device_id}".*?</tr>', html, re.S)
    assert match, f"no row for {device_id}"
    return match.group(0)


def test_fleet_lists_every_device_with_words_not_only_colours(
    client: TestClient, fleet: ConsoleHarness
) -> None:
    html = client.get("/fleet").text
    anna = _row(html, "casa-anna")
    assert "Anna Bianchi" in anna and "Lecce" in anna
    assert "Non in linea" in anna and "3 minuti fa" in anna
    bruno = _row(html, "casa-bruno")
    assert (
        ">In linea</span>" in bruno
        and "adesso" in bruno
        and '<strong class="warn">2</strong>' in bruno
    )
    assert "2 ore fa" in _row(html, "casa-carla")
    assert "3 dispositivi" in html and "2 in linea" in html and "1 non in linea" in html


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("group=Lecce", {"casa-anna", "casa-carla"}),
        ("online=true", {"casa-bruno", "casa-carla"}),
        ("online=false", {"casa-anna"}),
        ("group=Lecce&online=true", {"casa-carla"}),
        ("group=Nowhere", set()),
    ],
)
def test_fleet_filters(
    client: TestClient, fleet: ConsoleHarness, query: str, shown: set[str]
) -> None:
    html = client.get(f"/fleet?{query}").text
    assert set(re.findall(r'<tr id="device-([a-z0-9-]+)"', html)) == shown
    # The live region polls the same filter.
    assert f'data-live-src="/fleet/_rows?{query}"' in html.replace("&amp;", "&")


def test_bad_filter_is_named(client: TestClient, fleet: ConsoleHarness) -> None:
    r = client.get("/fleet?online=maybe")
    assert r.status_code == 400 and "online:" in r.text
    assert "page:" in client.get("/fleet?page=0").text
    assert client.get("/fleet?page=99999999999999999999999").status_code == 400


def test_fleet_pages_through_many_devices(client: TestClient, fleet: ConsoleHarness) -> None:
    fleet.console.page_size = 2
    first = client.get("/fleet").text
    assert len(re.findall(r'<tr id="device-', first)) == 2
    assert "Pagina 1 di 2" in first and 'href="/fleet?page=2"' in first
    second = client.get("/fleet?page=2").text
    assert re.findall(r'<tr id="device-([a-z0-9-]+)"', second) == [
        "casa-carla"
    ]  # by group, then id


def test_live_fragment_is_the_rows_alone(client: TestClient, fleet: ConsoleHarness) -> None:
    r = client.get("/fleet/_rows?online=true", headers={"X-Live": "1"})
    assert r.status_code == 200
    assert "<html" not in r.text
    assert set(re.findall(r'<tr id="device-([a-z0-9-]+)"', r.text)) == {"casa-bruno", "casa-carla"}


def test_live_fragment_when_logged_out_is_a_status(
    client: TestClient, fleet: ConsoleHarness
) -> None:
    client.cookies.clear()
    r = client.get("/fleet/_rows", headers={"X-Live": "1"})
    assert r.status_code == 401


def test_device_page_shows_state_readings_and_twin(
    client: TestClient, fleet: ConsoleHarness
) -> None:
    fleet.update_device(
        "casa-anna",
        boot_reason="rtc",
        agent_version="0.1.0",
        last_telemetry={
            "ts": 1_741_784_700.0,
            "metrics": {"cpu.percent": 42.4, "mem.total_bytes": 4e9, "smart.ok": 1.0},
            "errors": {"battery": "no battery"},
        },
        last_telemetry_at=recently(1),
        reported={
            "v": 1,
            "agent_version": "0.1.0",
            "armed_alarm": 1_741_784_700.0,
            "vpn": {"public_key": "abc=", "state": "up", "rx_bytes": 2_000_000},
            "config": {},
        },
    )
    r = client.get("/fleet/casa-anna")
    assert r.status_code == 200
    html = r.text
    assert "<h1>Anna Bianchi</h1>" in html
    assert "la sua sveglia, come previsto" in html
    assert re.search(r"Processore in uso</th><td>42 %</td>", html)
    assert re.search(r"Memoria</th><td>4,0 GB</td>", html)
    assert re.search(r"Dischi in salute</th><td>sì</td>", html)
    assert "no battery" in html
    assert re.search(r"vpn.state</th><td>up</td>", html)
    assert re.search(r"vpn.rx_bytes</th><td>2,0 MB</td>", html)
    assert re.search(r"armed_alarm</th><td>12/03/2025 14:05</td>", html)
    assert 'data-live-src="/fleet/casa-anna/_state"' in html
    fragment = client.get("/fleet/casa-anna/_state", headers={"X-Live": "1"})
    assert "Processore in uso" in fragment.text and "<html" not in fragment.text


def test_device_page_without_data(client: TestClient, fleet: ConsoleHarness) -> None:
    html = client.get("/fleet/casa-carla").text
    assert "Nessuna misura ricevuta finora" in html
    assert "Il dispositivo non ha ancora riferito nulla" in html


def test_unknown_device_is_a_plain_404(client: TestClient, fleet: ConsoleHarness) -> None:
    r = client.get("/fleet/casa-nessuno")
    assert r.status_code == 404
    assert "Non esiste un dispositivo chiamato casa-nessuno" in r.text


def test_device_name_is_escaped(client: TestClient, fleet: ConsoleHarness) -> None:
    fleet.update_device("casa-anna", name="<script>alert(1)</script>")
    html = client.get("/fleet").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_secure_cookies_over_https(harness: ConsoleHarness) -> None:
    app = build_app(harness.db_url, public_url="https://console.example.org")
    with TestClient(app, base_url="https://testserver") as client:
        r = client.get("/login")
        assert "Secure" in r.headers["set-cookie"]


def test_mistyped_address_gets_a_page_but_the_api_keeps_json(
    client: TestClient, fleet_manager: int
) -> None:
    login(client, "maria@example.org")
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = client.get("/flota", headers=browser)
    assert page.status_code == 404
    assert "Pagina non trovata" in page.text and "Maria Rossi" in page.text
    api = client.get("/api/v1/nothing", headers=browser)
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"
    assert client.get("/flota").headers["content-type"] == "application/problem+json"


def test_reported_twin_flattens_in_key_order() -> None:
    from control_plane.web.routes.fleet import flatten

    twin = {"vpn": {"state": "up", "rx": 1}, "config": {"a.b": True}, "empty": {}, "list": [1, 2]}
    assert flatten(twin) == [
        ("config.a.b", True),
        ("empty", None),
        ("list", [1, 2]),
        ("vpn.rx", 1),
        ("vpn.state", "up"),
    ]
    assert flatten({}) == []
