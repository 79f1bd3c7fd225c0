"""The device's MQTT session: birth and Last Will, subscriptions, reconnects.

We own the loop (STYLE 3): fixed client id = device id, a new session counter on every
connect so a stale will can never override a newer birth, full-jitter capped backoff, and a
refused password stops retrying (and says so in the status file).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import cast

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from edge import protocol as p
from edge.protocol.messages import BootReason

from .config import EdgeConfig

log = logging.getLogger(__name__)

_AUTH_CODES = {4, 5, 134, 135}
OUTBOX_WINDOW = 32

MessageHandler = Callable[[p.ParsedTopic, bytes], Awaitable[None]]


class NotConnected(ConnectionError):
    """Publishing needs a live connection to the broker."""


class AuthRefused(ConnectionError):
    """The broker refused this device's credentials: retrying will not help."""


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 60.0) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0, min(cap, base * 2**attempt))


def _is_auth_failure(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return isinstance(exc, MqttConnectError) and value in _AUTH_CODES


class MqttSession:
    """One device's connection to the broker, kept alive for the daemon's lifetime."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        next_session: Callable[[], int],
        boot_reason: Callable[[], str],
        agent_version: str,
        on_message: MessageHandler,
        on_connected: Callable[[], Awaitable[None]] | None = None,
        on_state: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self._device = config.device_id
        self._next_session = next_session
        self._boot_reason = boot_reason
        self._agent_version = agent_version
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_state = on_state or (lambda: None)
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnected.set()
        self.session = -1
        self.auth_failed = False
        self.last_error = ""
        self.connects = 0
        # Set by close(): our own goodbye must not be "repaired" by _guard_status.
        self._closing = False
        self._subscriptions = [
            p.topic(kind, self._device)
            for kind in (
                p.TopicKind.TWIN_DESIRED,
                p.TopicKind.JOBS_NOTIFY,
                p.TopicKind.CALL_IN,
                p.TopicKind.STATUS,
            )
        ]

    def _status(self, online: bool) -> bytes:
        reason = self._boot_reason()
        boot = cast(BootReason, reason if reason in ("rtc", "button", "power") else "unknown")
        status = p.Status(
            ts=p.now(),
            online=online,
            session=self.session,
            agent_version=self._agent_version,
            boot_reason=boot,
        )
        return p.encode(status)

    def _tls(self) -> ssl.SSLContext | None:
        if not self._config.mqtt.tls_ca:
            return None
        return ssl.create_default_context(cafile=self._config.mqtt.tls_ca)

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 15.0
    ) -> None:
        """Publish at QoS 1; returns when the broker has PUBACKed it."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise NotConnected("not connected to the broker")
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=timeout)
        except aiomqtt.MqttError as exc:
            raise NotConnected(f"publish failed: {exc}") from exc

    async def close(self) -> None:
        """Say goodbye (retained offline status) if connected; the loop then ends."""
        self._closing = True
        if self.connected.is_set() and self._client is not None:
            try:
                await self.publish(
                    p.topic(p.TopicKind.STATUS, self._device),
                    self._status(False),
                    retain=True,
                    timeout=3.0,
                )
            except ConnectionError:
                pass

    async def run(self) -> None:
        """Connect, and reconnect, until cancelled or the broker refuses our password."""
        cfg = self._config.mqtt
        attempt = 0
        while True:
            self.session = self._next_session()
            will = aiomqtt.Will(
                p.topic(p.TopicKind.STATUS, self._device), self._status(False), qos=1, retain=True
            )
            try:
                async with aiomqtt.Client(
                    cfg.host,
                    cfg.port,
                    username=self._device,
                    password=cfg.password,
                    identifier=self._device,
                    keepalive=cfg.keepalive,
                    will=will,
                    tls_context=self._tls(),
                    clean_session=True,
                    logger=log,
                    # The outbox keeps up to its window of publishes in flight.
                    max_inflight_messages=OUTBOX_WINDOW,
                ) as client:
                    client.pending_calls_threshold = OUTBOX_WINDOW * 2
                    self._client = client
                    for flt in self._subscriptions:
                        await client.subscribe(flt, qos=1)
                    await client.publish(
                        p.topic(p.TopicKind.STATUS, self._device),
                        self._status(True),
                        qos=1,
                        retain=True,
                    )
                    await client.publish(
                        p.topic(p.TopicKind.JOBS_GET, self._device),
                        p.encode(p.JobsGet(ts=p.now())),
                        qos=1,
                    )
                    self.connects += 1
                    attempt = 0
                    self.last_error = ""
                    self.disconnected.clear()
                    self.connected.set()
                    self._on_state()
                    log.info(
                        "connected to %s:%d as %s (session %d)",
                        cfg.host,
                        cfg.port,
                        self._device,
                        self.session,
                    )
                    if self._on_connected is not None:
                        await self._on_connected()
                    async for message in client.messages:
                        await self._dispatch(client, message)
            except aiomqtt.MqttError as exc:
                self._lost(str(exc))
                if _is_auth_failure(exc):
                    self.auth_failed = True
                    self.last_error = f"the broker refused the credentials: {exc}"
                    self._on_state()
                    log.error("%s; not retrying", self.last_error)
                    raise AuthRefused(self.last_error) from exc
                delay = backoff_delay(attempt, cap=cfg.backoff_cap_s)
                if attempt == 0:
                    log.warning("broker connection lost (%s); retrying", exc)
                attempt += 1
                await asyncio.sleep(delay)
            finally:
                if self.connected.is_set():
                    self._lost("closed")

    def _lost(self, reason: str) -> None:
        self._client = None
        self.connected.clear()
        self.disconnected.set()
        self.last_error = reason
        self._on_state()

    async def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            parsed = p.parse_topic(message.topic.value)
        except p.ProtocolError as exc:
            log.warning("message on unexpected topic %s: %s", message.topic.value, exc)
            return
        if parsed.kind is p.TopicKind.STATUS:
            await self._guard_status(client, payload)
            return
        await self._on_message(parsed, payload)

    async def _guard_status(self, client: aiomqtt.Client, payload: bytes) -> None:
        # The broker may publish the Last Will of our previous connection *after* our new birth
        # (client-id takeover after a crash): the retained state would then say "offline".
        # Seeing that, publish the birth again so the retained status is ours.
        if self._closing:
            return  # that "offline" is our own goodbye
        try:
            seen = p.decode(payload, p.Status)
        except p.ProtocolError:
            seen = None
        if seen is not None and seen.online and seen.session == self.session:
            return
        if seen is not None and seen.session > self.session:
            log.error(
                "status of session %d is newer than ours (%d): is another process using "
                "device id %s?",
                seen.session,
                self.session,
                self._device,
            )
            return
        log.info(
            "retained status is stale (%s); publishing birth again",
            "empty" if seen is None else f"session {seen.session}, online={seen.online}",
        )
        await client.publish(
            p.topic(p.TopicKind.STATUS, self._device), self._status(True), qos=1, retain=True
        )
