"""The control plane's MQTT session: birth/will, subscriptions, ingest workers, publishing.

We own the connection loop (STYLE 3): reconnect with full-jitter capped backoff, subscriptions
re-made on every connect, a refused password stops retrying. Messages are queued and stored by
worker tasks in batches, one database transaction per batch, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from edge import protocol as p

from .config import Settings
from .mqtt_wire import ConnectRefused, Messages, MqttWireError, SubscriberConnection
from .periodic import run_in_thread_to_completion

log = logging.getLogger(__name__)

QUEUE_HIGH = 50_000  # messages queued for storage above which ingest stops reading
QUEUE_LOW = 10_000

_AUTH_CODES = {4, 5, 134, 135}  # MQTT 3.1.1 and 5 "bad credentials" / "not authorised"
BatchHandler = Callable[[Sequence[tuple[str, bytes]]], None]
Listener = Callable[[str, bytes], None]


@functools.lru_cache(maxsize=256)
def _filter_regex(flt: str) -> re.Pattern[str]:
    """An MQTT topic filter as a compiled regular expression (``+`` one level, ``#`` the rest)."""
    parts = []
    for level in flt.split("/"):
        if level == "+":
            parts.append("[^/]*")
        elif level == "#":
            parts.append(".*")
        else:
            parts.append(re.escape(level))
    pattern = "/".join(parts)
    if pattern.endswith("/.*"):  # "a/#" also matches "a" itself
        pattern = pattern[:-3] + "(?:/.*)?"
    return re.compile(pattern + r"\Z")


def _matches(flt: str, topic: str) -> bool:
    # paho's topic_matches_sub builds a matcher tree on every call: at thousands of messages
    # a second that was a visible share of the receive loop. Filters are few; compile once.
    return _filter_regex(flt).match(topic) is not None


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff (aiomqtt / AWS architecture blog)."""
    return random.uniform(0, min(cap, base * 2**attempt))


def is_auth_failure(exc: BaseException) -> bool:
    """True when the broker refused our credentials: retrying won't help."""
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return isinstance(exc, MqttConnectError) and value in _AUTH_CODES


class MqttService:
    """One MQTT connection of a control-plane process, with its ingest workers."""

    def __init__(
        self,
        settings: Settings,
        handle_batch: BatchHandler,
        subscriptions: Sequence[str],
        *,
        workers: int = 2,
        batch_max: int = 500,
        linger_s: float = 0.01,
    ) -> None:
        self._settings = settings
        self._handle_batch = handle_batch
        self._subscriptions = list(subscriptions)
        self._workers = workers
        self._batch_max = batch_max
        self._linger_s = linger_s
        # Unbounded, but the ingest connection stops reading above QUEUE_HIGH (the broker then
        # holds what comes) and reads again below QUEUE_LOW.
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._client: aiomqtt.Client | None = None
        self._ingest: SubscriberConnection | None = None
        self._paused = False
        self._stopping = False
        self._control_up = False
        self._ingest_up = False
        self.connected = asyncio.Event()  # both connections up, every subscription made
        self.auth_failed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self._listeners: list[tuple[str, Listener]] = []

    def on_connect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` after every (re)connect, once subscriptions are in place."""
        self._on_connect.append(callback)

    def add_listener(self, topic_filter: str, callback: Listener) -> None:
        """Subscribe to ``topic_filter`` (made on every connect) and call ``callback(topic,
        payload)`` on the event loop for each message matching it, outside the ingest queue.

        For live traffic every replica must see (call signalling): use a plain, non-shared
        filter. The callback must be quick and must not raise; hand work to a task.
        """
        self._listeners.append((topic_filter, callback))
        client = self._client
        if client is not None and self.connected.is_set():

            async def _subscribe_now() -> None:
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.subscribe(topic_filter, qos=1)

            self._tasks.append(asyncio.get_running_loop().create_task(_subscribe_now()))

    def _dispatch_listeners(self, topic: str, payload: bytes) -> None:
        """Call the listeners matching ``topic``."""
        for flt, callback in self._listeners:
            if _matches(flt, topic):
                try:
                    callback(topic, payload)
                except Exception:
                    log.exception("mqtt listener for %s failed", flt)

    async def start(self) -> None:
        """Start the connection loops and the workers in the background."""
        self._tasks.append(asyncio.create_task(self._connection_loop(), name="cp-mqtt"))
        if self._subscriptions:
            self._tasks.append(asyncio.create_task(self._ingest_loop(), name="cp-mqtt-ingest"))
        else:
            self._ingest_up = True
        for i in range(self._workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"cp-ingest-{i}"))

    async def stop(self, timeout: float = 5.0) -> None:
        """Store what is queued (bounded by ``timeout``), then cancel and await every task."""
        # Read no more: what the broker still holds stays there (in the kept session) rather
        # than being acknowledged now and lost with this process.
        self._stopping = True
        if self._ingest is not None:
            self._ingest.pause_reading()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10.0
    ) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        await asyncio.wait_for(self.connected.wait(), timeout)
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1, retain=retain, timeout=timeout)

    def _will(self) -> aiomqtt.Will:
        msg = p.CpStatus(ts=p.now(), online=False, instance=self._settings.mqtt_instance)
        return aiomqtt.Will(p.topic(p.TopicKind.CP_STATUS), p.encode(msg), qos=1, retain=True)

    def _tls(self) -> ssl.SSLContext | None:
        if self._settings.mqtt_tls_ca is None:
            return None
        return ssl.create_default_context(cafile=str(self._settings.mqtt_tls_ca))

    async def _connection_loop(self) -> None:
        s = self._settings
        attempt = 0
        while True:
            try:
                async with aiomqtt.Client(
                    s.mqtt_host,
                    s.mqtt_port,
                    username=s.mqtt_username,
                    password=s.mqtt_password,
                    identifier=f"difronte-cp-{s.mqtt_instance}",
                    keepalive=s.mqtt_keepalive,
                    will=self._will(),
                    tls_context=self._tls(),
                    clean_session=True,
                    max_queued_incoming_messages=0,
                    logger=log,
                ) as client:
                    self._client = client
                    for flt, _callback in self._listeners:
                        await client.subscribe(flt, qos=1)
                    birth = p.CpStatus(ts=p.now(), online=True, instance=s.mqtt_instance)
                    await client.publish(
                        p.topic(p.TopicKind.CP_STATUS), p.encode(birth), qos=1, retain=True
                    )
                    attempt = 0
                    log.info("connected to mqtt://%s:%d", s.mqtt_host, s.mqtt_port)
                    await self._set_up(control=True)
                    async for message in client.messages:
                        payload = message.payload
                        data = payload if isinstance(payload, bytes) else str(payload).encode()
                        self._dispatch_listeners(message.topic.value, data)
            except aiomqtt.MqttError as exc:
                self._set_down(control=True)
                self._client = None
                if is_auth_failure(exc):
                    self.auth_failed = True
                    log.error("the broker refused the control plane's credentials: %s", exc)
                    return
                delay = backoff_delay(attempt, cap=s.mqtt_backoff_cap_s)
                attempt += 1
                if attempt == 1:
                    log.warning("mqtt connection lost (%s); reconnecting", exc)
                await asyncio.sleep(delay)

    async def _set_up(self, *, control: bool = False, ingest: bool = False) -> None:
        """Note a connection up; once both are, the service is connected (on_connect runs)."""
        self._control_up |= control
        self._ingest_up |= ingest
        if self._control_up and self._ingest_up and not self.connected.is_set():
            self.connected.set()
            for callback in self._on_connect:
                await callback()

    def _set_down(self, *, control: bool = False, ingest: bool = False) -> None:
        if control:
            self._control_up = False
        if ingest:
            self._ingest_up = False
        self.connected.clear()

    def _received(self, messages: Messages) -> None:
        """From the ingest connection: queue for the workers, and hold the socket if behind."""
        put = self._queue.put_nowait
        for item in messages:
            put(item)
        if self._queue.qsize() > QUEUE_HIGH and self._ingest is not None and not self._paused:
            self._paused = True
            self._ingest.pause_reading()

    def _drained(self) -> None:
        if self._paused and not self._stopping and self._queue.qsize() < QUEUE_LOW:
            self._paused = False
            if self._ingest is not None:
                self._ingest.resume_reading()

    async def _ingest_loop(self) -> None:
        """The device streams, on a lean subscriber connection of their own (mqtt_wire)."""
        s = self._settings
        attempt = 0
        while True:
            try:
                connection = await SubscriberConnection.open(
                    s.mqtt_host,
                    s.mqtt_port,
                    client_id=f"difronte-cp-{s.mqtt_instance}-ingest",
                    username=s.mqtt_username,
                    password=s.mqtt_password,
                    keepalive=s.mqtt_keepalive,
                    filters=self._subscriptions,
                    on_messages=self._received,
                    tls=self._tls(),
                    clean_session=not s.ingest_persistent_session,
                )
            except ConnectRefused as exc:
                if exc.rc in _AUTH_CODES:
                    self.auth_failed = True
                    log.error("the broker refused the control plane's credentials: %s", exc)
                    return
                error: Exception = exc
            except MqttWireError as exc:
                error = exc
            else:
                self._ingest = connection
                self._paused = False
                attempt = 0
                if connection.session_present:
                    log.info("ingest session resumed: the broker kept what came meanwhile")
                await self._set_up(ingest=True)
                try:
                    await connection.wait_closed()
                    error = MqttWireError("the broker closed the connection")
                except MqttWireError as exc:
                    error = exc
                finally:
                    self._set_down(ingest=True)
                    self._ingest = None
                    await connection.close()
            delay = backoff_delay(attempt, cap=s.mqtt_backoff_cap_s)
            attempt += 1
            if attempt == 1:
                log.warning("mqtt ingest connection lost (%s); reconnecting", error)
            await asyncio.sleep(delay)

    async def _worker(self) -> None:
        while True:
            first = await self._queue.get()
            if self._linger_s > 0 and self._queue.qsize() < self._batch_max:
                # Let the stream fill the batch a little: a transaction per few messages
                # costs more (commit, thread hand-over) than the few milliseconds waited.
                await asyncio.sleep(self._linger_s)
            batch = [first]
            while len(batch) < self._batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await run_in_thread_to_completion(self._handle_batch, batch)
            except Exception:
                # Storage trouble (database down): log and keep the loop alive.
                log.exception("storing %d messages failed", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
                self._drained()
