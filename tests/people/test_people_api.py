"""The people API: accounts, beneficiaries, their PC and caregivers; who may do what."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from control_plane.models import ApiToken, Beneficiary, CaregiverAssignment, Device, User
from control_plane.security import token_hash
from tests.people.conftest import Env
from tests.web.conftest import login

ROME = ZoneInfo("Europe/Rome")
NEW_PASSWORD = "a-long-enough-secret"


def fields(r: Any) -> set[str]:
    """The fields a problem+json answer names."""
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return {e["field"] for e in r.json()["errors"]}


def agenda_names(env: Env, who: str) -> list[str]:
    r = env.client.get("/api/v1/care/agenda", headers=env.h(who))
    assert r.status_code == 200, r.text
    return [row["name"] for row in r.json()["rows"]]


# --- who may do what ------------------------------------------------------------------------

ROLES = ["admin", "coordinator", "anna", "bruno", "fleet", "worker", "client"]


def _calls(env: Env, bid: int) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    anna = env.user_ids["anna"]
    return {
        "list users": ("GET", "/api/v1/users", None),
        "create user": (
            "POST",
            "/api/v1/users",
            {
                "email": env.tag("new") + "@example.org",
                "name": "Nuovo",
                "role": "caregiver",
                "password": NEW_PASSWORD,
            },
        ),
        "get user": ("GET", f"/api/v1/users/{anna}", None),
        "update user": ("PATCH", f"/api/v1/users/{anna}", {"locale": "it"}),
        "set password": ("PUT", f"/api/v1/users/{anna}/password", {"password": NEW_PASSWORD}),
        "caregivers": ("GET", "/api/v1/caregivers", None),
        "list beneficiaries": ("GET", "/api/v1/beneficiaries", None),
        "create beneficiary": ("POST", "/api/v1/beneficiaries", {"name": "Qualcuno"}),
        "get beneficiary": ("GET", f"/api/v1/beneficiaries/{bid}", None),
        "update beneficiary": ("PATCH", f"/api/v1/beneficiaries/{bid}", {"notes": "x"}),
        "unlink device": ("DELETE", f"/api/v1/beneficiaries/{bid}/device", None),
        "list assignments": ("GET", f"/api/v1/beneficiaries/{bid}/caregivers", None),
        "assign": ("POST", f"/api/v1/beneficiaries/{bid}/caregivers", {"user_id": anna}),
        "primary": ("PUT", f"/api/v1/beneficiaries/{bid}/caregivers/{anna}/primary", None),
        "remove": ("DELETE", f"/api/v1/beneficiaries/{bid}/caregivers/{anna}", None),
    }


ADMIN_ONLY = {"list users", "create user", "get user", "update user", "set password"}
READS = {"list beneficiaries", "get beneficiary", "list assignments"}


def _expected(who: str, call: str) -> set[int]:
    ok = {200, 201, 204, 409}  # 409: "already assigned" when the call repeats a change
    if who == "admin":
        return ok
    if who == "coordinator":
        return {403} if call in ADMIN_ONLY else ok
    if who == "anna":  # anna is assigned to the beneficiary: she may read, nothing more
        return {200} if call in READS else {403}
    if who == "bruno":  # a caregiver not assigned: an empty list, nothing else
        return {200} if call == "list beneficiaries" else {403}
    return {403}


@pytest.mark.parametrize("who", ROLES)
def test_each_role_reaches_only_its_endpoints(env: Env, who: str) -> None:
    person = env.beneficiary("Persona Di Prova")
    env.assign(person["id"], "anna")
    for call, (method, path, body) in _calls(env, person["id"]).items():
        r = env.client.request(method, path, json=body, headers=env.h(who))
        assert r.status_code in _expected(who, call), f"{who} {call}: {r.status_code} {r.text}"
    # Without a token, nobody gets anything.
    for method, path, body in _calls(env, person["id"]).values():
        assert env.client.request(method, path, json=body).status_code == 401


def test_caregiver_lists_only_their_own_people(env: Env) -> None:
    mine = env.beneficiary("Maria Rossi")
    other = env.beneficiary("Giuseppe Bianchi")
    env.assign(mine["id"], "anna")
    r = env.client.get("/api/v1/beneficiaries", headers=env.h("anna"))
    assert r.status_code == 200
    assert [b["id"] for b in r.json()] == [mine["id"]]
    assert env.client.get("/api/v1/beneficiaries", headers=env.h("bruno")).json() == []
    assert (
        env.client.get(f"/api/v1/beneficiaries/{other['id']}", headers=env.h("anna")).status_code
        == 403
    )
    # Coordinators see everyone.
    r = env.client.get("/api/v1/beneficiaries", headers=env.h("coordinator"))
    assert {mine["id"], other["id"]} <= {b["id"] for b in r.json()}


# --- accounts ---------------------------------------------------------------------------------


def test_created_account_logs_in_and_never_shows_its_hash(env: Env) -> None:
    email = env.tag("Lucia.Verdi") + "@Example.org"
    r = env.client.post(
        "/api/v1/users",
        json={
            "email": email,
            "name": "Lucia Verdi",
            "role": "caregiver",
            "locale": "en",
            "password": NEW_PASSWORD,
        },
        headers=env.h("admin"),
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert "password" not in r.text and "scrypt" not in r.text
    assert created["email"] == email.lower() and created["locale"] == "en"
    assert created["role"] == "caregiver" and created["is_active"] is True

    token = env.client.post(
        "/api/v1/auth/token", json={"email": email.lower(), "password": NEW_PASSWORD}
    )
    assert token.status_code == 200, token.text
    me = env.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.json()["id"] == created["id"] and me.json()["role"] == "caregiver"

    # Listing never shows a hash either, and filters by role and state.
    listed = env.client.get("/api/v1/users?role=caregiver&active=true", headers=env.h("admin"))
    assert listed.status_code == 200 and "scrypt" not in listed.text
    assert all(u["role"] == "caregiver" and u["is_active"] for u in listed.json())
    assert created["id"] in {u["id"] for u in listed.json()}

    # The same address in other letters is the same person: refused, naming the field.
    again = env.client.post(
        "/api/v1/users",
        json={"email": email.upper(), "name": "X", "role": "client", "password": NEW_PASSWORD},
        headers=env.h("admin"),
    )
    assert again.status_code == 409 and fields(again) == {"email"}
    (entry,) = [e for e in env.audit("user.create") if e.object_id == str(created["id"])]
    assert entry.actor_id == env.user_ids["admin"] and NEW_PASSWORD not in str(entry.data)


def test_bad_account_fields_are_named_and_nothing_is_saved(env: Env) -> None:
    before = env.count(User)
    r = env.client.post(
        "/api/v1/users",
        json={
            "email": "not-an-address",
            "name": "   ",
            "role": "caregiver",
            "locale": "fr",
            "password": "short",
        },
        headers=env.h("admin"),
    )
    assert r.status_code == 422
    assert fields(r) == {"email", "name", "locale", "password"}
    r = env.client.post(
        "/api/v1/users",
        json={"email": "x@example.org", "name": "X", "role": "pope", "password": NEW_PASSWORD},
        headers=env.h("admin"),
    )
    assert r.status_code == 422 and fields(r) == {"role"}
    r = env.client.post(
        "/api/v1/users",
        json={
            "email": env.tag("same") + "@example.org",
            "name": "X",
            "role": "client",
            "password": env.tag("same") + "@example.org",
        },
        headers=env.h("admin"),
    )
    assert r.status_code == 422 and fields(r) == {"password"}
    assert env.count(User) == before

    anna = env.user_ids["anna"]
    r = env.client.patch(
        f"/api/v1/users/{anna}", json={"name": "", "locale": "de"}, headers=env.h("admin")
    )
    assert r.status_code == 422 and fields(r) == {"name", "locale"}
    assert env.user(anna).name == f"Anna {env.n}" and env.user(anna).locale == "it"
    r = env.client.put(
        f"/api/v1/users/{anna}/password", json={"password": "123"}, headers=env.h("admin")
    )
    assert r.status_code == 422 and fields(r) == {"password"}
    assert env.client.get("/api/v1/users/999999", headers=env.h("admin")).status_code == 404


def test_deactivated_account_loses_login_and_tokens(env: Env) -> None:
    anna = env.user_ids["anna"]
    assert env.client.get("/api/v1/auth/me", headers=env.h("anna")).status_code == 200
    r = env.client.patch(f"/api/v1/users/{anna}", json={"is_active": False}, headers=env.h("admin"))
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert env.client.get("/api/v1/auth/me", headers=env.h("anna")).status_code == 401
    token = env.client.post(
        "/api/v1/auth/token", json={"email": env.emails["anna"], "password": "pw-secret-1"}
    )
    assert token.status_code == 401
    console = env.browser()
    assert login(console, env.emails["anna"]).status_code == 200  # the form again, refused
    (entry,) = [e for e in env.audit("user.update") if e.object_id == str(anna)]
    assert entry.data == {"is_active": [True, False]}

    # Switched on again, the same token works again.
    env.client.patch(f"/api/v1/users/{anna}", json={"is_active": True}, headers=env.h("admin"))
    assert env.client.get("/api/v1/auth/me", headers=env.h("anna")).status_code == 200


def test_an_admin_cannot_lock_themselves_out(env: Env) -> None:
    me = env.user_ids["admin"]
    r = env.client.patch(f"/api/v1/users/{me}", json={"is_active": False}, headers=env.h("admin"))
    assert r.status_code == 422 and fields(r) == {"is_active"}
    r = env.client.patch(f"/api/v1/users/{me}", json={"role": "client"}, headers=env.h("admin"))
    assert r.status_code == 422 and fields(r) == {"role"}
    stored = env.user(me)
    assert stored.is_active and stored.role == "admin"


def test_new_password_replaces_the_old_one(env: Env) -> None:
    anna = env.user_ids["anna"]
    # Anna's program logs in (her e-mail in other capitals is the same address).
    shouted = {"email": env.emails["anna"].upper(), "password": "pw-secret-1"}
    r = env.client.post("/api/v1/auth/token", json=shouted)
    assert r.status_code == 200, r.text
    program = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert env.client.get("/api/v1/auth/me", headers=program).status_code == 200
    r = env.client.put(
        f"/api/v1/users/{anna}/password", json={"password": NEW_PASSWORD}, headers=env.h("admin")
    )
    assert r.status_code == 204
    old = {"email": env.emails["anna"], "password": "pw-secret-1"}
    assert env.client.post("/api/v1/auth/token", json=old).status_code == 401
    new = {"email": env.emails["anna"], "password": NEW_PASSWORD}
    assert env.client.post("/api/v1/auth/token", json=new).status_code == 200
    # The tokens made with the old password stopped with it.
    assert env.client.get("/api/v1/auth/me", headers=program).status_code == 401
    (entry,) = [e for e in env.audit("user.password_set") if e.object_id == str(anna)]
    assert entry.actor_id == env.user_ids["admin"]
    assert entry.data["tokens_revoked"] >= 1


# --- beneficiaries and their PC -------------------------------------------------------------------


def test_a_pc_belongs_to_one_beneficiary_and_the_holder_is_named(env: Env) -> None:
    pc = env.device(env.tag("pc-maria"), online=True)
    maria = env.beneficiary(
        "Maria Rossi", device_id=pc, address_area="Quartiere San Paolo", timezone="Europe/Rome"
    )
    assert maria["device_id"] == pc and maria["device"]["online"] is True
    assert maria["address_area"] == "Quartiere San Paolo" and maria["auto_answer"] is True

    before = env.count(Beneficiary)
    r = env.client.post(
        "/api/v1/beneficiaries",
        json={"name": "Giuseppe Bianchi", "device_id": pc},
        headers=env.h("coordinator"),
    )
    assert r.status_code == 409 and fields(r) == {"device_id"}
    assert "Maria Rossi" in r.json()["detail"] and str(maria["id"]) in r.json()["detail"]
    assert env.count(Beneficiary) == before

    giuseppe = env.beneficiary("Giuseppe Bianchi")
    r = env.client.patch(
        f"/api/v1/beneficiaries/{giuseppe['id']}",
        json={"device_id": pc, "notes": "non salvare"},
        headers=env.h("coordinator"),
    )
    assert r.status_code == 409 and "Maria Rossi" in r.json()["detail"]
    stored = env.stored(giuseppe["id"])
    assert stored is not None and stored.device_id is None and stored.notes == ""

    # Unlinked from Maria, the PC is free for Giuseppe.
    r = env.client.delete(
        f"/api/v1/beneficiaries/{maria['id']}/device", headers=env.h("coordinator")
    )
    assert r.status_code == 200 and r.json()["device_id"] is None
    r = env.client.patch(
        f"/api/v1/beneficiaries/{giuseppe['id']}",
        json={"device_id": pc},
        headers=env.h("coordinator"),
    )
    assert r.status_code == 200 and r.json()["device"]["id"] == pc
    actions = [(e.action, e.object_id) for e in env.audit("beneficiary.update")]
    assert ("beneficiary.update", str(maria["id"])) in actions
    assert ("beneficiary.update", str(giuseppe["id"])) in actions
    assert [e.object_id for e in env.audit("beneficiary.create")] == [
        str(maria["id"]),
        str(giuseppe["id"]),
    ]


def test_unknown_and_revoked_pcs_are_refused(env: Env) -> None:
    revoked = env.device(env.tag("pc-old"), revoked=True)
    before = env.count(Beneficiary)
    for device_id in (revoked, env.tag("pc-nowhere")):
        r = env.client.post(
            "/api/v1/beneficiaries",
            json={"name": "Anna Neri", "device_id": device_id},
            headers=env.h("coordinator"),
        )
        assert r.status_code == 422 and fields(r) == {"device_id"}, r.text
    assert env.count(Beneficiary) == before


def test_bad_beneficiary_fields_are_named_and_nothing_is_saved(env: Env) -> None:
    before = env.count(Beneficiary)
    r = env.client.post(
        "/api/v1/beneficiaries",
        json={"name": " ", "timezone": "Mars/Olympus", "device_id": env.tag("pc-ghost")},
        headers=env.h("coordinator"),
    )
    assert r.status_code == 422 and fields(r) == {"name", "timezone", "device_id"}
    r = env.client.post(
        "/api/v1/beneficiaries",
        json={"name": "X", "notes": "n" * 6000},
        headers=env.h("coordinator"),
    )
    assert r.status_code == 422 and fields(r) == {"notes"}
    assert env.count(Beneficiary) == before

    person = env.beneficiary("Lucia Gialli")
    path = f"/api/v1/beneficiaries/{person['id']}"
    r = env.client.patch(
        path, json={"timezone": "Europe/Atlantis", "name": "Nuovo nome"}, headers=env.h("admin")
    )
    assert r.status_code == 422 and fields(r) == {"timezone"}
    r = env.client.patch(path, json={"name": None}, headers=env.h("admin"))
    assert r.status_code == 422 and fields(r) == {"name"}
    stored = env.stored(person["id"])
    assert stored is not None and stored.name == "Lucia Gialli"
    assert stored.timezone == "Europe/Rome"
    assert env.client.get("/api/v1/beneficiaries/999999", headers=env.h("admin")).status_code == 404


def test_the_pc_follows_the_person_schedule_and_answering(env: Env) -> None:
    pc = env.device(env.tag("pc-wake"))
    person = env.beneficiary("Carla Blu", auto_answer=False)
    day = dt.datetime.now(ROME).date() + dt.timedelta(days=1)
    r = env.client.post(
        f"/api/v1/beneficiaries/{person['id']}/appointments",
        json={"start": f"{day}T10:00:00", "duration_min": 30, "rrule": "FREQ=DAILY"},
        headers=env.h("coordinator"),
    )
    assert r.status_code == 201, r.text

    r = env.client.patch(
        f"/api/v1/beneficiaries/{person['id']}", json={"device_id": pc}, headers=env.h("admin")
    )
    assert r.status_code == 200, r.text
    with env.session() as session:
        device = session.get(Device, pc)
        assert device is not None
        assert len(device.desired["schedule"]["wakes"]) >= 13
        assert device.desired["call"]["auto_answer"] is False

    r = env.client.patch(
        f"/api/v1/beneficiaries/{person['id']}", json={"auto_answer": True}, headers=env.h("admin")
    )
    assert r.status_code == 200
    r = env.client.delete(f"/api/v1/beneficiaries/{person['id']}/device", headers=env.h("admin"))
    assert r.status_code == 200
    with env.session() as session:
        device = session.get(Device, pc)
        assert device is not None
        assert device.desired["schedule"]["wakes"] == []  # it no longer wakes for Carla
        assert device.desired["call"]["auto_answer"] is True


# --- caregivers ----------------------------------------------------------------------------------


def test_assigned_caregiver_sees_the_person_until_removed(env: Env) -> None:
    pc = env.device(env.tag("pc-anna"), online=True)
    person = env.beneficiary("Rosa Bianchi", device_id=pc)
    assert "Rosa Bianchi" not in agenda_names(env, "anna")

    env.assign(person["id"], "anna")
    assert "Rosa Bianchi" in agenda_names(env, "anna")
    assert "Rosa Bianchi" not in agenda_names(env, "bruno")
    r = env.client.get(f"/api/v1/beneficiaries/{person['id']}", headers=env.h("anna"))
    assert r.status_code == 200
    (carer,) = r.json()["caregivers"]
    assert carer["user_id"] == env.user_ids["anna"] and carer["primary"] is True  # the first

    # Bruno becomes the primary one; one primary only.
    r = env.client.post(
        f"/api/v1/beneficiaries/{person['id']}/caregivers",
        json={"user_id": env.user_ids["bruno"], "primary": True},
        headers=env.h("coordinator"),
    )
    assert r.status_code == 201, r.text
    assert [(c["user_id"], c["primary"]) for c in r.json()] == [
        (env.user_ids["bruno"], True),
        (env.user_ids["anna"], False),
    ]
    r = env.client.put(
        f"/api/v1/beneficiaries/{person['id']}/caregivers/{env.user_ids['anna']}/primary",
        headers=env.h("coordinator"),
    )
    assert [c["user_id"] for c in r.json() if c["primary"]] == [env.user_ids["anna"]]

    r = env.client.delete(
        f"/api/v1/beneficiaries/{person['id']}/caregivers/{env.user_ids['anna']}",
        headers=env.h("coordinator"),
    )
    assert r.status_code == 204
    assert "Rosa Bianchi" not in agenda_names(env, "anna")
    assert (
        env.client.get(f"/api/v1/beneficiaries/{person['id']}", headers=env.h("anna")).status_code
        == 403
    )
    for action in ("caregiver.assign", "caregiver.primary", "caregiver.remove"):
        assert any(e.object_id == str(person["id"]) for e in env.audit(action)), action


def test_a_removed_caregiver_leaves_the_persons_appointments(env: Env) -> None:
    person = env.beneficiary("Lina Verdi")
    env.assign(person["id"], "anna")
    env.assign(person["id"], "bruno")
    r = env.client.post(
        f"/api/v1/beneficiaries/{person['id']}/appointments",
        json={
            "start": "2030-03-04T10:00:00",
            "duration_min": 30,
            "rrule": "FREQ=WEEKLY;BYDAY=MO",
            "caregiver_ids": [env.user_ids["anna"], env.user_ids["bruno"]],
        },
        headers=env.h("coordinator"),
    )
    assert r.status_code == 201, r.text
    appointment = r.json()["id"]
    r = env.client.delete(
        f"/api/v1/beneficiaries/{person['id']}/caregivers/{env.user_ids['anna']}",
        headers=env.h("coordinator"),
    )
    assert r.status_code == 204
    r = env.client.get(f"/api/v1/appointments/{appointment}", headers=env.h("coordinator"))
    assert r.json()["caregiver_ids"] == [env.user_ids["bruno"]]
    (entry,) = [e for e in env.audit("caregiver.remove") if e.object_id == str(person["id"])]
    assert entry.data["appointments"] == 1


def test_only_active_caregivers_can_be_assigned(env: Env) -> None:
    person = env.beneficiary("Teresa Viola")
    path = f"/api/v1/beneficiaries/{person['id']}/caregivers"
    for who in ("fleet", "coordinator", "client"):
        r = env.client.post(path, json={"user_id": env.user_ids[who]}, headers=env.h("admin"))
        assert r.status_code == 422 and fields(r) == {"user_id"}, who
    r = env.client.post(path, json={"user_id": 999999}, headers=env.h("admin"))
    assert r.status_code == 422 and fields(r) == {"user_id"}
    r = env.client.post(path, json={"user_id": "anna"}, headers=env.h("admin"))
    assert r.status_code == 422 and fields(r) == {"user_id"}
    env.client.patch(
        f"/api/v1/users/{env.user_ids['bruno']}", json={"is_active": False}, headers=env.h("admin")
    )
    r = env.client.post(path, json={"user_id": env.user_ids["bruno"]}, headers=env.h("admin"))
    assert r.status_code == 422 and "not active" in r.json()["detail"]

    env.assign(person["id"], "anna")
    r = env.client.post(path, json={"user_id": env.user_ids["anna"]}, headers=env.h("admin"))
    assert r.status_code == 409 and fields(r) == {"user_id"}
    with env.session() as session:
        rows = session.execute(
            select(CaregiverAssignment).where(CaregiverAssignment.beneficiary_id == person["id"])
        ).scalars()
        assert [a.user_id for a in rows] == [env.user_ids["anna"]]
    r = env.client.delete(f"{path}/{env.user_ids['bruno']}", headers=env.h("admin"))
    assert r.status_code == 404 and fields(r) == {"user_id"}

    # The list of who may be assigned: active caregivers only.
    listed = env.client.get("/api/v1/caregivers", headers=env.h("coordinator")).json()
    ids = {u["id"] for u in listed}
    assert env.user_ids["anna"] in ids
    assert not ids & {env.user_ids["bruno"], env.user_ids["fleet"]}


def test_tokens_of_a_deactivated_account_are_kept_but_refused(env: Env) -> None:
    """Switching off keeps the token rows (switching on again restores them) but refuses them."""
    env.client.patch(
        f"/api/v1/users/{env.user_ids['bruno']}", json={"is_active": False}, headers=env.h("admin")
    )
    with env.session() as session:
        row = session.execute(
            select(ApiToken).where(ApiToken.token_hash == token_hash(env.tokens["bruno"]))
        ).scalar_one()
        assert row.user_id == env.user_ids["bruno"]
    assert env.client.get("/api/v1/beneficiaries", headers=env.h("bruno")).status_code == 401
