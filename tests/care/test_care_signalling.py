"""The call's signalling state machine, path by path, without sockets or a database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from control_plane.care.models import EndReason
from control_plane.care.signalling import (
    CallFlow,
    End,
    Phase,
    Record,
    ToBrowser,
    ToDevice,
    device_reason,
)
from edge import protocol as p


def _flow() -> CallFlow:
    return CallFlow(
        "call-1", now=0.0, setup_timeout_s=10, answer_timeout_s=30, silence_timeout_s=15
    )


def _sig(kind: str, **fields: object) -> p.CallSignal:
    return p.CallSignal(ts=1.0, session="call-1", type=kind, **fields)  # type: ignore[arg-type]


def _browser(effects: Sequence[object]) -> list[dict[str, Any]]:
    return [e.message for e in effects if isinstance(e, ToBrowser)]


def test_a_call_that_rings_is_answered_connects_and_is_hung_up() -> None:
    f = _flow()
    assert f.browser({"type": "offer", "sdp": "v=0"}, 1) == [ToDevice("offer", {"sdp": "v=0"})]
    assert _browser(f.browser({"type": "offer", "sdp": "v=0"}, 1)) == [
        {"type": "error", "message": "offer: already sent for this call"}
    ]
    assert f.browser({"type": "candidate", "candidate": None}, 1) == [
        ToDevice("candidate", {"candidate": None})
    ]
    ring = f.device(_sig("ring"), 2)
    assert _browser(ring) == [{"type": "ringing"}] and f.phase is Phase.RINGING
    assert f.deadline == 32
    assert f.device(_sig("ring"), 2) == []  # a duplicate
    accept = f.device(_sig("accept", reason="ring"), 5)
    assert Record({"answered": True, "auto_answered": False}) in accept
    assert _browser(f.device(_sig("answer", sdp="v=0 a"), 5)) == [
        {"type": "answer", "sdp": "v=0 a"}
    ]
    connected = f.browser({"type": "state", "state": "connected"}, 6)
    assert Record({"status": "connected"}) in connected and f.phase is Phase.CONNECTED
    assert f.device(_sig("stats", stats={"rtt_ms": 20.0}), 7) == [
        Record({"stats_device": {"rtt_ms": 20.0}})
    ]
    assert f.deadline == 22  # silence timer restarted by the device's stats
    stats = f.browser({"type": "stats", "stats": {"rtt": 0.02, "bad": "x", "inf": 1e999}}, 8)
    assert stats == [Record({"stats_browser": {"rtt": 0.02}})]
    end = f.browser({"type": "hangup"}, 9)
    assert end[0] == ToDevice("hangup", {"reason": "hung up by the caller"})
    assert _browser(end)[0]["reason"] == "hangup_caller"
    assert isinstance(end[-1], End) and f.phase is Phase.ENDED and f.deadline is None
    assert f.browser({"type": "hangup"}, 10) == []


def test_every_failure_path_ends_with_a_plain_message() -> None:
    f = _flow()
    f.browser({"type": "offer", "sdp": "v=0"}, 0)
    assert f.tick(5) == []
    timeout = f.tick(10)
    assert timeout[0] == ToDevice("hangup", {"reason": "timeout: no answer to the offer"})
    assert _browser(timeout)[0]["reason"] == "no_response"

    f = _flow()
    f.browser({"type": "offer", "sdp": "v=0"}, 0)
    f.device(_sig("ring"), 1)
    assert _browser(f.tick(31))[0] == {
        "type": "ended",
        "reason": "timeout",
        "message": "Nobody answered the call.",
    }

    f = _flow()
    f.browser({"type": "offer", "sdp": "v=0"}, 0)
    busy = f.device(_sig("error", reason="busy"), 1)
    assert _browser(busy)[0]["reason"] == "busy" and not any(isinstance(e, ToDevice) for e in busy)

    f = _flow()
    f.browser({"type": "offer", "sdp": "v=0"}, 0)
    f.device(_sig("accept", reason="auto"), 1)
    f.browser({"type": "state", "state": "connected"}, 2)
    gone = f.browser_gone()
    assert gone[0] == ToDevice("hangup", {"reason": "dropped: the caller's connection was lost"})
    assert not _browser(gone)  # nobody left to tell
    assert isinstance(gone[-1], End) and gone[-1].reason is EndReason.DROPPED

    f = _flow()
    f.browser({"type": "offer", "sdp": "v=0"}, 0)
    f.device(_sig("accept", reason="auto"), 1)
    f.browser({"type": "state", "state": "connected"}, 2)
    silent = f.tick(2 + 15)
    assert _browser(silent)[0]["reason"] == "dropped"

    f = _flow()
    restart = f.shutdown()
    assert restart[0] == ToDevice("hangup", {"reason": "dropped: the control plane is restarting"})
    assert f.shutdown() == []

    f = _flow()
    offline = f.device_offline()
    assert _browser(offline)[0]["message"].startswith("The connection was lost")


def test_bad_browser_messages_are_answered_and_change_nothing() -> None:
    f = _flow()
    assert _browser(f.browser({"type": "offer"}, 0)) == [
        {"type": "error", "message": "sdp: required with an offer"}
    ]
    assert _browser(f.browser({"type": "wave"}, 0)) == [
        {"type": "error", "message": "type: unknown message type 'wave'"}
    ]
    assert _browser(f.browser({"type": "candidate", "candidate": "x"}, 0))[0]["message"].startswith(
        "candidate:"
    )
    assert f.phase is Phase.SETUP and not f.offer_sent


def test_device_reasons_map_to_end_reasons() -> None:
    assert device_reason("media: camera busy", EndReason.ERROR) == (EndReason.MEDIA, "camera busy")
    assert device_reason("timeout: nobody answered", EndReason.ERROR)[0] is EndReason.TIMEOUT
    assert device_reason("the PC is shutting down", EndReason.HANGUP_DEVICE) == (
        EndReason.HANGUP_DEVICE,
        "the PC is shutting down",
    )
    assert device_reason(None, EndReason.ERROR) == (EndReason.ERROR, "")
