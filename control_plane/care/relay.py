"""The call relay: the caller's WebSocket on one side, the device's call/in and call/out on the
other.

Each replica relays the calls whose WebSocket it holds. It listens to every device's
``call/out`` with a plain (non-shared) subscription — a shared one would hand the device's
answer to whichever replica the broker picks, not to the one holding the browser — and drops
messages for sessions it does not hold. Per call, one task feeds a :class:`CallFlow` in
order: browser messages, device messages, deadlines, the device going offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from edge import protocol as p
from edge.protocol.messages import CallSignalType

from ..config import Settings
from ..db import utcnow
from ..models import User
from . import calls
from .access import AccessDenied
from .calls import CallRefused, OpenedCall
from .models import EndReason
from .signalling import END_MESSAGES, CallFlow, End, Record, ToBrowser, ToDevice
from .turn import ice_servers

log = logging.getLogger(__name__)

_TICK_S = 0.25
_HEARTBEAT_S = 5.0
_ONLINE_CHECK_S = 1.0
_DEDUP_KEEP = 512


@dataclass
class LiveCall:
    """A call this replica is relaying."""

    opened: OpenedCall
    flow: CallFlow
    websocket: WebSocket
    inbox: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class CallRelay:
    """Relays the calls of this control-plane replica."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self._factory = factory
        self._settings = settings
        self._mqtt: Any = None
        self._live: dict[str, LiveCall] = {}
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {"relayed_to_browser": 0, "relayed_to_device": 0, "duplicates": 0}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, app: FastAPI) -> None:
        """Listen to call/out and start the deadline/heartbeat loop."""
        self._mqtt = app.state.mqtt
        if self._mqtt is not None:
            self._mqtt.add_listener(p.device_filter(p.TopicKind.CALL_OUT), self._on_call_out)
        self._tasks.append(asyncio.create_task(self._watch(), name="care-call-watch"))

    async def stop(self, _app: FastAPI) -> None:
        """End every call this replica holds (the callers see "dropped"), stop the loop."""
        for live in list(self._live.values()):
            live.inbox.put_nowait(("shutdown", None))
        for live in list(self._live.values()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.done.wait(), 5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def active(self) -> list[str]:
        """Sessions relayed here right now."""
        return list(self._live)

    # -- device side -----------------------------------------------------------------------

    def _on_call_out(self, topic: str, payload: bytes) -> None:
        # QoS 1 may deliver twice, and so may an overlapping shared subscription.
        digest = hashlib.blake2b(topic.encode() + b"\0" + payload, digest_size=16).digest()
        if digest in self._seen:
            self.stats["duplicates"] += 1
            return
        self._seen[digest] = None
        while len(self._seen) > _DEDUP_KEEP:
            self._seen.popitem(last=False)
        try:
            parsed = p.parse_topic(topic)
            signal = p.decode(payload, p.CallSignal)
        except p.ProtocolError as exc:
            log.warning("call/out refused on %s: %s", topic, exc)
            return
        live = self._live.get(signal.session)
        if live is None or live.opened.device_id != parsed.device_id:
            return  # another replica's call (or a forged session from another device)
        live.inbox.put_nowait(("device", signal))

    async def _watch(self) -> None:
        last_heartbeat = last_online = 0.0
        while True:
            await asyncio.sleep(_TICK_S)
            now = time.monotonic()
            for live in list(self._live.values()):
                deadline = live.flow.deadline
                if deadline is not None and now >= deadline:
                    live.inbox.put_nowait(("tick", None))
            try:
                if now - last_heartbeat >= _HEARTBEAT_S and self._live:
                    last_heartbeat = now
                    ids = [live.opened.call_id for live in self._live.values()]
                    await asyncio.to_thread(self._db, calls.heartbeat, ids, utcnow())
                if now - last_online >= _ONLINE_CHECK_S and self._live:
                    last_online = now
                    devices = [live.opened.device_id for live in self._live.values()]
                    offline = await asyncio.to_thread(self._db, calls.offline_devices, devices)
                    for live in list(self._live.values()):
                        if live.opened.device_id in offline:
                            live.inbox.put_nowait(("offline", None))
            except Exception:  # the database away for a moment must not stop the deadlines
                log.exception("call watch: database check failed")

    def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # SQLite refuses a deferred transaction's first write when another writer got in
        # first ("database is locked", without waiting): try again on a fresh snapshot.
        for attempt in range(5):
            try:
                with self._factory() as session:
                    result = fn(session, *args, **kwargs)
                    session.commit()
                    return result
            except OperationalError as exc:
                if "locked" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    # -- browser side ----------------------------------------------------------------------

    async def serve(self, websocket: WebSocket, user_id: int, beneficiary_id: int) -> None:
        """Run one call for an accepted WebSocket until it ends."""
        try:
            opened = await asyncio.to_thread(self._open, user_id, beneficiary_id)
        except CallRefused as exc:
            await self._refuse(
                websocket, exc.reason.value, END_MESSAGES[exc.reason.value], call_id=exc.call_id
            )
            return
        except AccessDenied as exc:
            await self._refuse(
                websocket, "forbidden", exc.detail, code=4404 if exc.status_code == 404 else 4403
            )
            return
        if self._mqtt is None:
            await asyncio.to_thread(
                self._db,
                calls.finish,
                opened.call_id,
                EndReason.ERROR,
                "MQTT is disabled on this control plane",
                actor="system",
            )
            await self._refuse(websocket, "error", END_MESSAGES["error"], call_id=opened.call_id)
            return
        flow = CallFlow(
            opened.session,
            now=time.monotonic(),
            setup_timeout_s=self._settings.call_setup_timeout_s,
            answer_timeout_s=self._settings.call_answer_timeout_s,
            silence_timeout_s=self._settings.call_silence_timeout_s,
        )
        live = LiveCall(opened, flow, websocket)
        self._live[opened.session] = live
        log.info("call %s: user %d -> %s", opened.session, user_id, opened.device_id)
        reader = asyncio.create_task(self._read_browser(live), name=f"ws-{opened.session}")
        try:
            await websocket.send_json(
                {
                    "type": "ready",
                    "call_id": opened.call_id,
                    "session": opened.session,
                    "beneficiary": opened.beneficiary_name,
                    "ice_servers": ice_servers(self._settings, f"user-{user_id}"),
                    "answer_timeout_s": self._settings.call_answer_timeout_s,
                }
            )
            await self._process(live)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._live.pop(opened.session, None)
            live.done.set()
            with contextlib.suppress(Exception):
                await websocket.close()

    def _open(self, user_id: int, beneficiary_id: int) -> OpenedCall:
        with self._factory() as session:
            user = session.get(User, user_id)
            if user is None or not user.is_active:
                raise AccessDenied("authentication required", 401)
            try:
                opened = calls.open_call(
                    session,
                    user=user,
                    beneficiary_id=beneficiary_id,
                    replica=self._settings.mqtt_instance,
                )
            except (CallRefused, AccessDenied):
                session.commit()  # keep the failed record and the audit entry
                raise
            session.commit()
            return opened

    async def _refuse(
        self,
        websocket: WebSocket,
        reason: str,
        message: str,
        *,
        call_id: int | None = None,
        code: int = 4000,
    ) -> None:
        with contextlib.suppress(Exception):
            await websocket.send_json(
                {"type": "ended", "reason": reason, "message": message, "call_id": call_id}
            )
            await websocket.close(code=code)

    async def _read_browser(self, live: LiveCall) -> None:
        try:
            while True:
                message = await live.websocket.receive_json()
                if not isinstance(message, dict):
                    message = {"type": None}
                live.inbox.put_nowait(("browser", message))
        except (WebSocketDisconnect, RuntimeError, ValueError):
            live.inbox.put_nowait(("gone", None))

    async def _process(self, live: LiveCall) -> None:
        flow = live.flow
        while True:
            source, item = await live.inbox.get()
            now = time.monotonic()
            if source == "browser":
                effects = flow.browser(item, now)
            elif source == "device":
                effects = flow.device(item, now)
            elif source == "tick":
                effects = flow.tick(now)
            elif source == "offline":
                effects = flow.device_offline()
            elif source == "shutdown":
                effects = flow.shutdown()
            else:  # "gone"
                effects = flow.browser_gone()
            for effect in effects:
                await self._apply(live, effect)
            if flow.end is not None:
                return

    async def _apply(self, live: LiveCall, effect: Any) -> None:
        opened = live.opened
        if isinstance(effect, ToBrowser):
            self.stats["relayed_to_browser"] += 1
            with contextlib.suppress(Exception):  # gone already: the flow hears of it
                await live.websocket.send_json(effect.message)
        elif isinstance(effect, ToDevice):
            await self._to_device(live, effect)
        elif isinstance(effect, Record):
            try:
                await asyncio.to_thread(
                    self._db, calls.record, opened.call_id, effect.changes, utcnow()
                )
            except Exception:
                log.exception("call %s: recording %s failed", opened.session, effect.changes)
        elif isinstance(effect, End):
            actor = (
                f"user:{opened.caller_id}"
                if effect.reason is EndReason.HANGUP_CALLER
                else f"device:{opened.device_id}"
            )
            await asyncio.to_thread(
                self._db,
                calls.finish,
                opened.call_id,
                effect.reason,
                effect.detail or effect.message,
                actor=actor,
            )
            log.info("call %s ended: %s %s", opened.session, effect.reason.value, effect.detail)

    async def _to_device(self, live: LiveCall, effect: ToDevice) -> None:
        opened = live.opened
        fields = dict(effect.fields)
        if effect.type == "offer":
            fields.update(
                ice_servers=[
                    p.IceServer(**server)
                    for server in ice_servers(self._settings, opened.device_id)
                ],
                caller=opened.caller_name[:200],
                assigned=opened.assigned,
            )
        signal = p.CallSignal(
            ts=p.now(), session=opened.session, type=cast(CallSignalType, effect.type), **fields
        )
        try:
            await self._mqtt.publish(
                p.topic(p.TopicKind.CALL_IN, opened.device_id), p.encode(signal), timeout=5.0
            )
            self.stats["relayed_to_device"] += 1
        except Exception as exc:
            log.warning(
                "call %s: %s not delivered to %s: %s",
                opened.session,
                effect.type,
                opened.device_id,
                exc,
            )
            if effect.type != "hangup":
                live.inbox.put_nowait(("offline", None))
