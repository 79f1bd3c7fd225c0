"""The workshop service on SQLite and PostgreSQL: asset tags and racing requests."""

from __future__ import annotations

import threading

import pytest

from control_plane.workshop import service
from control_plane.workshop.errors import WorkshopError
from tests.conftest import make_settings
from tests.workshop.service_support import CONFIG, donate, user_of
from tests.workshop.workshop_support import Db, Person


def test_tags_run_per_year_and_never_repeat_even_when_intakes_race(ws_db: Db) -> None:
    with ws_db.session() as session:
        assert service.allocate_tags(session, prefix="DF", year=2026, count=3) == 1
        assert service.allocate_tags(session, prefix="DF", year=2026, count=2) == 4
        assert service.allocate_tags(session, prefix="DF", year=2027, count=1) == 1
        assert service.allocate_tags(session, prefix="XY", year=2026, count=1) == 1
    firsts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def intake() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(3):
                with ws_db.session() as session:
                    firsts.append(service.allocate_tags(session, prefix="DF", year=2030, count=2))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=intake) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    # Twelve blocks of two, disjoint and without holes.
    assert sorted(firsts) == list(range(1, 25, 2))


def test_two_people_moving_one_machine_at_once_one_is_told(
    ws_db: Db, people: dict[str, Person]
) -> None:
    settings = make_settings(ws_db.url, None)
    with ws_db.session() as session:
        tag = donate(session, user_of(session, people["lead"]), 2.0)[0].asset_tag
    first, second = ws_db.factory(), ws_db.factory()
    try:
        mine = service.get_machine(first, tag)
        theirs = service.get_machine(second, tag)
        service.change_state(
            first, settings, CONFIG, machine=mine, to="triaged", user=user_of(first, people["lead"])
        )
        first.commit()
        with pytest.raises(WorkshopError) as refused:
            service.change_state(
                second,
                settings,
                CONFIG,
                machine=theirs,
                to="recycled",
                user=user_of(second, people["tech"]),
                recycler="R",
                recycling_certificate_ref="1",
            )
        assert refused.value.status == 409 and refused.value.code == "conflict"
        second.rollback()
    finally:
        first.close()
        second.close()
    with ws_db.factory() as session:
        machine = service.get_machine(session, tag)
        assert machine.state == "triaged"
        assert [t.to_state for t in machine.transitions] == ["received", "triaged"]
