"""Calls end to end: aiortc as the browser, the real control plane, broker, coturn and PC."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from control_plane.models import Role
from edge.calls.config import CallConfig
from tests.care.caller import Caller
from tests.care.env import EDGE_CALL, CareEnv
from tests.care.turn import Coturn
from tests.support.broker import Mosquitto
from tests.support.wait import async_wait_until, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, broker: Mosquitto, coturn: Coturn) -> Iterator[CareEnv]:
    e = CareEnv(tmp_path, broker, coturn).start()
    yield e
    e.stop()


async def _dial(env: CareEnv, beneficiary_id: int, token: str, **kw: bool) -> Caller:
    caller = Caller(await connect(env.ws_url(beneficiary_id, token)))
    await caller.start(**kw)
    return caller


def test_call_media_both_ways_busy_second_caller_and_hang_up(env: CareEnv) -> None:
    anna, anna_token = env.user("anna@example.org", Role.CAREGIVER)
    bruno, bruno_token = env.user("bruno@example.org", Role.CAREGIVER)
    password = env.register("pc-call-01")
    ben = env.beneficiary("Maria Rossi", "pc-call-01", [anna, bruno])
    env.start_edge("pc-call-01", password)
    env.appointment_now(ben, [anna])
    env.wait_schedule_applied("pc-call-01")

    async def run() -> None:
        caller = await _dial(env, ben, anna_token)
        try:
            assert caller.ready is not None and caller.ready["ice_servers"][0]["username"]
            await asyncio.wait_for(caller.connected.wait(), 20)
            assert caller.types()[:3] == ["ready", "accepted", "answer"]
            assert {"type": "accepted", "auto": True} in caller.messages
            await async_wait_until(
                lambda: (
                    caller.sink.counters.video_frames >= 5
                    and caller.sink.counters.audio_samples >= 24_000
                ),
                timeout=20,
                message="the PC's camera and microphone at the caregiver",
            )
            # The PC's sink, as it reports in its stats on the call record.
            await async_wait_until(
                lambda: (
                    (s := env.calls(ben)[-1].stats_device).get("frames_received", 0) >= 5
                    and s.get("audio_samples_received", 0) >= 24_000
                ),
                timeout=20,
                message="the caregiver's media at the PC",
            )
            assert env.calls(ben)[-1].status == "connected"
            assert env.edge_status("pc-call-01")["call"]["state"] == "connected"
            # A second caregiver now: a plain "busy", the first call goes on.
            second = await _dial(env, ben, bruno_token, send_offer=False)
            assert second.ended is not None and second.ended["reason"] == "busy"
            assert "already in another call" in second.ended["message"]
            await second.close()
            await caller.hang_up()
            await asyncio.wait_for(caller.done.wait(), 10)
            assert caller.ended is not None and caller.ended["reason"] == "hangup_caller"
        finally:
            await caller.close()

    asyncio.run(run())
    wait_until(
        lambda: env.edge_status("pc-call-01")["call"]["state"] == "idle",
        message="the PC back to idle",
    )
    first, second = env.calls(ben)
    assert (first.status, first.end_reason, first.auto_answered) == ("ended", "hangup_caller", True)
    assert first.connected_at is not None and first.ended_at is not None
    assert first.stats_device["frames_received"] >= 5
    assert first.stats_device["video_width_out"] == 320
    assert (second.status, second.end_reason) == ("failed", "busy")
    assert {e.object_id for e in env.audit("call.start")} == {str(first.id), str(second.id)}
    assert {e.object_id for e in env.audit("call.end")} == {str(first.id), str(second.id)}
    # The daemon itself never loaded aiortc: the call ran in its media process.
    assert "aiortc" not in Path(f"/proc/{env.edges[0].proc.pid}/maps").read_text()  # type: ignore[union-attr]


def test_offline_pc_and_someone_elses_beneficiary_end_cleanly(env: CareEnv) -> None:
    anna, anna_token = env.user("anna@example.org", Role.CAREGIVER)
    _carla, carla_token = env.user("carla@example.org", Role.CAREGIVER)
    _client, client_token = env.user("client@example.org", Role.CLIENT)
    env.register("pc-call-02")
    ben = env.beneficiary("Luigi Bianchi", "pc-call-02", [anna])

    async def run() -> None:
        offline = await _dial(env, ben, anna_token)
        assert offline.ended is not None and offline.ended["reason"] == "offline"
        assert "switched off" in offline.ended["message"]
        await offline.close()
        for token in (carla_token, client_token):
            refused = await _dial(env, ben, token)
            assert refused.ended is not None and refused.ended["reason"] == "forbidden"
            assert "not one of the caregivers" in refused.ended["message"]
            assert refused.ws.close_code == 4403
            await refused.close()
        nobody = await _dial(env, ben, "not-a-token")
        assert nobody.ended is not None and nobody.ended["reason"] == "auth"
        await nobody.close()

    asyncio.run(run())
    (call,) = env.calls(ben)  # refused callers leave no call record, only an audit entry
    assert (call.status, call.end_reason) == ("failed", "offline")
    assert len(env.audit("call.denied")) == 2


def test_unanswered_call_times_out_on_both_sides(env: CareEnv) -> None:
    anna, anna_token = env.user("anna@example.org", Role.CAREGIVER)
    password = env.register("pc-call-03")
    ben = env.beneficiary("Ada Verdi", "pc-call-03", [anna])
    env.start_edge("pc-call-03", password)  # no appointment now: the PC rings

    async def run() -> None:
        caller = await _dial(env, ben, anna_token)
        try:
            await asyncio.wait_for(caller.done.wait(), 20)
            assert caller.types() == ["ready", "ringing", "ended"]
            assert caller.ended is not None and caller.ended["reason"] == "timeout"
            assert caller.ended["message"] == "Nobody answered the call."
        finally:
            await caller.close()

    asyncio.run(run())
    wait_until(
        lambda: (
            (s := env.edge_status("pc-call-03")["call"])["state"] == "idle"
            and "timeout" in s["last_end_reason"]
        ),
        message="the PC stops ringing",
    )
    (call,) = env.calls(ben)
    assert (call.status, call.end_reason) == ("failed", "timeout")


def test_dropped_browser_then_dropped_pc(env: CareEnv) -> None:
    anna, anna_token = env.user("anna@example.org", Role.CAREGIVER)
    password = env.register("pc-call-04")
    ben = env.beneficiary("Pia Neri", "pc-call-04", [anna])
    edge = env.start_edge("pc-call-04", password)
    env.appointment_now(ben, [anna])
    env.wait_schedule_applied("pc-call-04")

    async def connected_call() -> Caller:
        caller = await _dial(env, ben, anna_token)
        await asyncio.wait_for(caller.connected.wait(), 20)
        return caller

    def pc_heard_the_drop() -> bool:
        s = env.edge_status("pc-call-04")["call"]
        return bool(s["state"] == "idle" and "dropped" in s["last_end_reason"])

    async def browser_drops() -> None:
        caller = await connected_call()
        # The network to the browser goes away: no hang-up, and no goodbye on the media path
        # either (closing our peer connection first would let the PC end the call on its own,
        # racing the control plane's message).
        caller.ws.transport.abort()
        try:
            await asyncio.to_thread(
                wait_until, pc_heard_the_drop, message="the PC hears the caller is gone"
            )
        finally:
            await caller.close()

    asyncio.run(browser_drops())
    assert env.calls(ben)[-1].end_reason == "dropped"

    async def pc_drops() -> None:
        caller = await connected_call()
        try:
            edge.kill9()  # power cut at the PC: its Last Will says offline
            await asyncio.wait_for(caller.done.wait(), 30)
            assert caller.ended is not None and caller.ended["reason"] == "dropped"
            assert "connection was lost" in caller.ended["message"]
        finally:
            await caller.close()

    asyncio.run(pc_drops())
    last = env.calls(ben)[-1]
    assert (last.status, last.end_reason) == ("ended", "dropped")


def test_edge_config_default_call_section_is_valid() -> None:
    assert CallConfig().media == "v4l2" and EDGE_CALL.sink == "count"
