"""The workshop service on SQLite and PostgreSQL: deployment, linking, the impact figures."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from control_plane.devices import create_device
from control_plane.fleet.enrollment import EnrollmentRefused, enroll
from control_plane.models import Beneficiary
from control_plane.workshop import deployment, reports, service, workorders
from control_plane.workshop.errors import WorkshopError
from control_plane.workshop.feature import link_task
from tests.conftest import make_settings
from tests.workshop.service_support import CONFIG, ROME, at, donate, to_ready, user_of
from tests.workshop.workshop_support import Db, Person


def test_deployment_enrolls_through_a_token_and_the_periodic_task_links(
    ws_db: Db, people: dict[str, Person]
) -> None:
    settings = make_settings(ws_db.url, None, public_url="https://cp.example.org")
    beneficiary = ws_db.beneficiary("Ada Bianchi")
    by_hand = ws_db.beneficiary("Bruno Gialli")
    with ws_db.session() as session:
        lead = user_of(session, people["lead"])
        one, two = donate(session, lead, 2.0, 2.5)
        for machine in (one, two):
            to_ready(session, settings, machine, lead, "2026-03-03")
        change = service.change_state(
            session,
            settings,
            CONFIG,
            machine=one,
            to="deployed",
            user=lead,
            beneficiary_id=beneficiary,
            now=at("2026-03-04"),
        )
        assert change.enrollment is not None and change.linked_device is None
        old_secret = change.enrollment.token
        # A technician registered the second PC in the fleet by hand already: linked at once.
        create_device(session, settings, device_id=two.asset_tag.lower())
        direct = service.change_state(
            session,
            settings,
            CONFIG,
            machine=two,
            to="deployed",
            user=lead,
            beneficiary_id=by_hand,
            now=at("2026-03-04"),
        )
        assert direct.enrollment is None and direct.linked_device == two.asset_tag.lower()
        device_one = one.device_id
        assert device_one == one.asset_tag.lower()
    assert ws_db.beneficiary_device(by_hand) == two.asset_tag.lower()

    # The enrollment file got lost: a new token, and the old one stops working.
    with ws_db.session() as session:
        machine = service.get_machine(session, one.asset_tag)
        renewed = deployment.reissue_enrollment(
            session, settings, CONFIG, machine=machine, user=user_of(session, people["tech"])
        )
    with ws_db.session() as session, pytest.raises(EnrollmentRefused):
        enroll(session, settings, secret=old_secret)
    with ws_db.session() as session:
        assert enroll(session, settings, secret=renewed.token).device_id == device_one
    assert ws_db.beneficiary_device(beneficiary) is None  # enrolled, not yet linked
    link_task(ws_db.factory, at("2026-03-05"))
    assert ws_db.beneficiary_device(beneficiary) == device_one
    with ws_db.session() as session:
        machine = service.get_machine(session, one.asset_tag)
        assert machine.device_linked_at is not None
        with pytest.raises(WorkshopError) as already:
            deployment.reissue_enrollment(
                session, settings, CONFIG, machine=machine, user=user_of(session, people["tech"])
            )
        assert already.value.status == 409
        # Linking again changes nothing.
        assert deployment.link_enrolled_devices(session, at("2026-03-06")) == []
        names = session.execute(select(Beneficiary.name, Beneficiary.device_id)).all()
        assert sorted(names) == sorted(
            [("Ada Bianchi", device_one), ("Bruno Gialli", two.asset_tag.lower())]
        )


def test_impact_counts_each_period_from_the_history(ws_db: Db, people: dict[str, Person]) -> None:
    settings = make_settings(ws_db.url, None)
    beneficiary = ws_db.beneficiary("Carla Blu")
    with ws_db.session() as session:
        lead = user_of(session, people["lead"])
        trainee = user_of(session, people["trainee"])
        deployed, sold, recycled, stays = donate(session, lead, 2.0, 1.5, 7.0, None)
        for machine in (deployed, sold):
            to_ready(session, settings, machine, lead, "2026-03-20")
        # 00:30 on 1 April in Rome is still March in UTC: an April figure all the same.
        early_april = dt.datetime(2026, 4, 1, 0, 30, tzinfo=ROME)
        service.change_state(
            session,
            settings,
            CONFIG,
            machine=deployed,
            to="deployed",
            user=lead,
            beneficiary_id=beneficiary,
            now=early_april,
        )
        service.change_state(
            session, settings, CONFIG, machine=sold, to="sold", user=lead, buyer="Mario",
            now=at("2026-04-10"),
        )  # fmt: skip
        service.change_state(
            session, settings, CONFIG, machine=recycled, to="recycled", user=lead,
            recycler="RAEE", recycling_certificate_ref="R-7", now=at("2026-03-25"),
        )  # fmt: skip
        order = workorders.create_work_order(
            session, user=lead, title="Triage", assignee_id=trainee.id, now=at("2026-03-01")
        )
        for day, hours in (("2026-03-31", 3), ("2026-04-01", 2.5)):
            workorders.log_hours(
                session, CONFIG, order=order, viewer=trainee, worked_on=dt.date.fromisoformat(day),
                hours=hours, now=at("2026-04-02"),
            )  # fmt: skip
        assert stays.state == "received"

    with ws_db.factory() as session:
        march = reports.impact_for(
            session, CONFIG, start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 31)
        )
        april = reports.impact_for(
            session, CONFIG, start=dt.date(2026, 4, 1), end=dt.date(2026, 4, 30)
        )
    assert (march.received, march.wiped, march.deployed, march.sold, march.recycled) == (
        4,
        2,
        0,
        0,
        1,
    )
    assert (march.hours_worked, march.people, march.kg_recycled, march.in_service_at_end) == (
        3.0,
        1,
        7.0,
        0,
    )
    assert (april.received, april.deployed, april.sold, april.reused, april.recycled) == (
        0,
        1,
        1,
        2,
        0,
    )
    assert (april.hours_worked, april.kg_kept_out_of_waste, april.in_service_at_end) == (
        2.5,
        3.5,
        1,
    )
