"""The pure core of jobs: the execution state machine and the rollout planner."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.jobs.rollout import (
    AbortCriterion,
    ExecView,
    ExponentialPolicy,
    JobView,
    RatePolicy,
    abort_reason,
    current_rate,
    plan_tick,
    releasable,
    timed_out,
)
from control_plane.jobs.states import (
    TERMINAL,
    ExecStatus,
    apply_device_update,
    can_cancel,
    should_retry,
)

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
Q, IP, OK, KO, TO, RJ, CX = (
    ExecStatus.QUEUED,
    ExecStatus.IN_PROGRESS,
    ExecStatus.SUCCEEDED,
    ExecStatus.FAILED,
    ExecStatus.TIMED_OUT,
    ExecStatus.REJECTED,
    ExecStatus.CANCELED,
)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# --- state machine ------------------------------------------------------------------------


def test_progress_then_success_is_applied_in_order() -> None:
    d = apply_device_update(Q, -1, "IN_PROGRESS", 1)
    assert d.accepted and d.status is IP and not d.finished
    d = apply_device_update(IP, 1, "IN_PROGRESS", 2)
    assert d.accepted and d.status is IP
    d = apply_device_update(IP, 2, "SUCCEEDED", 3)
    assert d.accepted and d.finished


def test_duplicates_and_out_of_order_updates_are_dropped() -> None:
    d = apply_device_update(IP, 5, "SUCCEEDED", 5)
    assert not d.accepted and "seq" in d.reason
    d = apply_device_update(IP, 5, "IN_PROGRESS", 3)
    assert not d.accepted and d.status is IP


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_a_terminal_execution_never_moves(terminal: ExecStatus) -> None:
    for new in ExecStatus:
        d = apply_device_update(terminal, 0, new, 10)
        assert not d.accepted
        assert d.status is terminal
        assert "already" in d.reason


def test_a_device_may_not_queue_and_unknown_statuses_name_the_field() -> None:
    d = apply_device_update(IP, 0, "QUEUED", 1)
    assert not d.accepted and d.reason.startswith("status:")
    d = apply_device_update(Q, 0, "EXPLODED", 1)
    assert not d.accepted and "unknown status" in d.reason


def test_cancel_and_retry_rules() -> None:
    assert can_cancel(Q, force=False)
    assert not can_cancel(IP, force=False)
    assert can_cancel(IP, force=True)
    assert not can_cancel(OK, force=True)
    assert should_retry(KO, 0, 2) and should_retry(TO, 1, 2)
    assert not should_retry(KO, 2, 2)
    assert not should_retry(RJ, 0, 5), "a rejection would only be repeated"
    assert not should_retry(OK, 0, 5)


@given(
    st.lists(
        st.tuples(st.sampled_from(list(ExecStatus)), st.integers(min_value=-2, max_value=20)),
        max_size=30,
    )
)
def test_any_sequence_of_reports_keeps_the_invariants(
    reports: list[tuple[ExecStatus, int]],
) -> None:
    status, last_seq, finished_once = Q, -1, False
    for reported, seq in reports:
        d = apply_device_update(status, last_seq, reported, seq)
        if d.accepted:
            assert seq > last_seq, "sequence only moves forward"
            assert status not in TERMINAL, "terminal states are final"
            assert d.status is not Q
            status, last_seq = d.status, seq
            finished_once = finished_once or d.finished
        else:
            assert d.status is status
    if finished_once:
        assert status in TERMINAL


# --- rates --------------------------------------------------------------------------------


def test_rate_counts_releases_in_a_sliding_window() -> None:
    policy = RatePolicy(max_per_minute=10)
    assert releasable(policy, now=at(0), released=[], succeeded=0, waiting=50) == 10
    ten = [at(0)] * 10
    assert releasable(policy, now=at(30), released=ten, succeeded=0, waiting=40) == 0
    assert releasable(policy, now=at(60), released=ten, succeeded=0, waiting=40) == 10
    assert releasable(policy, now=at(60), released=ten, succeeded=0, waiting=3) == 3
    assert releasable(None, now=at(0), released=ten, succeeded=0, waiting=7) == 7
    assert releasable(policy, now=at(0), released=[], succeeded=0, waiting=0) == 0


def test_exponential_rate_grows_with_successes_up_to_its_cap() -> None:
    policy = ExponentialPolicy(base_per_minute=2, factor=2.0, increase_after=2, max_per_minute=10)
    assert current_rate(policy, 0) == 2
    assert current_rate(policy, 1) == 2
    assert current_rate(policy, 2) == 4
    assert current_rate(policy, 4) == 8
    assert current_rate(policy, 6) == 10
    assert current_rate(policy, 10_000) == 10, "no overflow for huge step counts"
    slow = ExponentialPolicy(base_per_minute=1, factor=1.5, increase_after=1, max_per_minute=100)
    assert [current_rate(slow, n) for n in range(4)] == [1, 1, 2, 3]


@given(
    rate=st.integers(min_value=1, max_value=20),
    offsets=st.lists(st.floats(min_value=0, max_value=600), min_size=1, max_size=40),
)
def test_planned_releases_never_exceed_the_rate_in_any_window(
    rate: int, offsets: list[float]
) -> None:
    """Drive the planner at arbitrary tick times; check every 60 s window afterwards."""
    policy = RatePolicy(max_per_minute=rate)
    released: list[dt.datetime] = []
    waiting = 100
    for offset in sorted(offsets):
        now = at(offset)
        n = releasable(policy, now=now, released=released, succeeded=0, waiting=waiting)
        released += [now] * n
        waiting -= n
    for start in released:
        window = [r for r in released if start <= r < start + dt.timedelta(seconds=60)]
        assert len(window) <= rate


# --- abort ---------------------------------------------------------------------------------


def test_abort_needs_the_minimum_and_a_threshold_exceeded() -> None:
    crit = (AbortCriterion(failure_type="FAILED", threshold_pct=30, min_executed=10),)
    assert abort_reason(crit, {KO: 5, OK: 4}) is None, "only 9 executed"
    assert abort_reason(crit, {KO: 3, OK: 7}) is None, "30% does not exceed 30%"
    reason = abort_reason(crit, {KO: 4, OK: 6, CX: 20, Q: 30})
    assert reason is not None and "4 of 10" in reason and "FAILED" in reason
    assert abort_reason(crit, {TO: 9, OK: 1}) is None, "only FAILED counts here"
    anyfail = (AbortCriterion(failure_type="ANY", threshold_pct=50, min_executed=4),)
    assert abort_reason(anyfail, {TO: 2, RJ: 1, OK: 1}) is not None
    assert abort_reason((), {KO: 100}) is None


def test_timed_out_only_after_the_timeout() -> None:
    assert not timed_out(None, 10, at(100))
    assert not timed_out(at(0), 10, at(9.9))
    assert timed_out(at(0), 10, at(10))


# --- one tick -------------------------------------------------------------------------------


def test_tick_releases_at_the_rate_in_queue_order() -> None:
    job = JobView(rollout=RatePolicy(max_per_minute=3))
    execs = [ExecView(key=k, status=Q) for k in (5, 2, 9, 1, 7)]
    plan = plan_tick(job, execs, at(0))
    assert plan.release == (1, 2, 5)
    assert not plan.complete
    released = [
        ExecView(key=k, status=Q, released_at=at(0) if k in plan.release else None)
        for k in (5, 2, 9, 1, 7)
    ]
    assert plan_tick(job, released, at(59)).release == ()
    assert plan_tick(job, released, at(61)).release == (7, 9)


def test_tick_holds_back_devices_outside_their_maintenance_window() -> None:
    job = JobView(rollout=None)
    execs = [ExecView(key=1, status=Q, eligible=False), ExecView(key=2, status=Q)]
    assert plan_tick(job, execs, at(0)).release == (2,)


def test_tick_times_out_then_retries_with_a_fresh_release() -> None:
    job = JobView(rollout=RatePolicy(max_per_minute=1), timeout_s=60, retries=1)
    execs = [
        ExecView(key=1, status=IP, released_at=at(0), started_at=at(1)),
        ExecView(key=2, status=KO, attempt=1, released_at=at(0)),
    ]
    plan = plan_tick(job, execs, at(61))
    assert plan.time_out == (1,)
    assert plan.retry == (1,), "timed out with a retry left; key 2 used its retry"
    assert plan.release == (1,)
    assert not plan.complete


def test_tick_aborts_and_cancels_everything_queued() -> None:
    crit = (AbortCriterion(failure_type="ANY", threshold_pct=40, min_executed=4),)
    job = JobView(rollout=RatePolicy(max_per_minute=4), abort=crit)
    execs = [
        ExecView(key=1, status=KO, released_at=at(0)),
        ExecView(key=2, status=KO, released_at=at(0)),
        ExecView(key=3, status=OK, released_at=at(0)),
        ExecView(key=4, status=OK, released_at=at(0)),
        ExecView(key=5, status=IP, released_at=at(60), started_at=at(61)),
        ExecView(key=6, status=Q, released_at=at(60)),
        ExecView(key=7, status=Q),
    ]
    plan = plan_tick(job, execs, at(62))
    assert plan.abort_reason is not None and "2 of 4" in plan.abort_reason
    assert plan.cancel == (6, 7), "queued ones, released or not; in progress ones run on"
    assert plan.release == ()


def test_tick_completes_when_everything_is_terminal() -> None:
    job = JobView(rollout=None)
    execs = [ExecView(key=1, status=OK), ExecView(key=2, status=RJ), ExecView(key=3, status=CX)]
    plan = plan_tick(job, execs, at(0))
    assert plan.complete and plan.changes
    assert not plan_tick(
        job, [ExecView(key=1, status=OK), ExecView(key=2, status=IP)], at(0)
    ).complete
