"""The signalling of one call, as a pure state machine (sans-IO).

:class:`CallFlow` is fed what the browser says, what the device says and the passing of
time; it answers with effects for the relay to carry out (send to the browser, send to the
device, record, end). No socket, no database, no clock of its own: every path — offline,
busy, unanswered, dropped — is tested by feeding it messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from edge import protocol as p

from .models import EndReason

# What each end reason means, in plain words (the console shows its translation).
END_MESSAGES: dict[str, str] = {
    EndReason.HANGUP_CALLER.value: "The call has ended.",
    EndReason.HANGUP_DEVICE.value: "The call was ended on the PC.",
    EndReason.OFFLINE.value: "The PC is switched off or not connected. Try again later.",
    EndReason.BUSY.value: "The PC is already in another call. Try again in a few minutes.",
    EndReason.TIMEOUT.value: "Nobody answered the call.",
    EndReason.NO_RESPONSE.value: "The PC did not respond. It may have just switched off.",
    EndReason.DROPPED.value: "The connection was lost and the call has ended.",
    EndReason.DECLINED.value: "The call was not accepted on the PC.",
    EndReason.MEDIA.value: "The camera or microphone of the PC is not working.",
    EndReason.ERROR.value: "The call could not be set up.",
}

# Reasons the device gives in "error" and "hangup" messages ("<code>: <detail>").
_DEVICE_CODES = {
    "busy": EndReason.BUSY,
    "disabled": EndReason.DECLINED,
    "declined": EndReason.DECLINED,
    "timeout": EndReason.TIMEOUT,
    "media": EndReason.MEDIA,
    "webrtc": EndReason.ERROR,
    "dropped": EndReason.DROPPED,
}


class Phase(enum.StrEnum):
    """Where the call is, as the control plane sees it."""

    SETUP = "setup"  # waiting for the browser's offer, then for the device to react
    RINGING = "ringing"
    CONNECTING = "connecting"  # the device accepted; media being set up
    CONNECTED = "connected"
    ENDED = "ended"


@dataclass(frozen=True)
class ToBrowser:
    """Send this JSON object over the WebSocket."""

    message: dict[str, Any]


@dataclass(frozen=True)
class ToDevice:
    """Publish a ``call/in`` message of ``type`` with these fields."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """Store these changes on the call record (``status``, timestamps, stats...)."""

    changes: dict[str, Any]


@dataclass(frozen=True)
class End:
    """The call is over: record it, release the device, close the WebSocket."""

    reason: EndReason
    message: str
    detail: str = ""


Effect = ToBrowser | ToDevice | Record | End


def device_reason(text: str | None, default: EndReason) -> tuple[EndReason, str]:
    """(end reason, detail) from a device's ``"<code>: <detail>"`` reason text."""
    if not text:
        return default, ""
    code, sep, detail = text.partition(":")
    reason = _DEVICE_CODES.get(code.strip().lower())
    if reason is None:
        return default, text
    return reason, detail.strip() if sep else ""


class CallFlow:
    """The signalling state of one call on the replica holding the caller's WebSocket."""

    def __init__(
        self,
        session: str,
        *,
        now: float,
        setup_timeout_s: float,
        answer_timeout_s: float,
        silence_timeout_s: float,
    ) -> None:
        self.session = session
        self.phase = Phase.SETUP
        self.offer_sent = False
        self.setup_timeout_s = setup_timeout_s
        self.answer_timeout_s = answer_timeout_s
        self.silence_timeout_s = silence_timeout_s
        self._deadline: float | None = now + setup_timeout_s
        self.end: End | None = None

    @property
    def deadline(self) -> float | None:
        """When :meth:`tick` must next be called (None: nothing pending)."""
        return None if self.phase is Phase.ENDED else self._deadline

    # -- inputs --------------------------------------------------------------------------

    def browser(self, message: dict[str, Any], now: float) -> list[Effect]:
        """One JSON message from the caller's browser."""
        if self.phase is Phase.ENDED:
            return []
        kind = message.get("type")
        if kind == "offer":
            sdp = message.get("sdp")
            if self.offer_sent:
                return [ToBrowser(_error("offer: already sent for this call"))]
            if not isinstance(sdp, str) or not sdp.strip():
                return [ToBrowser(_error("sdp: required with an offer"))]
            if len(sdp) > 60000:
                return [ToBrowser(_error("sdp: longer than 60000 characters"))]
            self.offer_sent = True
            self._deadline = now + self.setup_timeout_s
            return [ToDevice("offer", {"sdp": sdp})]
        if kind == "candidate":
            candidate = message.get("candidate")
            if candidate is not None and not isinstance(candidate, dict):
                return [ToBrowser(_error("candidate: must be an object or null"))]
            return [ToDevice("candidate", {"candidate": candidate})]
        if kind == "state":
            return self._browser_state(str(message.get("state")), now)
        if kind == "stats":
            stats = message.get("stats")
            if not isinstance(stats, dict):
                return [ToBrowser(_error("stats: must be an object"))]
            clean = {
                str(k)[:64]: float(v)
                for k, v in list(stats.items())[:100]
                if isinstance(v, int | float)
                and not isinstance(v, bool)
                and v == v
                and abs(v) != float("inf")
            }
            return [Record({"stats_browser": clean})]
        if kind == "hangup":
            return self._finish(EndReason.HANGUP_CALLER, to_device="hung up by the caller")
        return [ToBrowser(_error(f"type: unknown message type {kind!r}"))]

    def device(self, signal: p.CallSignal, now: float) -> list[Effect]:
        """One ``call/out`` message from the device about this call."""
        if self.phase is Phase.ENDED:
            return []
        kind = signal.type
        if kind == "ring":
            if self.phase is not Phase.SETUP:
                return []  # a duplicate
            self.phase = Phase.RINGING
            self._deadline = now + self.answer_timeout_s
            return [
                ToBrowser({"type": "ringing"}),
                Record({"status": "ringing"}),
            ]
        if kind == "accept":
            if self.phase not in (Phase.SETUP, Phase.RINGING):
                return []
            self.phase = Phase.CONNECTING
            self._deadline = now + self.setup_timeout_s
            auto = signal.reason == "auto"
            return [
                ToBrowser({"type": "accepted", "auto": auto}),
                Record({"answered": True, "auto_answered": auto}),
            ]
        if kind == "answer":
            if self.phase is Phase.SETUP:
                # Some devices answer without an explicit accept: treat it as one.
                self.phase = Phase.CONNECTING
                self._deadline = now + self.setup_timeout_s
            return [ToBrowser({"type": "answer", "sdp": signal.sdp})]
        if kind == "candidate":
            return [ToBrowser({"type": "candidate", "candidate": signal.candidate})]
        if kind == "stats":
            if self.phase is Phase.CONNECTED:
                self._deadline = now + self.silence_timeout_s
            return [Record({"stats_device": dict(signal.stats or {})})]
        if kind == "hangup":
            reason, detail = device_reason(signal.reason, EndReason.HANGUP_DEVICE)
            return self._finish(reason, detail=detail)
        if kind == "error":
            reason, detail = device_reason(signal.reason, EndReason.ERROR)
            return self._finish(reason, detail=detail)
        return []

    def tick(self, now: float) -> list[Effect]:
        """Time has passed: end the call if a deadline is over."""
        if self.phase is Phase.ENDED or self._deadline is None or now < self._deadline:
            return []
        if self.phase is Phase.RINGING:
            return self._finish(EndReason.TIMEOUT, to_device="timeout: nobody answered")
        if self.phase is Phase.CONNECTED:
            return self._finish(EndReason.DROPPED, to_device="dropped: no word from the PC")
        if self.phase is Phase.CONNECTING:
            return self._finish(
                EndReason.ERROR, to_device="timeout: the connection was not established"
            )
        if not self.offer_sent:
            return self._finish(EndReason.ERROR, detail="the browser sent no offer")
        return self._finish(EndReason.NO_RESPONSE, to_device="timeout: no answer to the offer")

    def browser_gone(self) -> list[Effect]:
        """The caller's WebSocket closed without a hang-up (tab closed, network lost)."""
        if self.phase is Phase.ENDED:
            return []
        return self._finish(
            EndReason.DROPPED,
            to_device="dropped: the caller's connection was lost",
            tell_browser=False,
        )

    def device_offline(self) -> list[Effect]:
        """The device went offline (its Last Will) during the call."""
        if self.phase is Phase.ENDED:
            return []
        return self._finish(EndReason.DROPPED, detail="the PC went offline")

    def shutdown(self) -> list[Effect]:
        """This control-plane replica is stopping: end the call on both sides."""
        if self.phase is Phase.ENDED:
            return []
        return self._finish(EndReason.DROPPED, to_device="dropped: the control plane is restarting")

    # -- helpers -------------------------------------------------------------------------

    def _browser_state(self, state: str, now: float) -> list[Effect]:
        if state == "connected" and self.phase in (Phase.CONNECTING, Phase.SETUP):
            self.phase = Phase.CONNECTED
            self._deadline = now + self.silence_timeout_s
            return [ToBrowser({"type": "connected"}), Record({"status": "connected"})]
        if state == "failed":
            return self._finish(EndReason.DROPPED, to_device="dropped: the connection failed")
        return []

    def _finish(
        self,
        reason: EndReason,
        *,
        to_device: str | None = None,
        detail: str = "",
        tell_browser: bool = True,
    ) -> list[Effect]:
        self.phase = Phase.ENDED
        self._deadline = None
        message = END_MESSAGES[reason.value]
        effects: list[Effect] = []
        if to_device is not None:
            effects.append(ToDevice("hangup", {"reason": to_device}))
        if tell_browser:
            effects.append(ToBrowser({"type": "ended", "reason": reason.value, "message": message}))
        self.end = End(reason, message, detail)
        effects.append(self.end)
        return effects


def _error(detail: str) -> dict[str, Any]:
    return {"type": "error", "message": detail}
