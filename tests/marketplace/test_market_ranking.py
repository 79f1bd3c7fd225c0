"""The ranking of candidate workers (a pure function) and the request lifecycle."""

from __future__ import annotations

import datetime as dt

import pytest

from control_plane.marketplace import lifecycle
from control_plane.marketplace.lifecycle import Action, Actor, RequestStatus
from control_plane.marketplace.ranking import (
    CandidateFacts,
    JobFacts,
    Weights,
    bayesian_rating,
    rank_candidates,
)

MONDAY = dt.date(2031, 3, 3)
assert MONDAY.weekday() == 0

JOB = JobFacts(
    service_id=11,
    category_id=1,
    service_name="Imbiancatura",
    category_name="Pittura",
    area="Milano Lambrate",
    exact_date=MONDAY,
    time_of_day="morning",
)


def worker(worker_id: int, **kw: object) -> CandidateFacts:
    values: dict[str, object] = {
        "name": f"w{worker_id}",
        "kind": "factotum",
        "service_ids": frozenset({11}),
        "category_ids": frozenset({1}),
        "areas": ("Milano",),
        "availability": {"mon": ["morning"]},
    }
    values.update(kw)
    return CandidateFacts(worker_id=worker_id, **values)  # type: ignore[arg-type]


def factors(ranked: object) -> dict[str, tuple[float, str]]:
    return {f.name: (f.score, f.reason) for f in ranked.factors}  # type: ignore[attr-defined]


def test_each_factor_is_scored_and_explained() -> None:
    [best] = rank_candidates(JOB, [worker(1, rating_sum=18, rating_count=4, active_jobs=2)])
    f = factors(best)
    assert f["skill"] == (1.0, "skill.exact")
    assert f["area"] == (1.0, "area.served")
    assert f["availability"] == (1.0, "availability.day")
    assert f["rating"][1] == "rating.rated"
    assert f["load"] == (0.6, "load.active")
    notes = [x.explain() for x in best.factors]
    assert notes == [
        "offers Imbiancatura",
        "serves Milano Lambrate",
        "usually available on 2031-03-03",
        "rated 4.5 from 4 reviews",
        "2 jobs in progress",
    ]
    # A translation function is applied to the msgid, then the details are filled in.
    assert best.factors[0].explain(lambda s: s.replace("offers", "offre")) == "offre Imbiancatura"
    assert best.rank == 1 and 0 < best.total <= 1 and best.eligible


def test_exact_skill_beats_category_beats_nothing() -> None:
    ranked = rank_candidates(
        JOB,
        [
            worker(1, service_ids=frozenset({99}), category_ids=frozenset({9})),
            worker(2, service_ids=frozenset({12}), category_ids=frozenset({1})),
            worker(3),
        ],
    )
    assert [c.worker_id for c in ranked] == [3, 2, 1]
    assert [c.eligible for c in ranked] == [True, True, False]
    assert factors(ranked[1])["skill"] == (0.25, "skill.category")
    assert factors(ranked[2])["skill"] == (0.0, "skill.none")


def test_an_ineligible_worker_stays_last_even_with_a_perfect_record() -> None:
    stranger = worker(
        1, service_ids=frozenset(), category_ids=frozenset(), rating_sum=50, rating_count=10
    )
    weak = worker(2, areas=("Torino",), availability={}, rating_sum=1, rating_count=1)
    assert [c.worker_id for c in rank_candidates(JOB, [stranger, weak])] == [2, 1]


def test_area_availability_load_and_rating_each_move_the_rank() -> None:
    base = worker(1)
    assert [c.worker_id for c in rank_candidates(JOB, [worker(2, areas=("Monza",)), base])] == [
        1,
        2,
    ]
    busy = worker(2, active_jobs=5)
    assert [c.worker_id for c in rank_candidates(JOB, [busy, base])] == [1, 2]
    afternoon = worker(2, availability={"mon": ["afternoon"]})
    assert [c.worker_id for c in rank_candidates(JOB, [afternoon, base])] == [1, 2]
    loved = worker(2, rating_sum=50, rating_count=10)
    assert [c.worker_id for c in rank_candidates(JOB, [base, loved])] == [2, 1]


def test_windows_count_free_days() -> None:
    window = JobFacts(
        **{**JOB.__dict__, "exact_date": None, "window": (MONDAY, MONDAY + dt.timedelta(days=13))}
    )
    weekends = worker(1, availability={"sat": ["morning"], "sun": ["morning"]})
    weekdays = worker(2, availability={d: ["morning"] for d in ("mon", "tue", "wed", "thu", "fri")})
    never = worker(3, availability={"sat": ["evening"]})
    ranked = {
        c.worker_id: factors(c)["availability"]
        for c in rank_candidates(window, [weekends, weekdays, never])
    }
    assert ranked[1] == (pytest.approx(0.5 + 0.5 * 4 / 14, abs=1e-4), "availability.window")
    assert ranked[2] == (pytest.approx(0.5 + 0.5 * 10 / 14, abs=1e-4), "availability.window")
    assert ranked[3] == (0.0, "availability.none")
    unknown = rank_candidates(window, [worker(4, availability={})])[0]
    assert factors(unknown)["availability"] == (0.5, "availability.unknown")


def test_ties_are_broken_by_worker_id_and_ranks_are_consecutive() -> None:
    ranked = rank_candidates(JOB, [worker(5), worker(3), worker(4)])
    assert [(c.rank, c.worker_id) for c in ranked] == [(1, 3), (2, 4), (3, 5)]
    assert rank_candidates(JOB, []) == []


def test_bayesian_rating_needs_evidence() -> None:
    assert bayesian_rating(0, 0) == 3.5
    assert bayesian_rating(5, 1) < bayesian_rating(180, 40)
    assert bayesian_rating(5, 1) < 4.5


def test_bad_inputs_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="weights"):
        Weights(skill=0, area=0, availability=0, rating=0, load=0)
    with pytest.raises(ValueError, match="time_of_day"):
        JobFacts(1, 1, "a", "b", "x", time_of_day="night")
    with pytest.raises(ValueError, match="window"):
        JobFacts(1, 1, "a", "b", "x", window=(MONDAY, MONDAY - dt.timedelta(days=1)))
    with pytest.raises(ValueError, match="max_load"):
        rank_candidates(JOB, [], max_load=0)


def test_custom_weights_change_the_order() -> None:
    near = worker(1, service_ids=frozenset({12}))  # only the category, but in the area
    far = worker(2, areas=("Roma",))  # the exact service, far away
    default = [c.worker_id for c in rank_candidates(JOB, [near, far])]
    area_first = [
        c.worker_id for c in rank_candidates(JOB, [near, far], weights=Weights(skill=0.1, area=1))
    ]
    assert default == [2, 1] and area_first == [1, 2]


# --- lifecycle ---------------------------------------------------------------------------


def test_the_happy_path() -> None:
    status = RequestStatus.NEW
    for action, actor in [
        (Action.ASSIGN, Actor.ADMIN),
        (Action.QUOTE, Actor.ADMIN),
        (Action.ACCEPT, Actor.CLIENT),
        (Action.COMPLETE, Actor.WORKER),
        (Action.RATE, Actor.CLIENT),
        (Action.CLOSE, Actor.ADMIN),
        (Action.RATE, Actor.CLIENT),
    ]:
        status = lifecycle.check(status, action, actor)
    assert status is RequestStatus.CLOSED


def test_out_of_turn_and_wrong_person_are_refused() -> None:
    with pytest.raises(
        lifecycle.TransitionError, match="status: cannot accept a request that is new"
    ):
        lifecycle.check("new", Action.ACCEPT, Actor.CLIENT)
    with pytest.raises(lifecycle.NotAllowed, match="only client may accept"):
        lifecycle.check("quoted", Action.ACCEPT, Actor.ADMIN)
    with pytest.raises(lifecycle.NotAllowed):
        lifecycle.check("done", Action.RATE, Actor.WORKER)
    with pytest.raises(lifecycle.TransitionError):
        lifecycle.check("scheduled", Action.CANCEL, Actor.CLIENT)
    with pytest.raises(ValueError):
        lifecycle.next_status("lost", Action.CLOSE)


def test_allowed_actions_for_buttons() -> None:
    assert lifecycle.allowed_actions("quoted", Actor.CLIENT) == [
        Action.ACCEPT,
        Action.DECLINE,
        Action.CANCEL,
    ]
    assert lifecycle.allowed_actions("declined", Actor.ADMIN) == [
        Action.ASSIGN,
        Action.QUOTE,
        Action.CLOSE,
        Action.CANCEL,
    ]
    assert lifecycle.allowed_actions("scheduled", Actor.WORKER) == [Action.COMPLETE]
    assert lifecycle.allowed_actions("closed", Actor.OTHER) == []
    for status in RequestStatus:
        assert lifecycle.allowed_actions(status, Actor.OTHER) == []
