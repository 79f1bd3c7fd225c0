"""A lean MQTT 3.1.1 subscriber connection for the ingest stream.

The control plane receives every device's telemetry, thousands of messages a second on one
connection. A general client (paho, under aiomqtt) handles each message on its own: a few
``recv`` calls to read one packet, an object and callbacks per message, one ``send`` per
PUBACK, one event-loop wake-up per packet. That per-message work was half of what the
control plane spent on ingest. This connection reads what the socket has, parses every
complete packet in it, hands the messages over as one list and writes all their PUBACKs in
one ``write``; the broker sees an ordinary MQTT 3.1.1 client (MQTT 3.1.1, OASIS standard,
sections 2-3: CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP,
DISCONNECT).

It only subscribes: publishing, the birth and the Last Will stay on the control plane's
general connection (aiomqtt). Messages are acknowledged as they are read, as paho does for
QoS 1; what is read is queued for storage. QoS 2 is never asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

Messages = list[tuple[str, bytes]]

# Packet types the broker sends us (MQTT 3.1.1, section 2.2.1).
_CONNACK, _PUBLISH, _SUBACK, _PINGRESP = 2, 3, 9, 13
_PINGREQ_PACKET = b"\xc0\x00"
_DISCONNECT_PACKET = b"\xe0\x00"

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class MqttWireError(ConnectionError):
    """The connection failed or the broker broke the protocol; the message says how."""


class ConnectRefused(MqttWireError):
    """The broker answered CONNECT with a refusal; ``rc`` is its return code."""

    def __init__(self, rc: int) -> None:
        super().__init__(f"the broker refused the connection: {CONNACK_REASONS.get(rc, rc)}")
        self.rc = rc


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (128 if n else 0))
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 65535:
        raise ValueError(f"an MQTT string is at most 65535 bytes, got {len(raw)}")
    return struct.pack("!H", len(raw)) + raw


def connect_packet(
    client_id: str,
    *,
    username: str | None,
    password: str | None,
    keepalive: int,
    clean_session: bool = True,
) -> bytes:
    """CONNECT (MQTT 3.1.1, section 3.1)."""
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    variable = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body = variable + payload
    return b"\x10" + _varint(len(body)) + body


def subscribe_packet(packet_id: int, filters: Sequence[tuple[str, int]]) -> bytes:
    """SUBSCRIBE (section 3.8)."""
    body = struct.pack("!H", packet_id) + b"".join(
        _string(flt) + bytes([qos]) for flt, qos in filters
    )
    return b"\x82" + _varint(len(body)) + body


class SubscriberProtocol(asyncio.Protocol):
    """The wire side: parses what arrives, answers PUBLISH with PUBACK, tracks keepalive."""

    def __init__(self, on_messages: Callable[[Messages], None]) -> None:
        self._on_messages = on_messages
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        self.last_received = time.monotonic()
        self.last_sent = time.monotonic()
        self.received = 0
        self.error: MqttWireError | None = None  # why the connection was lost, if it was
        self.closing = False  # we asked for the end (DISCONNECT): not an error
        self.session_present = False  # the broker kept our session from before (CONNACK)
        self.paused = False  # not reading on purpose: silence is then ours, not the broker's

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            error = MqttWireError(f"connection lost: {exc}")
        else:
            error = MqttWireError("the broker closed the connection")
        pending: list[asyncio.Future[int] | asyncio.Future[list[int]]] = [self.connack]
        pending.extend(self._subacks.values())
        for future in pending:
            if not future.done():
                future.set_exception(error)
        if exc is not None or not self.closing:
            self.error = error
        if not self.closed.done():
            self.closed.set_result(None)
        self._subacks.clear()

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        buf = self._buf
        buf += data
        size = len(buf)
        pos = 0
        acks = bytearray()
        messages: Messages = []
        try:
            while size - pos >= 2:
                first = buf[pos]
                # Remaining length: 1 to 4 bytes, 7 bits each (section 2.2.3).
                length = shift = 0
                i = pos + 1
                complete = False
                while i < size:
                    byte = buf[i]
                    i += 1
                    length |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        complete = True
                        break
                    shift += 7
                    if shift > 21:
                        raise MqttWireError("a packet's remaining length is longer than 4 bytes")
                if not complete:
                    break  # the length itself is not complete yet
                end = i + length
                if end > size:
                    break  # the rest of this packet is still on its way
                kind = first >> 4
                if kind == _PUBLISH:
                    tlen = (buf[i] << 8) | buf[i + 1]
                    j = i + 2 + tlen
                    qos = first & 0x06  # QoS 1 (QoS 2 is never subscribed to)
                    if j + (2 if qos else 0) > end:
                        raise MqttWireError("a PUBLISH shorter than its topic and packet id")
                    topic = buf[i + 2 : j].decode()
                    if qos:
                        acks += b"\x40\x02"
                        acks += buf[j : j + 2]
                        j += 2
                    messages.append((topic, bytes(buf[j:end])))
                elif kind == _CONNACK:
                    self.session_present = bool(buf[i] & 0x01)
                    if not self.connack.done():
                        self.connack.set_result(buf[i + 1])
                elif kind == _SUBACK:
                    packet_id = (buf[i] << 8) | buf[i + 1]
                    future = self._subacks.pop(packet_id, None)
                    if future is not None and not future.done():
                        future.set_result(list(buf[i + 2 : end]))
                elif kind != _PINGRESP:
                    log.debug("ignoring an MQTT packet of type %d", kind)
                pos = end
        except (IndexError, UnicodeDecodeError, MqttWireError) as exc:
            # A broker that breaks the protocol: drop the connection; the caller reconnects.
            log.error("malformed MQTT data from the broker, closing: %s", exc)
            del buf[:]
            self.abort()
            return
        finally:
            if pos:
                del buf[:pos]
        if acks:
            self.write(bytes(acks))
        if messages:
            self.received += len(messages)
            self._on_messages(messages)

    # -- the client side -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` (nothing when the connection is gone)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.last_sent = time.monotonic()

    def expect_suback(self, packet_id: int) -> asyncio.Future[list[int]]:
        """A future resolved with the return codes of the SUBACK for ``packet_id``."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._subacks[packet_id] = future
        return future

    def abort(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None:
            self.transport.abort()


class SubscriberConnection:
    """One connected, subscribed MQTT session; ``wait_closed`` ends when it drops.

    Use ``open`` to connect (CONNECT/CONNACK) and subscribe; then ``wait_closed`` until the
    connection drops (the keepalive is kept meanwhile), and ``close`` to end it cleanly.
    """

    def __init__(self, protocol: SubscriberProtocol, keepalive: int) -> None:
        self._protocol = protocol
        self._keepalive = keepalive
        self._next_id = 0
        self._pinger: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        client_id: str,
        username: str | None,
        password: str | None,
        keepalive: int,
        filters: Sequence[str],
        on_messages: Callable[[Messages], None],
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        clean_session: bool = True,
    ) -> SubscriberConnection:
        """Connect, log in and subscribe to ``filters`` at QoS 1; raise MqttWireError.

        With ``clean_session`` off the broker keeps the session (subscriptions, and the QoS 1
        messages that come while we are away) for the next connection with this client id.
        """
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: SubscriberProtocol(on_messages),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                ),
                timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise MqttWireError(f"cannot connect to mqtt://{host}:{port}: {exc}") from exc
        connection = cls(protocol, keepalive)
        try:
            protocol.write(
                connect_packet(
                    client_id,
                    username=username,
                    password=password,
                    keepalive=keepalive,
                    clean_session=clean_session,
                )
            )
            try:
                rc = await asyncio.wait_for(asyncio.shield(protocol.connack), timeout)
            except TimeoutError:
                raise MqttWireError(f"no CONNACK from mqtt://{host}:{port}") from None
            if rc != 0:
                raise ConnectRefused(rc)
            if filters:
                await connection.subscribe(filters, timeout=timeout)
        except BaseException:
            protocol.abort()
            raise
        connection._pinger = asyncio.get_running_loop().create_task(connection._keep_alive())
        return connection

    async def subscribe(self, filters: Sequence[str], *, timeout: float = 10.0) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK; a refused filter is an error."""
        self._next_id = self._next_id % 65535 + 1
        suback = self._protocol.expect_suback(self._next_id)
        self._protocol.write(subscribe_packet(self._next_id, [(f, 1) for f in filters]))
        try:
            codes = await asyncio.wait_for(suback, timeout)
        except TimeoutError:
            raise MqttWireError("no SUBACK from the broker") from None
        refused = [flt for flt, code in zip(filters, codes, strict=False) if code == 0x80]
        if refused or len(codes) != len(filters):
            raise MqttWireError(f"the broker refused the subscription to {refused or filters}")

    @property
    def session_present(self) -> bool:
        """The broker resumed a session it kept for this client id."""
        return self._protocol.session_present

    @property
    def received(self) -> int:
        """Messages received on this connection."""
        return self._protocol.received

    def pause_reading(self) -> None:
        """Stop reading from the socket (the broker then holds what comes)."""
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            self._protocol.paused = True
            transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again after ``pause_reading``."""
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            self._protocol.paused = False
            self._protocol.last_received = time.monotonic()
            transport.resume_reading()

    async def wait_closed(self) -> None:
        """Until the connection ends: MqttWireError when it was lost, None when closed."""
        await asyncio.shield(self._protocol.closed)
        if self._protocol.error is not None:
            raise self._protocol.error

    async def close(self) -> None:
        """Send DISCONNECT and close (no error when it is already gone)."""
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        protocol = self._protocol
        protocol.closing = True
        if protocol.transport is not None and not protocol.transport.is_closing():
            protocol.write(_DISCONNECT_PACKET)
            protocol.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.closed), 5)

    async def _keep_alive(self) -> None:
        """PINGREQ when we have been quiet; drop a broker silent for 1.5 keepalives."""
        protocol = self._protocol
        interval = max(0.5, self._keepalive / 4)
        while not protocol.closed.done():
            await asyncio.sleep(interval)
            now = time.monotonic()
            if not protocol.paused and now - protocol.last_received > 1.5 * self._keepalive:
                log.warning(
                    "no word from the broker for %.0f s: reconnecting", 1.5 * self._keepalive
                )
                protocol.abort()
                return
            if now - protocol.last_sent >= self._keepalive / 2:
                protocol.write(_PINGREQ_PACKET)
