"""Unit tests: cookie signing, the session cookie, CSRF tokens, login throttling, next paths."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from control_plane.db import make_engine, make_sessionmaker, migrate
from control_plane.models import LoginFailure
from control_plane.web.csrf import CsrfGuard
from control_plane.web.pages import safe_next
from control_plane.web.sessions import COOKIE_NAME, ConsoleSession, SessionCodec
from control_plane.web.signing import BadSignature, SignatureExpired, Signer
from control_plane.web.throttle import LoginThrottle, MemoryThrottleStore, SqlThrottleStore


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- signing -------------------------------------------------------------------------------


def test_signed_token_round_trips() -> None:
    clock = Clock()
    signer = Signer("secret", "session", clock=clock)
    payload, issued = signer.unsign(signer.sign(b'{"a": 1}'))
    assert payload == b'{"a": 1}'
    assert issued == int(clock.now)


@pytest.mark.parametrize("part", [0, 1, 2])
def test_tampering_with_any_part_is_refused(part: int) -> None:
    signer = Signer("secret", "session")
    pieces = signer.sign(b"user=1").split(".")
    pieces[part] = pieces[part][:-2] + ("AA" if not pieces[part].endswith("AA") else "BB")
    with pytest.raises(BadSignature):
        signer.unsign(".".join(pieces))


def test_another_key_or_purpose_is_refused() -> None:
    token = Signer("secret", "session").sign(b"x")
    with pytest.raises(BadSignature, match="signature"):
        Signer("other-secret", "session").unsign(token)
    with pytest.raises(BadSignature, match="signature"):
        Signer("secret", "flash").unsign(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!.1.x"])
def test_malformed_tokens_name_the_problem(token: str) -> None:
    with pytest.raises(BadSignature, match="token"):
        Signer("secret", "session").unsign(token)


def test_expiry_is_checked_after_the_signature() -> None:
    clock = Clock()
    signer = Signer("secret", "session", clock=clock)
    token = signer.sign(b"x")
    clock.now += 100
    assert signer.unsign(token, max_age=100)[0] == b"x"
    clock.now += 1
    with pytest.raises(SignatureExpired):
        signer.unsign(token, max_age=100)


# --- the session cookie --------------------------------------------------------------------


def test_session_cookie_round_trips_with_flashes() -> None:
    codec = SessionCodec("secret")
    session = ConsoleSession()
    session.log_in(42)
    session.flash("info", "Ciao")
    loaded = codec.load(codec.dump(session))
    assert (loaded.sid, loaded.user_id, loaded.flashes) == (session.sid, 42, [("info", "Ciao")])
    assert not loaded.dirty


def test_session_cookie_attributes() -> None:
    session = ConsoleSession()
    session.ensure_id()
    header = SessionCodec("secret", max_age=3600).set_cookie(session)
    assert header.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"):
        assert attribute in header
    assert "Secure" not in header
    assert "Secure" in SessionCodec("secret", secure=True).set_cookie(session)


@pytest.mark.parametrize("raw", [None, "", "garbage", "a.b.c"])
def test_missing_or_forged_cookie_gives_an_anonymous_session(raw: str | None) -> None:
    session = SessionCodec("secret").load(raw)
    assert session.user_id is None and session.sid == "" and not session.dirty


def test_cookie_from_another_secret_is_ignored() -> None:
    session = ConsoleSession()
    session.log_in(1)
    assert SessionCodec("other").load(SessionCodec("secret").dump(session)).user_id is None


def test_expired_session_logs_out_and_active_one_slides() -> None:
    clock = Clock()
    codec = SessionCodec("secret", max_age=1000, clock=clock)
    session = ConsoleSession()
    session.log_in(7)
    raw = codec.dump(session)
    clock.now += 400
    assert not codec.load(raw).dirty  # young: no need to rewrite the cookie
    clock.now += 200
    refreshed = codec.load(raw)
    assert refreshed.user_id == 7 and refreshed.dirty  # past half its life: re-issued
    clock.now += 401
    assert codec.load(raw).user_id is None


def test_log_in_and_out_rotate_the_session_id() -> None:
    session = ConsoleSession()
    anonymous = session.ensure_id()
    session.log_in(3)
    assert session.sid != anonymous
    logged_in = session.sid
    session.log_out()
    assert session.sid not in (anonymous, logged_in) and session.user_id is None


def test_flashes_are_bounded_and_popped_once() -> None:
    session = ConsoleSession()
    for i in range(8):
        session.flash("info", f"m{i}" + "x" * 1000)
    flashes = session.pop_flashes()
    assert [text[:2] for _, text in flashes] == ["m3", "m4", "m5", "m6", "m7"]
    assert all(len(text) <= 300 for _, text in flashes)
    assert session.pop_flashes() == []


# --- CSRF ----------------------------------------------------------------------------------


def test_csrf_token_is_bound_to_the_session() -> None:
    guard = CsrfGuard("secret")
    token = guard.token_for("session-a")
    assert guard.check("session-a", token)
    assert not guard.check("session-b", token)
    assert not guard.check("session-a", token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not guard.check("session-a", None)
    assert not guard.check("", token)
    assert not CsrfGuard("other-secret").check("session-a", token)


def test_csrf_token_needs_a_session() -> None:
    with pytest.raises(ValueError, match="session_id"):
        CsrfGuard("secret").token_for("")


# --- login throttling ----------------------------------------------------------------------


def test_five_failures_lock_out_the_pair_for_a_while() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        assert not throttle.record_failure("anna@example.org", "10.0.0.1")
        assert throttle.retry_after("anna@example.org", "10.0.0.1") == 0
    assert throttle.record_failure("Anna@Example.org ", "10.0.0.1")  # same person, same key
    assert throttle.retry_after("anna@example.org", "10.0.0.1") == pytest.approx(15 * 60)
    # Another address, or another e-mail, is not punished for it.
    assert throttle.retry_after("anna@example.org", "10.0.0.2") == 0
    assert throttle.retry_after("bruno@example.org", "10.0.0.1") == 0
    clock.now += 15 * 60
    assert throttle.retry_after("anna@example.org", "10.0.0.1") == 0
    # After the lockout the count starts again from zero.
    assert not throttle.record_failure("anna@example.org", "10.0.0.1")


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        throttle.record_failure("a@example.org", "ip")
        clock.now += 5 * 60  # 4 failures spread over 20 minutes
    assert not throttle.record_failure("a@example.org", "ip")
    assert throttle.retry_after("a@example.org", "ip") == 0


def test_success_forgets_the_failures() -> None:
    throttle = LoginThrottle(clock=Clock())
    for _ in range(4):
        throttle.record_failure("a@example.org", "ip")
    throttle.record_success("a@example.org", "ip")
    for _ in range(4):
        assert not throttle.record_failure("a@example.org", "ip")


def test_memory_is_bounded() -> None:
    store = MemoryThrottleStore(max_keys=10)
    throttle = LoginThrottle(store=store, clock=Clock())
    for i in range(100):
        throttle.record_failure(f"user{i}@example.org", "ip")
    assert len(store) <= 10


@pytest.fixture
def sql_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(db_url)
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_replicas_share_the_count_through_the_database(
    sql_factory: sessionmaker[Session],
) -> None:
    # Two control-plane processes, each with its own throttle, on one database: an attacker
    # gets five tries in all, not five per replica.
    clock = Clock()
    one = LoginThrottle(store=SqlThrottleStore(sql_factory), clock=clock)
    two = LoginThrottle(store=SqlThrottleStore(sql_factory), clock=clock)
    for throttle in (one, two, one, two):
        assert not throttle.record_failure("anna@example.org", "10.0.0.1")
    assert two.record_failure("ANNA@example.org", "10.0.0.1")
    assert one.retry_after("anna@example.org", "10.0.0.1") == pytest.approx(15 * 60)
    assert two.retry_after("anna@example.org", "10.0.0.2") == 0
    clock.now += 15 * 60
    assert one.retry_after("anna@example.org", "10.0.0.1") == 0
    # Old failures slide out of the window; a success forgets them on every replica.
    for _ in range(4):
        one.record_failure("bruno@example.org", "ip")
    two.record_success("bruno@example.org", "ip")
    assert not one.record_failure("bruno@example.org", "ip")
    with sql_factory() as session:
        (row,) = session.scalars(
            select(LoginFailure).where(LoginFailure.email == "bruno@example.org")
        ).all()
        assert len(row.failures) == 1


def test_the_database_forgets_pairs_untouched_for_a_day(
    sql_factory: sessionmaker[Session],
) -> None:
    store = SqlThrottleStore(sql_factory, keep_s=60)
    throttle = LoginThrottle(store=store, clock=Clock())
    throttle.record_failure("old@example.org", "ip")
    with sql_factory() as session:
        session.execute(update(LoginFailure).values(updated_at=0.0))
        session.commit()
    throttle.record_failure("new@example.org", "ip")  # a later change tidies up
    with sql_factory() as session:
        assert set(session.scalars(select(LoginFailure.email))) == {"new@example.org"}


def test_throttle_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        LoginThrottle(max_failures=0)


# --- where to go after logging in ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/fleet?group=Lecce", "/fleet?group=Lecce"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("fleet", "/"),
        ("/fleet\r\nSet-Cookie: x=1", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_only_local_paths_are_followed(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected
