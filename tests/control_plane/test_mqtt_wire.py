"""The lean ingest subscriber (control_plane/mqtt_wire.py): the wire format, and a real broker."""

from __future__ import annotations

import asyncio
import struct
import subprocess
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from control_plane.mqtt_wire import (
    ConnectRefused,
    MqttWireError,
    SubscriberConnection,
    SubscriberProtocol,
    connect_packet,
    subscribe_packet,
)
from tests.support.broker import CP_PASSWORD, CP_USER, Mosquitto
from tests.support.wait import async_wait_until


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def publish(topic: str, payload: bytes, packet_id: int | None) -> bytes:
    """A PUBLISH as the broker sends it (QoS 1 with a packet id, QoS 0 without)."""
    body = struct.pack("!H", len(topic.encode())) + topic.encode()
    first = 0x30
    if packet_id is not None:
        first |= 0x02
        body += struct.pack("!H", packet_id)
    body += payload
    length = len(body)
    encoded = bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (128 if length else 0))
        if not length:
            break
    return bytes([first]) + bytes(encoded) + body


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def wired() -> tuple[SubscriberProtocol, FakeTransport, list[list[tuple[str, bytes]]]]:
    received: list[list[tuple[str, bytes]]] = []
    protocol = SubscriberProtocol(received.append)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, received


def test_packets_built_as_the_standard_says() -> None:
    packet = connect_packet("cp-1", username="u", password="p", keepalive=30)
    # Fixed header, "MQTT" level 4, flags user+password+clean session, keepalive 30.
    assert packet[:2] == b"\x10\x16"  # 10 bytes of header, 12 of payload
    assert packet[2:12] == b"\x00\x04MQTT\x04\xc2\x00\x1e"
    assert packet[12:] == b"\x00\x04cp-1\x00\x01u\x00\x01p"
    assert subscribe_packet(7, [("a/+", 1)]) == b"\x82\x08\x00\x07\x00\x03a/+\x01"


def test_many_messages_in_one_read_are_handed_over_together_with_one_write_of_pubacks() -> None:
    async def main() -> None:
        protocol, transport, received = wired()
        chunk = b"".join(
            publish(f"difronte/v1/dev/pc-{i}/telemetry", b"{%d}" % i, i + 1) for i in range(50)
        )
        protocol.data_received(chunk)
        assert len(received) == 1 and len(received[0]) == 50
        assert received[0][3] == ("difronte/v1/dev/pc-3/telemetry", b"{3}")
        assert transport.written == [
            b"".join(b"\x40\x02" + struct.pack("!H", i + 1) for i in range(50))
        ]

    run(main)


def test_packets_cut_anywhere_are_put_back_together() -> None:
    async def main() -> None:
        protocol, transport, received = wired()
        big = b"x" * 70_000  # a remaining length of three bytes
        stream = (
            publish("a/b", b"first", 1)
            + publish("a/c", big, 2)
            + publish("a/d", b"qos0", None)
            + b"\xd0\x00"  # PINGRESP
        )
        for i in range(0, len(stream), 7):  # seven bytes at a time
            protocol.data_received(stream[i : i + 7])
        got = [m for batch in received for m in batch]
        assert got == [("a/b", b"first"), ("a/c", big), ("a/d", b"qos0")]
        assert b"".join(transport.written) == b"\x40\x02\x00\x01\x40\x02\x00\x02"
        assert not transport.aborted

    run(main)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "remaining length"),
        (b"\x32\x07\x00\x03\xff\xfe\xfd\x00\x01", "utf-8"),
        (b"\x32\x03\x00\x09a", "short"),
    ],
)
def test_malformed_data_from_the_broker_drops_the_connection(
    data: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        protocol, transport, received = wired()
        protocol.data_received(publish("ok/1", b"kept", 1))
        protocol.data_received(data)
        assert transport.aborted
        assert [m for batch in received for m in batch] == [("ok/1", b"kept")]

    run(main)
    assert "malformed MQTT data from the broker" in caplog.text


def test_against_mosquitto_receives_acks_and_reconnects(broker: Mosquitto) -> None:
    received: list[tuple[str, bytes]] = []

    async def main() -> None:
        connection = await SubscriberConnection.open(
            broker.host,
            broker.port,
            client_id="wire-test-1",
            username=CP_USER,
            password=CP_PASSWORD,
            keepalive=5,
            filters=["difronte/v1/dev/+/telemetry"],
            on_messages=received.extend,
        )
        try:
            # mosquitto_pub as the control plane's user: same ACL, a real QoS 1 publish.
            for i in range(20):
                await asyncio.to_thread(
                    subprocess.run,
                    ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", CP_USER,
                     "-P", CP_PASSWORD, "-q", "1", "-t", "difronte/v1/dev/pc-wire/telemetry",
                     "-m", f"m{i}"],
                    check=True,
                )  # fmt: skip
            await async_wait_until(lambda: len(received) == 20, message="twenty messages")
        finally:
            await connection.close()
        await connection.wait_closed()  # a clean close is not an error

    run(main)
    assert [m for _, m in received] == [b"m%d" % i for i in range(20)]


def test_wrong_password_is_a_refusal_naming_it(broker: Mosquitto) -> None:
    async def main() -> None:
        with pytest.raises(ConnectRefused, match=r"not authorised|bad user name") as info:
            await SubscriberConnection.open(
                broker.host,
                broker.port,
                client_id="wire-test-2",
                username=CP_USER,
                password="wrong",
                keepalive=5,
                filters=["a/b"],
                on_messages=lambda _m: None,
            )
        assert info.value.rc in (4, 5)

    run(main)


def test_nothing_listening_is_a_connection_error() -> None:
    async def main() -> None:
        from tests.support.broker import free_port

        with pytest.raises(MqttWireError, match="cannot connect"):
            await SubscriberConnection.open(
                "127.0.0.1",
                free_port(),
                client_id="wire-test-3",
                username=None,
                password=None,
                keepalive=5,
                filters=[],
                on_messages=lambda _m: None,
            )

    run(main)


def test_a_broker_that_goes_away_ends_the_connection_with_an_error(own_broker: Mosquitto) -> None:
    async def main() -> None:
        connection = await SubscriberConnection.open(
            own_broker.host,
            own_broker.port,
            client_id="wire-test-4",
            username=CP_USER,
            password=CP_PASSWORD,
            keepalive=5,
            filters=["a/#"],
            on_messages=lambda _m: None,
        )
        await asyncio.to_thread(own_broker.stop)
        with pytest.raises(MqttWireError):
            async with asyncio.timeout(10):
                await connection.wait_closed()
        await connection.close()

    run(main)


async def _silent_broker(answers: bool) -> tuple[asyncio.Server, int, list[bytes]]:
    """A TCP server that accepts CONNECT and SUBSCRIBE, then ignores PINGREQ unless ``answers``."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                seen.append(data)
                if data[0] == 0x10:
                    writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
                elif data[0] == 0x82:
                    writer.write(b"\x90\x03" + data[2:4] + b"\x01")  # SUBACK, QoS 1
                elif data[0] == 0xC0 and answers:
                    writer.write(b"\xd0\x00")  # PINGRESP
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


async def _open_to(port: int) -> SubscriberConnection:
    return await SubscriberConnection.open(
        "127.0.0.1",
        port,
        client_id="wire-test-ka",
        username=None,
        password=None,
        keepalive=1,
        filters=["a/b"],
        on_messages=lambda _m: None,
    )


def test_a_broker_that_stops_answering_pings_is_dropped() -> None:
    async def main() -> None:
        server, port, seen = await _silent_broker(answers=False)
        async with server:
            connection = await _open_to(port)
            with pytest.raises(MqttWireError):
                async with asyncio.timeout(10):
                    await connection.wait_closed()
            assert any(data.startswith(b"\xc0\x00") for data in seen)  # it did ask
            await connection.close()

    run(main)


def test_an_answering_broker_or_a_paused_reader_keeps_the_connection() -> None:
    async def main() -> None:
        server, port, _ = await _silent_broker(answers=True)
        async with server:
            connection = await _open_to(port)
            closed = asyncio.ensure_future(connection.wait_closed())
            await asyncio.sleep(3.5)  # over three keepalives, answered
            assert not closed.done()
            # Not reading on purpose (storage is behind): the unread PINGRESPs are no reason.
            connection.pause_reading()
            await asyncio.sleep(3.5)
            assert not closed.done()
            connection.resume_reading()
            await connection.close()
            await closed

    run(main)
