"""The device side of calls: the aiortc answerer, ICE choices, the manager's policy paths."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from control_plane.care.turn import rest_credentials
from edge import protocol as p
from edge.calls import CallConfig, CallManager, CallState, decide, in_window
from edge.calls.ice import interface_allowed, parse_uri, usable_servers
from edge.calls.manager import Worker
from edge.calls.media import Sink, SyntheticAudioTrack, SyntheticVideoTrack
from edge.calls.worker import CallWorker
from tests.care.caller import peer
from tests.care.turn import Coturn
from tests.support.broker import free_port
from tests.support.wait import async_wait_until

NOW = 1_750_000_000.0
SMALL = CallConfig(media="synthetic", sink="count", width=320, height=240)


# --- pure decisions ------------------------------------------------------------------------


def _schedule(*windows: tuple[float, float]) -> p.ScheduleDesired:
    return p.ScheduleDesired(
        version=1,
        horizon_end=NOW + 86400,
        wakes=[p.Wake(start=s, end=e) for s, e in windows],
    )


def test_auto_answer_only_for_assigned_caregivers_inside_a_window() -> None:
    inside = _schedule((NOW - 60, NOW + 1800))
    outside = _schedule((NOW + 7200, NOW + 9000))
    assert decide(now=NOW, call=None, schedule=inside, assigned=True).answer == "auto"
    assert decide(now=NOW, call=None, schedule=inside, assigned=False).answer == "ring"
    assert decide(now=NOW, call=None, schedule=outside, assigned=True).answer == "ring"
    assert decide(now=NOW, call=None, schedule=None, assigned=True).answer == "ring"
    off = p.CallDesired(auto_answer=False)
    assert decide(now=NOW, call=off, schedule=inside, assigned=True).answer == "ring"


def test_window_slack_covers_a_caregiver_a_little_early_or_late() -> None:
    wakes = [p.Wake(start=NOW, end=NOW + 600)]
    assert in_window(NOW - 300, wakes)
    assert in_window(NOW + 900, wakes)
    assert not in_window(NOW + 600 + 3600, wakes)


def test_ice_uri_parsing_and_interface_filter() -> None:
    uri = parse_uri("turn:turn.example.org:3479?transport=tcp")
    assert (uri.host, uri.port, uri.transport, uri.is_turn) == (
        "turn.example.org",
        3479,
        "tcp",
        True,
    )
    assert parse_uri("stun:[::1]").port == 3478
    with pytest.raises(ValueError, match=r"ice_servers\.urls"):
        parse_uri("http://nope")
    excluded = CallConfig().ice_exclude_interfaces
    assert interface_allowed("eth0", excluded)
    assert interface_allowed("wlp2s0", excluded)
    for name in ("lo", "wg0", "docker0", "veth12ab", "br-1f2e"):
        assert not interface_allowed(name, excluded), name


def test_unreachable_ice_servers_are_left_out(coturn: Coturn) -> None:
    dead = free_port()  # nothing listens there: no STUN answer
    user, password = rest_credentials(coturn.secret, "pc-x", 600)
    servers: list[dict[str, Any]] = [
        {"urls": [f"stun:127.0.0.1:{dead}"]},
        {"urls": [f"turn:127.0.0.1:{dead}"], "username": user, "credential": password},
        {"urls": [coturn.url], "username": user, "credential": password},
        {"urls": [f"stun:127.0.0.1:{coturn.port}"]},
    ]
    chosen = asyncio.run(usable_servers(servers, timeout=0.3))
    assert chosen == [
        {"urls": [coturn.url], "username": user, "credential": password},
        {"urls": [f"stun:127.0.0.1:{coturn.port}"]},
    ]


# --- the answerer, in process -----------------------------------------------------------------


async def _call(
    worker: CallWorker, ice: list[dict[str, Any]], sink: Sink, *, relay: bool = False
) -> Any:
    await worker.prepare(ice, transport_policy="relay" if relay else "all")
    browser = peer(ice, relay=relay)
    browser.on("track", sink.add)
    browser.addTrack(SyntheticAudioTrack())
    browser.addTrack(SyntheticVideoTrack(320, 240, 15))
    await browser.setLocalDescription(await browser.createOffer())
    answer = await worker.answer(browser.localDescription.sdp)
    await browser.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return browser


def test_answerer_sends_and_receives_media() -> None:
    asyncio.run(_answerer_sends_and_receives_media())


async def _answerer_sends_and_receives_media() -> None:
    caller_tracks = Sink(CallConfig(sink="count"))
    events: list[dict[str, Any]] = []
    worker = CallWorker(SMALL, events.append)
    browser = await _call(worker, [], caller_tracks)
    try:
        # Both ways: the PC's sink gets the caregiver, the caregiver gets the PC.
        await async_wait_until(
            lambda: (
                worker.sink.counters.video_frames >= 5
                and worker.sink.counters.audio_samples >= 48_000 // 2
                and caller_tracks.counters.video_frames >= 5
                and caller_tracks.counters.audio_samples >= 48_000 // 2
            ),
            timeout=20,
            message="media both ways",
        )
        assert (caller_tracks.counters.width, caller_tracks.counters.height) == (320, 240)
        assert {"ev": "state", "state": "connected"} in events
        stats = await worker.stats()
        assert stats["frames_received"] >= 5
        assert stats["video_width_in"] == 320
        assert (stats["video_packets_in"] > 0 and "rtt_ms" in stats) or stats["bytes_in"] > 0
        answer_sdp = browser.remoteDescription.sdp
        # VP8 only on video: the lighter codec for an old CPU.
        assert "VP8/90000" in answer_sdp and "H264" not in answer_sdp
    finally:
        await worker.close()
        await browser.close()
        await caller_tracks.stop()


def test_media_goes_through_coturn_with_rest_credentials(coturn: Coturn) -> None:
    asyncio.run(_media_through_coturn(coturn))


async def _media_through_coturn(coturn: Coturn) -> None:
    caller_tracks = Sink(CallConfig(sink="count"))
    user, password = rest_credentials(coturn.secret, "pc-turn", 600)
    ice = [{"urls": [coturn.url], "username": user, "credential": password}]
    worker = CallWorker(SMALL, lambda e: None)
    browser = await _call(worker, ice, caller_tracks, relay=True)
    try:
        await async_wait_until(
            lambda: (
                worker.sink.counters.video_frames >= 3 and caller_tracks.counters.video_frames >= 3
            ),
            timeout=20,
            message="media relayed by TURN",
        )
        # Relay policy on both ends: every candidate in the answer is a TURN allocation.
        lines = [x for x in browser.remoteDescription.sdp.splitlines() if "a=candidate" in x]
        assert lines and all("typ relay" in x for x in lines)
    finally:
        await worker.close()
        await browser.close()
        await caller_tracks.stop()


def test_wrong_turn_secret_gives_no_relay_candidate(coturn: Coturn) -> None:
    asyncio.run(_wrong_turn_secret(coturn))


async def _wrong_turn_secret(coturn: Coturn) -> None:
    user, password = rest_credentials("not-the-secret", "pc-turn", 600)
    worker = CallWorker(CallConfig(media="synthetic", sink="count"), lambda e: None)
    await worker.prepare(
        [{"urls": [coturn.url], "username": user, "credential": password}],
        transport_policy="relay",
    )
    browser = peer([])
    browser.addTrack(SyntheticVideoTrack(160, 120, 5))
    try:
        await browser.setLocalDescription(await browser.createOffer())
        answer = await worker.answer(browser.localDescription.sdp)
        assert "typ relay" not in answer
    finally:
        await worker.close()
        await browser.close()


# --- the manager: policy paths with a stand-in media process -----------------------------------


class FakeWorker:
    """Stands in for the media process: answers offers, ends when stopped."""

    def __init__(self, *, crash_after_prepare: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pid = 4242
        self.proc = SimpleNamespace(returncode=None)
        self.stopped = False
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._crash = crash_after_prepare

    async def send(self, command: dict[str, Any]) -> None:
        self.sent.append(command)
        if command["op"] == "prepare" and self._crash:
            self._events.put_nowait(None)
        elif command["op"] == "offer":
            self._events.put_nowait({"ev": "answer", "sdp": "v=0\r\nfake answer"})
            self._events.put_nowait({"ev": "state", "state": "connected"})
        elif command["op"] == "stop":
            self._events.put_nowait({"ev": "stats", "stats": {"frames_received": 7}})
            self._events.put_nowait({"ev": "ended", "reason": command["reason"]})

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while (event := await self._events.get()) is not None:
            yield event

    async def stop(self, timeout: float = 5.0) -> None:
        self.stopped = True
        self._events.put_nowait(None)


class Harness:
    def __init__(self, *, assigned_window: bool = True, **config: Any) -> None:
        self.published: list[p.CallSignal] = []
        self.busy: list[bool] = []
        self.workers: list[FakeWorker] = []
        self.crash = False
        schedule = _schedule((NOW - 60, NOW + 1800)) if assigned_window else None
        self.desired = p.TwinDesired(ts=NOW, version=1, schedule=schedule)
        self.manager = CallManager(
            CallConfig(media="synthetic", **config),
            "pc-care-01",
            publish=self._publish,
            desired=lambda: self.desired,
            on_busy=self.busy.append,
            clock=lambda: NOW,
            spawn=self._spawn,
        )

    async def _publish(self, topic: str, payload: bytes) -> None:
        assert topic == "difronte/v1/dev/pc-care-01/call/out"
        self.published.append(p.decode(payload, p.CallSignal))

    async def _spawn(self, config: CallConfig) -> Worker:
        worker = FakeWorker(crash_after_prepare=self.crash)
        self.workers.append(worker)
        return worker  # type: ignore[return-value]

    def offer(self, session: str, *, assigned: bool = True) -> bytes:
        return p.encode(
            p.CallSignal(
                ts=NOW,
                session=session,
                type="offer",
                sdp="v=0\r\noffer",
                caller="Anna",
                assigned=assigned,
            )
        )

    def types(self, session: str) -> list[str]:
        return [m.type for m in self.published if m.session == session]


def test_manager_auto_answers_refuses_a_second_call_and_hangs_up() -> None:
    async def run() -> None:
        h = Harness()
        await h.manager.handle(h.offer("call-1"))
        await async_wait_until(lambda: "answer" in h.types("call-1"), message="answer")
        assert h.types("call-1")[:2] == ["accept", "answer"]
        assert h.published[0].reason == "auto"
        await async_wait_until(lambda: h.manager.state is CallState.CONNECTED, message="connected")
        # A second call while busy: refused with a plain "busy", the first one untouched.
        await h.manager.handle(h.offer("call-2"))
        assert [(m.type, m.reason) for m in h.published if m.session == "call-2"] == [
            ("error", "busy")
        ]
        await h.manager.handle(h.offer("call-1"))  # a QoS 1 duplicate changes nothing
        assert len(h.workers) == 1
        hangup = p.CallSignal(ts=NOW, session="call-1", type="hangup", reason="caller hung up")
        await h.manager.handle(p.encode(hangup))
        await async_wait_until(lambda: h.manager.state is CallState.IDLE, message="idle")
        assert h.workers[0].sent[-1] == {"op": "stop", "reason": "caller hung up"}
        assert h.types("call-1")[-1] == "stats"  # final figures, no echo of the hang-up
        assert h.busy == [True, False]

    asyncio.run(run())


def test_manager_keeps_a_warm_call_process_only_inside_windows() -> None:
    async def run() -> None:
        h = Harness()
        await h.manager.keep_warm()
        (warm,) = h.workers
        assert warm.sent == [{"op": "load"}]
        await h.manager.handle(h.offer("call-w"))
        await async_wait_until(lambda: "answer" in h.types("call-w"), message="answer")
        assert len(h.workers) == 1  # the warm process took the call
        await h.manager.handle(
            p.encode(p.CallSignal(ts=NOW, session="call-w", type="hangup", reason="bye"))
        )
        # Still inside the window: warm again for the next caller...
        await async_wait_until(lambda: len(h.workers) == 2, message="warm again")
        # ...and gone once the window is over.
        h.desired = p.TwinDesired(ts=NOW, version=2, schedule=_schedule((NOW - 7200, NOW - 3600)))
        await h.manager.keep_warm()
        assert h.workers[1].stopped
        await h.manager.keep_warm()
        assert len(h.workers) == 2
        await h.manager.close()

    asyncio.run(run())


def test_manager_rings_outside_a_window_and_the_person_answers() -> None:
    async def run() -> None:
        h = Harness(assigned_window=False)
        await h.manager.handle(h.offer("call-r"))
        await async_wait_until(lambda: h.types("call-r") == ["ring"], message="ring")
        assert "outside the appointment windows" in (h.published[0].reason or "")
        assert h.manager.state is CallState.RINGING
        assert h.manager.accept()
        await async_wait_until(lambda: "answer" in h.types("call-r"), message="answer")
        assert h.types("call-r")[:3] == ["ring", "accept", "answer"]
        await h.manager.close()

    asyncio.run(run())


def test_manager_gives_up_ringing_and_survives_a_crashed_media_process() -> None:
    async def run() -> None:
        h = Harness(assigned_window=False, ring_timeout_s=0.2)
        await h.manager.handle(h.offer("call-t"))
        await async_wait_until(lambda: h.manager.state is CallState.IDLE, message="gave up")
        assert h.published[-1].type == "error"
        assert (h.published[-1].reason or "").startswith("timeout:")
        h.crash = True
        await h.manager.handle(h.offer("call-c"))
        await async_wait_until(lambda: h.manager.state is CallState.IDLE, message="crash end")
        last = [m for m in h.published if m.session == "call-c"][-1]
        assert (last.type, (last.reason or "").split(":")[0]) == ("error", "media")
        assert h.busy == [True, False, True, False]

    asyncio.run(run())


def test_an_idle_daemon_never_loads_aiortc(tmp_path: Any) -> None:
    code = (
        "import sys\n"
        "from edge.config import EdgeConfig, MqttConfig, PathsConfig\n"
        "from edge.daemon import EdgeDaemon\n"
        f"cfg = EdgeConfig(device_id='pc-idle-01', mqtt=MqttConfig(password='x'),"
        f" paths=PathsConfig(state_dir={str(tmp_path)!r}))\n"
        "import asyncio\n"
        "async def main():\n"
        "    d = EdgeDaemon(cfg)\n"
        "    d._write_status()\n"
        "asyncio.run(main())\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('aiortc', 'av', 'aioice'))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["call"]["state"] == "idle"
