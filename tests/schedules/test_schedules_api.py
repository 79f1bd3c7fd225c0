"""The schedules API: appointments, edits from a date, exceptions, permissions, publication."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from control_plane.models import AuditEntry
from tests.schedules.conftest import Env

ROME = ZoneInfo("Europe/Rome")


def tomorrow_at(hour: int, minute: int = 0) -> dt.datetime:
    """Tomorrow at this Rome wall-clock time, naive (as the API takes it)."""
    day = dt.datetime.now(ROME).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour, minute))


def occurrences(env: Env, bid: int, start: str, days: int, who: str = "admin") -> list[Any]:
    r = env.client.get(
        f"/api/v1/beneficiaries/{bid}/occurrences",
        params={"start": start, "days": days},
        headers=env.h(who),
    )
    assert r.status_code == 200, r.text
    body: list[Any] = r.json()
    return body


def audit_actions(env: Env) -> list[str]:
    with env.session() as session:
        return list(session.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars())


def test_appointment_is_published_as_wake_windows(env: Env) -> None:
    env.configure(lead_s=90, horizon_days=14)
    bid = env.beneficiary("Maria Rossi", device_id="pc-sched-api-1")
    start = tomorrow_at(10)
    created = env.appointment(
        bid,
        title="Telefonata del mattino",
        start=start.isoformat(),
        duration_min=30,
        rrule="FREQ=DAILY",
        caregiver_ids=[env.user_ids["anna"]],
    )
    assert created["timezone"] == "Europe/Rome" and created["rrule"] == "FREQ=DAILY"

    schedule = env.desired_schedule("pc-sched-api-1")
    assert schedule is not None
    assert schedule["lead_s"] == 90 and schedule["policy"] == "poweroff"
    wakes = schedule["wakes"]
    # Tomorrow through the horizon: 13 or 14 days depending on the time of day now.
    assert 13 <= len(wakes) <= 14
    for wake in wakes:
        begin = dt.datetime.fromtimestamp(wake["start"], ROME)
        assert (begin.hour, begin.minute) == (10, 0)
        assert wake["end"] - wake["start"] == 30 * 60
        assert wake["appointment_ids"] == [str(created["id"])]
    first = dt.datetime.fromtimestamp(wakes[0]["start"], ROME).replace(tzinfo=None)
    assert first == start
    assert "appointment.create" in audit_actions(env)

    # The device's schedule view shows the same plan.
    r = env.client.get("/api/v1/devices/pc-sched-api-1/schedule", headers=env.h("fleet"))
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["published_version"] == schedule["version"]
    assert view["beneficiary_id"] == bid and len(view["next_wakes"]) == 10
    assert view["findings"] == []  # offline since ever: nothing stale to say yet


def test_dst_both_ways_through_the_api(env: Env) -> None:
    bid = env.beneficiary("Giuseppe Bianchi")
    created = env.appointment(
        bid,
        start="2024-03-25T10:00:00",
        duration_min=20,
        rrule="RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR",
    )
    assert created["rrule"] == "FREQ=WEEKLY;BYDAY=MO,WE,FR"  # canonical form
    spring = occurrences(env, bid, "2024-03-25T00:00:00+01:00", 8)
    assert [o["local_start"] for o in spring] == [
        "2024-03-25T10:00:00",
        "2024-03-27T10:00:00",
        "2024-03-29T10:00:00",
        "2024-04-01T10:00:00",
    ]
    # 10:00 stays 10:00: one hour earlier in UTC after the clocks went forward on 31 March.
    assert [o["start"][11:16] for o in spring] == ["09:00", "09:00", "09:00", "08:00"]
    autumn = occurrences(env, bid, "2024-10-25T00:00:00+02:00", 4)
    assert [o["local_start"][11:16] for o in autumn] == ["10:00", "10:00"]
    assert [o["start"][11:16] for o in autumn] == ["08:00", "09:00"]


def test_edit_from_a_date_splits_the_series(env: Env) -> None:
    bid = env.beneficiary("Lucia Verdi")
    first = env.appointment(bid, start="2024-05-06T10:00:00", duration_min=30, rrule="FREQ=DAILY")
    r = env.client.patch(
        f"/api/v1/appointments/{first['id']}",
        json={"effective_from": "2024-05-09", "start": "2024-05-09T11:30:00"},
        headers=env.h("anna"),
    )
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["id"] != first["id"] and second["previous_id"] == first["id"]
    old = env.client.get(f"/api/v1/appointments/{first['id']}", headers=env.h("anna")).json()
    assert old["until"] == "2024-05-08"
    found = occurrences(env, bid, "2024-05-06T00:00:00+02:00", 6)
    assert [o["local_start"][5:16] for o in found] == [
        "05-06T10:00",
        "05-07T10:00",
        "05-08T10:00",
        "05-09T11:30",
        "05-10T11:30",
        "05-11T11:30",
    ]
    # Without a new start, the split keeps the old time from the first occurrence on that day.
    r = env.client.patch(
        f"/api/v1/appointments/{second['id']}",
        json={"effective_from": "2024-05-11", "duration_min": 45},
        headers=env.h("admin"),
    )
    assert r.status_code == 200, r.text
    third = r.json()
    assert third["start"] == "2024-05-11T11:30:00" and third["duration_min"] == 45
    # In place (no effective_from): the whole series changes.
    r = env.client.patch(
        f"/api/v1/appointments/{first['id']}", json={"title": "Mattino"}, headers=env.h("admin")
    )
    assert r.status_code == 200 and r.json()["title"] == "Mattino"
    assert audit_actions(env).count("appointment.split") == 2
    assert "appointment.update" in audit_actions(env)


def test_ending_and_deleting_appointments(env: Env) -> None:
    bid = env.beneficiary("Antonio Russo", device_id="pc-sched-api-2")
    start = tomorrow_at(9)
    appt = env.appointment(bid, start=start.isoformat(), duration_min=15, rrule="FREQ=DAILY")
    end_from = (start + dt.timedelta(days=3)).date()
    r = env.client.delete(
        f"/api/v1/appointments/{appt['id']}",
        params={"from": end_from.isoformat()},
        headers=env.h("admin"),
    )
    assert r.status_code == 204
    schedule = env.desired_schedule("pc-sched-api-2")
    assert schedule is not None and len(schedule["wakes"]) == 3
    r = env.client.delete(f"/api/v1/appointments/{appt['id']}", headers=env.h("admin"))
    assert r.status_code == 204
    schedule = env.desired_schedule("pc-sched-api-2")
    assert schedule is not None and schedule["wakes"] == []
    r = env.client.get(f"/api/v1/appointments/{appt['id']}", headers=env.h("admin"))
    assert r.status_code == 404
    assert audit_actions(env)[-2:] == ["appointment.end", "appointment.delete"]


def test_exceptions_skip_days(env: Env) -> None:
    bid = env.beneficiary("Rosa Esposito", device_id="pc-sched-api-3")
    start = tomorrow_at(10)
    morning = env.appointment(bid, start=start.isoformat(), duration_min=30, rrule="FREQ=DAILY")
    evening = env.appointment(
        bid, start=start.replace(hour=18).isoformat(), duration_min=30, rrule="FREQ=DAILY"
    )
    before = env.desired_schedule("pc-sched-api-3")
    assert before is not None
    count = len(before["wakes"])

    holiday = (start + dt.timedelta(days=1)).date()
    r = env.client.post(
        f"/api/v1/beneficiaries/{bid}/schedule-exceptions",
        json={"first_day": holiday.isoformat(), "reason": "Ferragosto"},
        headers=env.h("anna"),
    )
    assert r.status_code == 201, r.text
    holiday_id = r.json()["id"]
    stay_from = (start + dt.timedelta(days=3)).date()
    r = env.client.post(
        f"/api/v1/beneficiaries/{bid}/schedule-exceptions",
        json={
            "first_day": stay_from.isoformat(),
            "last_day": (stay_from + dt.timedelta(days=2)).isoformat(),
            "reason": "ricovero",
            "appointment_id": evening["id"],
        },
        headers=env.h("coordinator"),
    )
    assert r.status_code == 201, r.text
    after = env.desired_schedule("pc-sched-api-3")
    assert after is not None and after["version"] > before["version"]
    days = [dt.datetime.fromtimestamp(w["start"], ROME) for w in after["wakes"]]
    assert holiday not in {d.date() for d in days}
    stay = {stay_from + dt.timedelta(days=i) for i in range(3)}
    assert all(d.hour == 10 for d in days if d.date() in stay)  # mornings kept
    assert len(after["wakes"]) == count - 2 - 3
    assert str(morning["id"]) in after["wakes"][0]["appointment_ids"]

    r = env.client.delete(f"/api/v1/schedule-exceptions/{holiday_id}", headers=env.h("anna"))
    assert r.status_code == 204
    restored = env.desired_schedule("pc-sched-api-3")
    assert restored is not None and len(restored["wakes"]) == count - 3
    listed = env.client.get(
        f"/api/v1/beneficiaries/{bid}/schedule-exceptions", headers=env.h("anna")
    ).json()
    assert [e["reason"] for e in listed] == ["ricovero"]


def test_overlapping_appointments_merge_into_one_wake(env: Env) -> None:
    bid = env.beneficiary("Carla Neri", device_id="pc-sched-api-4", carers=("anna", "bruno"))
    start = tomorrow_at(10)
    a = env.appointment(bid, start=start.isoformat(), duration_min=30)
    b = env.appointment(
        bid,
        who="bruno",
        start=(start + dt.timedelta(minutes=20)).isoformat(),
        duration_min=30,
    )
    assert b["caregiver_ids"] == [env.user_ids["bruno"]]  # the caregiver who made it
    schedule = env.desired_schedule("pc-sched-api-4")
    assert schedule is not None
    (wake,) = schedule["wakes"]
    assert wake["end"] - wake["start"] == 50 * 60
    assert wake["appointment_ids"] == [str(a["id"]), str(b["id"])]


def test_permissions(env: Env) -> None:
    mine = env.beneficiary("Assistita di Anna", carers=("anna",))
    theirs = env.beneficiary("Assistito di Bruno", carers=("bruno",))
    start = tomorrow_at(10).isoformat()
    appt = env.appointment(theirs, who="bruno", start=start, duration_min=30)

    # A caregiver works only with the people assigned to them; the others do not exist.
    assert env.appointment(mine, who="anna", start=start, duration_min=30)["id"]
    for method, path in [
        ("GET", f"/api/v1/beneficiaries/{theirs}/appointments"),
        ("POST", f"/api/v1/beneficiaries/{theirs}/appointments"),
        ("GET", f"/api/v1/appointments/{appt['id']}"),
        ("PATCH", f"/api/v1/appointments/{appt['id']}"),
        ("DELETE", f"/api/v1/appointments/{appt['id']}"),
        ("GET", f"/api/v1/beneficiaries/{theirs}/schedule-exceptions"),
        ("GET", f"/api/v1/beneficiaries/{theirs}/wakes"),
    ]:
        body = {"start": start, "duration_min": 30} if method in ("POST", "PATCH") else None
        r = env.client.request(method, path, json=body, headers=env.h("anna"))
        assert r.status_code == 404, (method, path, r.text)
    # Roles that do not work with appointments are refused outright.
    for who in ("fleet", "tech", "trainee"):
        r = env.client.get(f"/api/v1/beneficiaries/{mine}/appointments", headers=env.h(who))
        assert r.status_code == 403, who
        assert r.headers["content-type"] == "application/problem+json"
    # The agenda: Anna sees her person only; the coordinator everyone.
    names = {o["beneficiary_name"] for o in agenda(env, "anna")}
    assert names == {"Assistita di Anna"}
    assert {o["beneficiary_name"] for o in agenda(env, "coordinator")} >= {
        "Assistita di Anna",
        "Assistito di Bruno",
    }
    assert agenda(env, "bruno", mine=True)[0]["caregiver_ids"] == [env.user_ids["bruno"]]
    # Device wake state: fleet people yes, caregivers no; the policy: technicians, not fleet
    # viewers without the right.
    env.device("pc-sched-api-5")
    assert (
        env.client.get("/api/v1/devices/pc-sched-api-5/schedule", headers=env.h("anna")).status_code
        == 403
    )
    r = env.client.put(
        "/api/v1/devices/pc-sched-api-5/wake-profile",
        json={"policy": "suspend"},
        headers=env.h("coordinator"),
    )
    assert r.status_code == 403


def agenda(env: Env, who: str, *, mine: bool = False) -> list[Any]:
    r = env.client.get(
        "/api/v1/agenda",
        params={"days": 3, "mine": str(mine).lower()},
        headers=env.h(who),
    )
    assert r.status_code == 200, r.text
    body: list[Any] = r.json()
    return body


def test_bad_input_names_the_field(env: Env) -> None:
    bid = env.beneficiary("Elena Gallo", carers=("anna",))
    url = f"/api/v1/beneficiaries/{bid}/appointments"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"start": "2024-05-06T10:00:00+02:00", "duration_min": 30}, "start: give the local time"),
        ({"start": "2024-05-06T10:00:00", "duration_min": 30, "rrule": "FREQ=HOURLY"}, "rrule:"),
        (
            {
                "start": "2024-05-06T10:00:00",
                "duration_min": 30,
                "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            },
            "rrule: the rule never occurs",
        ),
        (
            {
                "start": "2024-05-06T10:00:00",
                "duration_min": 30,
                "caregiver_ids": [env.user_ids["bruno"]],
            },
            "caregiver_ids[0]: user",
        ),
        (
            {
                "start": "2024-05-06T10:00:00",
                "duration_min": 30,
                "rrule": "FREQ=DAILY",
                "until": "2024-05-01",
            },
            "until:",
        ),
        ({"start": "2024-05-06T10:00:00", "duration_min": 0}, "duration_min"),
    ]
    for body, expected in cases:
        r = env.client.post(url, json=body, headers=env.h("anna"))
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert expected in r.text, (expected, r.text)
    one_off = env.appointment(bid, start="2024-05-06T10:00:00", duration_min=30)
    r = env.client.patch(
        f"/api/v1/appointments/{one_off['id']}",
        json={"effective_from": "2024-06-01", "duration_min": 20},
        headers=env.h("anna"),
    )
    assert r.status_code == 422 and "effective_from" in r.text
    r = env.client.post(
        f"/api/v1/beneficiaries/{bid}/schedule-exceptions",
        json={"first_day": "2024-05-06", "last_day": "2024-05-01"},
        headers=env.h("anna"),
    )
    assert r.status_code == 422 and "last_day" in r.text


def test_wake_profile_policy_is_published(env: Env) -> None:
    bid = env.beneficiary("Franco Galli", device_id="pc-sched-api-6")
    env.appointment(bid, start=tomorrow_at(10).isoformat(), duration_min=30, rrule="FREQ=DAILY")
    r = env.client.put(
        "/api/v1/devices/pc-sched-api-6/wake-profile",
        json={"policy": "suspend"},
        headers=env.h("tech"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["policy"] == "suspend"
    schedule = env.desired_schedule("pc-sched-api-6")
    assert schedule is not None and schedule["policy"] == "suspend"
    assert "wake_profile.set" in audit_actions(env)
