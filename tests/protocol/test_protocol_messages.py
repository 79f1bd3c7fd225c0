"""Message models and the codec: round trips, named errors, limits, versions."""

from __future__ import annotations

import math

import msgspec
import pytest

from edge.protocol import (
    MAX_PAYLOAD,
    MESSAGE_FOR_KIND,
    CallDesired,
    CallSignal,
    CpStatus,
    Event,
    JobExecution,
    JobsGet,
    JobsNotify,
    JobUpdate,
    Message,
    ParsedTopic,
    ProtocolError,
    Sample,
    ScheduleDesired,
    Status,
    TelemetryBatch,
    TelemetryDesired,
    TopicKind,
    TwinDesired,
    TwinReported,
    VpnDesired,
    VpnReported,
    Wake,
    decode,
    decode_message,
    encode,
    now,
    topic,
)

TS = 1_767_600_000.25  # 2026-01-05, a realistic send time
HUB_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="

SDP = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
)

EXAMPLES: dict[str, Message] = {
    "status": Status(ts=TS, online=True, session=42, agent_version="0.1.0", boot_reason="rtc"),
    "twin_desired": TwinDesired(
        ts=TS,
        version=7,
        schedule=ScheduleDesired(
            version=3,
            lead_s=180,
            horizon_end=TS + 14 * 86400,
            wakes=[
                Wake(start=TS + 3600, end=TS + 5400, appointment_ids=["apt-1", "apt-2"]),
                Wake(start=TS + 90000, end=TS + 91800),
            ],
            policy="suspend",
            idle_s=300,
        ),
        telemetry=TelemetryDesired(interval_s=30, batch_max=20),
        vpn=VpnDesired(
            address="10.8.0.17/32",
            hub_public_key=HUB_KEY,
            hub_endpoint="vpn.difronte.example:51820",
            allowed_ips=["10.8.0.0/24", "fd00:8::/64"],
            keepalive_s=25,
        ),
        call=CallDesired(auto_answer=False, width=1280, height=720, max_kbps=1500),
    ),
    "twin_reported": TwinReported(
        ts=TS,
        desired_version=7,
        agent_version="0.1.0",
        schedule_version=3,
        armed_alarm=TS + 3420,
        alarm_reason="wake",
        alarm_error=None,
        rtc_local_time=False,
        rtc_max_ahead_s=86400,
        vpn=VpnReported(
            public_key=HUB_KEY,
            state="up",
            latest_handshake=TS - 12.5,
            rx_bytes=123456,
            tx_bytes=654321,
        ),
        config={"log_level": "info", "outbox_max": 10000, "ratio": 0.5, "kiosk": True},
    ),
    "telemetry": TelemetryBatch(
        ts=TS,
        seq=1024,
        samples=[
            Sample(
                ts=TS - 60,
                metrics={"cpu.percent": 12.5, "mem.used_bytes": 1.2e9, "temp.cpu_c": 48.0},
                errors={"smart": "smartctl not found"},
            ),
            Sample(ts=TS, metrics={"cpu.percent": 9.0, "disk.free_bytes": 8.1e10}),
        ],
        dropped=3,
    ),
    "event": Event(
        ts=TS,
        id="pc-001:help:1767600000",
        kind="help",
        severity="urgent",
        message="Pulsante di aiuto premuto",
        data={"button": "big-red", "presses": 2, "nested": {"ok": [1, 2.5, None, "x"]}},
    ),
    "jobs_get": JobsGet(ts=TS),
    "jobs_notify": JobsNotify(
        ts=TS,
        executions=[
            JobExecution(
                execution_id="ex-1",
                job_id="job-2026-001",
                operation="reboot",
                parameters={"delay_s": 30},
                timeout_s=300,
                version=2,
            ),
            JobExecution(execution_id="ex_2", job_id="job-2026-002", operation="collect_logs"),
        ],
    ),
    "job_update": JobUpdate(
        ts=TS,
        execution_id="ex-1",
        status="IN_PROGRESS",
        seq=2,
        progress=40,
        details={"step": "downloading"},
    ),
    "call_offer": CallSignal(ts=TS, session="call-77", type="offer", sdp=SDP),
    "call_candidate": CallSignal(
        ts=TS,
        session="call-77",
        type="candidate",
        candidate={
            "candidate": "candidate:1 1 udp 2130706431 192.168.1.5 50000 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        },
    ),
    "call_stats": CallSignal(
        ts=TS, session="call-77", type="stats", stats={"rtt_ms": 42.0, "fps": 24.5}
    ),
    "call_hangup": CallSignal(ts=TS, session="call-77", type="hangup", reason="caregiver hung up"),
    "cp_status": CpStatus(ts=TS, online=True, instance="cp-1"),
}


def _all_message_types() -> set[type[Message]]:
    return set(Message.__subclasses__())


def test_examples_cover_every_message_type() -> None:
    assert {type(m) for m in EXAMPLES.values()} == _all_message_types()
    assert set(MESSAGE_FOR_KIND.values()) == _all_message_types()
    assert set(MESSAGE_FOR_KIND) == set(TopicKind)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_round_trip(name: str) -> None:
    msg = EXAMPLES[name]
    data = encode(msg)
    assert decode(data, type(msg)) == msg
    assert decode(data.decode(), type(msg)) == msg  # str payloads too


def test_wire_format_is_plain_json_with_version() -> None:
    data = encode(Status(ts=TS, online=False, session=3))
    assert msgspec.json.decode(data) == {
        "v": 1,
        "ts": TS,
        "online": False,
        "session": 3,
        "agent_version": "",
        "boot_reason": "unknown",
    }


def test_decode_message_for_every_kind() -> None:
    by_type = {type(m): m for m in EXAMPLES.values()}
    for kind, type_ in MESSAGE_FOR_KIND.items():
        msg = by_type[type_]
        if kind is TopicKind.CP_STATUS:
            name = topic(kind)
        elif kind is TopicKind.JOB_UPDATE:
            name = topic(kind, "pc-001", "ex-1")
        else:
            name = topic(kind, "pc-001")
        parsed, decoded = decode_message(name, encode(msg))
        assert parsed == ParsedTopic(
            kind,
            None if kind is TopicKind.CP_STATUS else "pc-001",
            "ex-1" if kind is TopicKind.JOB_UPDATE else None,
        )
        assert decoded == msg


def test_decode_message_checks_execution_id_against_topic() -> None:
    data = encode(EXAMPLES["job_update"])  # execution_id "ex-1"
    with pytest.raises(ProtocolError) as info:
        decode_message("difronte/v1/dev/pc-001/jobs/ex-2/update", data)
    assert info.value.field == "$.execution_id"


def test_decode_message_bad_topic() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message("difronte/v1/dev/+/status", encode(EXAMPLES["status"]))
    assert info.value.field == "topic"


def test_unknown_fields_are_ignored() -> None:
    data = (
        b'{"v":1,"ts":5,"online":true,"session":1,"future":{"x":[1,2]},"boot_reason":"button",'
        b'"extra":null}'
    )
    assert decode(data, Status) == Status(ts=5, online=True, session=1, boot_reason="button")
    nested = b'{"v":1,"ts":5,"seq":0,"samples":[{"ts":1,"metrics":{"a":1},"unit":"%"}],"hint":"x"}'
    assert decode(nested, TelemetryBatch).samples[0].metrics == {"a": 1.0}


# --- errors name the field ---------------------------------------------------------------


def _error(data: bytes, type_: type[msgspec.Struct]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(data, type_)
    return info.value


def test_error_names_nested_field() -> None:
    err = _error(
        b'{"v":1,"ts":1,"seq":1,"samples":[{"ts":"yesterday","metrics":{}}]}', TelemetryBatch
    )
    assert err.field == "$.samples[0].ts"
    assert err.reason == "Expected `float`, got `str`"
    assert str(err) == "$.samples[0].ts: Expected `float`, got `str`"


@pytest.mark.parametrize(
    ("data", "type_", "field", "reason_part"),
    [
        (b'{"v":1,"online":true,"session":1}', Status, "$", "missing required field `ts`"),
        (b'{"v":1,"ts":-1,"online":true,"session":1}', Status, "$.ts", ">= 0"),
        (b'{"v":1,"ts":1,"online":true,"session":-1}', Status, "$.session", ">= 0"),
        (b'{"v":1,"ts":1e999,"online":true,"session":1}', Status, "$.ts", "out of range"),
        (b'{"v":1,"ts":1,"online":1,"session":1}', Status, "$.online", "Expected `bool`"),
        (
            b'{"v":1,"ts":1,"online":true,"session":1,"boot_reason":"lightning"}',
            Status,
            "$.boot_reason",
            "Invalid enum value 'lightning'",
        ),
        (
            b'{"v":1,"ts":1,"online":true,"session":1,"agent_version":"' + b"x" * 65 + b'"}',
            Status,
            "$.agent_version",
            "length <= 64",
        ),
        (b'{"v":1,"ts":1,"seq":1,"samples":[]}', TelemetryBatch, "$.samples", "length >= 1"),
        (
            b'{"v":1,"ts":1,"seq":1,"samples":[{"ts":1,"metrics":{"CPU":1}}]}',
            TelemetryBatch,
            "$.samples[0].metrics",
            "invalid key",
        ),
        (
            b'{"v":1,"ts":1,"seq":1,"samples":[{"ts":1,"metrics":{"cpu":"hot"}}]}',
            TelemetryBatch,
            "$.samples[0].metrics[...]",
            "Expected `float`",
        ),
        (
            b'{"v":1,"ts":1,"seq":1,"samples":[{"ts":1}]}',
            TelemetryBatch,
            "$.samples[0]",
            "missing required field `metrics`",
        ),
        (
            b'{"v":1,"ts":1,"version":1,"schedule":{"version":1,"horizon_end":9,'
            b'"wakes":[{"start":1,"end":2},{"start":5,"end":4}]}}',
            TwinDesired,
            "$.schedule.wakes[1].end",
            "must be >= start",
        ),
        (
            b'{"v":1,"ts":1,"version":1,"telemetry":{"interval_s":1}}',
            TwinDesired,
            "$.telemetry.interval_s",
            ">= 5",
        ),
        (
            b'{"v":1,"ts":1,"version":1,"vpn":{"address":"10.8.0.300/32","hub_public_key":"'
            + HUB_KEY.encode()
            + b'","hub_endpoint":"hub:51820","allowed_ips":[]}}',
            TwinDesired,
            "$.vpn.address",
            "10.8.0.300",
        ),
        (
            b'{"v":1,"ts":1,"version":1,"vpn":{"address":"10.8.0.3/32","hub_public_key":"nope",'
            b'"hub_endpoint":"hub:51820","allowed_ips":[]}}',
            TwinDesired,
            "$.vpn.hub_public_key",
            "matching regex",
        ),
        (
            b'{"v":1,"ts":1,"version":1,"vpn":{"address":"10.8.0.3/32","hub_public_key":"'
            + HUB_KEY.encode()
            + b'","hub_endpoint":"hub:99999","allowed_ips":[]}}',
            TwinDesired,
            "$.vpn.hub_endpoint",
            "1..65535",
        ),
        (
            b'{"v":1,"ts":1,"version":1,"vpn":{"address":"10.8.0.3/32","hub_public_key":"'
            + HUB_KEY.encode()
            + b'","hub_endpoint":"hub:51820","allowed_ips":["10.8.0.0/24","bogus"]}}',
            TwinDesired,
            "$.vpn.allowed_ips[1]",
            "bogus",
        ),
        (
            b'{"v":1,"ts":1,"id":"a b","kind":"help"}',
            Event,
            "$.id",
            "matching regex",
        ),
        (b'{"v":1,"ts":1,"id":"","kind":"help"}', Event, "$.id", "length >= 1"),
        (
            b'{"v":1,"ts":1,"executions":[{"execution_id":"get","job_id":"j","operation":"x"}]}',
            JobsNotify,
            "$.executions[0].execution_id",
            "reserved",
        ),
        (
            b'{"v":1,"ts":1,"execution_id":"ex-1","status":"DONE","seq":1}',
            JobUpdate,
            "$.status",
            "Invalid enum value 'DONE'",
        ),
        (
            b'{"v":1,"ts":1,"execution_id":"ex-1","status":"FAILED","seq":1,"progress":101}',
            JobUpdate,
            "$.progress",
            "<= 100",
        ),
        (
            b'{"v":1,"ts":1,"execution_id":"ex-1\\n","status":"FAILED","seq":1}',
            JobUpdate,
            "$.execution_id",
            "matching regex",
        ),
        (b'{"v":1,"ts":1,"session":"s","type":"offer"}', CallSignal, "$.sdp", "required"),
        (b'{"v":1,"ts":1,"session":"s","type":"wave"}', CallSignal, "$.type", "Invalid enum"),
        (b'{"v":1,"ts":1}', CpStatus, "$", "missing required field `online`"),
    ],
)
def test_errors_name_the_field(
    data: bytes, type_: type[msgspec.Struct], field: str, reason_part: str
) -> None:
    err = _error(data, type_)
    assert err.field == field, str(err)
    assert reason_part in err.reason
    assert " - at `" not in err.reason  # msgspec's path suffix moved into .field


# --- envelope: size, JSON, object, version -----------------------------------------------


def test_too_large_payload_rejected_on_decode() -> None:
    data = b'{"v":1,"ts":1,"id":"x","kind":"info","message":"' + b"x" * MAX_PAYLOAD + b'"}'
    err = _error(data, Event)
    assert err.field == "payload"
    assert err.reason == f"too large: {len(data)} bytes > 65536"


def test_size_limit_counts_utf8_bytes_of_str_payloads() -> None:
    # 30k two-byte characters: under the limit in characters, over it in bytes.
    text = '{"v":1,"ts":1,"id":"x","kind":"info","data":{"t":"' + "è" * 33_000 + '"}}'
    with pytest.raises(ProtocolError, match="too large"):
        decode(text, Event)


def test_too_large_payload_rejected_on_encode() -> None:
    big = Event(ts=TS, id="big", kind="diagnostics", data={"blob": "x" * MAX_PAYLOAD})
    with pytest.raises(ProtocolError) as info:
        encode(big)
    assert info.value.field == "payload"
    assert info.value.reason.startswith("too large: ")


def test_payload_at_the_limit_is_accepted() -> None:
    head = b'{"v":1,"ts":1,"id":"x","kind":"info","data":{"t":"'
    tail = b'"}}'
    data = head + b"x" * (MAX_PAYLOAD - len(head) - len(tail)) + tail
    assert len(data) == MAX_PAYLOAD
    assert decode(data, Event).id == "x"


@pytest.mark.parametrize(
    ("data", "field", "reason_start"),
    [
        (b"", "payload", "not valid JSON"),
        (b'{"v":1,', "payload", "not valid JSON"),
        (b'{"v":1,"ts":NaN}', "payload", "not valid JSON"),
        (b'{"v":1} trailing', "payload", "not valid JSON"),
        (b'{"v":1,"ts":1,"online":true,"session":1,"agent_version":"\xff"}', "payload", "not"),
        (b"[1, 2]", "payload", "not a JSON object"),
        (b'"status"', "payload", "not a JSON object"),
        (b"null", "payload", "not a JSON object"),
        (b'{"ts":1,"online":true,"session":1}', "$.v", "unsupported version"),
        (b'{"v":2,"ts":1,"online":true,"session":1}', "$.v", "unsupported version 2"),
        (b'{"v":0,"ts":1,"online":true,"session":1}', "$.v", "unsupported version 0"),
        (b'{"v":true,"ts":1,"online":true,"session":1}', "$.v", "unsupported version True"),
        (b'{"v":1.0,"ts":1,"online":true,"session":1}', "$.v", "unsupported version 1.0"),
        (b'{"v":"1","ts":1,"online":true,"session":1}', "$.v", "unsupported version '1'"),
        (b'{"v":null,"ts":1,"online":true,"session":1}', "$.v", "unsupported version None"),
        (b"[" * 5000 + b"]" * 5000, "payload", "not a JSON object"),
        (
            b'{"v":1,"ts":1,"online":true,"session":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "payload",
            "nested too deeply",
        ),
    ],
)
def test_envelope_errors(data: bytes, field: str, reason_start: str) -> None:
    err = _error(data, Status)
    assert err.field == field
    assert err.reason.startswith(reason_start), err.reason


def test_lone_surrogate_in_str_payload() -> None:
    err = _error(
        '{"v":1,"ts":1,"id":"x","kind":"info","message":"\ud800"}'.encode("utf-8", "surrogatepass"),
        Event,
    )
    assert err.field == "payload"
    with pytest.raises(ProtocolError):
        decode('{"v":1,"ts":1,"id":"x","kind":"info","message":"\ud800"}', Event)


def test_substructures_decode_without_version() -> None:
    # Only top-level messages carry "v"; a nested struct on its own is decodable too.
    assert decode(b'{"start":1,"end":2}', Wake) == Wake(start=1, end=2)
    with pytest.raises(ProtocolError) as info:
        decode(b'{"start":3,"end":2}', Wake)
    assert info.value.field == "$.end"


# --- construction-time checks --------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
def test_constructed_timestamps_must_be_finite_and_non_negative(bad: float) -> None:
    with pytest.raises(ProtocolError) as info:
        Status(ts=bad, online=True, session=1)
    assert info.value.field == "ts"
    with pytest.raises(ProtocolError) as info:
        Wake(start=0, end=bad)
    assert info.value.field == "end"


def test_constructed_timestamp_must_be_a_number() -> None:
    with pytest.raises(ProtocolError, match="ts: must be a number"):
        JobsGet(ts=True)


def test_constructed_non_finite_metric_names_the_key() -> None:
    with pytest.raises(ProtocolError) as info:
        Sample(ts=1, metrics={"cpu.percent": 1.0, "temp.cpu_c": math.nan})
    assert info.value.field == "metrics['temp.cpu_c']"
    with pytest.raises(ProtocolError):
        CallSignal(ts=1, session="s", type="stats", stats={"rtt_ms": math.inf})
    with pytest.raises(ProtocolError):
        TwinReported(ts=1, config={"ratio": math.nan})


def test_constructed_wake_window_order() -> None:
    with pytest.raises(ProtocolError, match="end: must be >= start"):
        Wake(start=10, end=5)
    assert Wake(start=5, end=5).end == 5  # an instant is a valid window


def test_constructed_vpn_checks() -> None:
    good = {
        "address": "10.8.0.2/32",
        "hub_public_key": HUB_KEY,
        "hub_endpoint": "[2001:db8::1]:51820",
        "allowed_ips": ["10.8.0.0/24"],
    }
    assert VpnDesired(**good).hub_endpoint == "[2001:db8::1]:51820"  # type: ignore[arg-type]
    for field, value in [
        ("address", "10.8.0.2"),
        ("address", "not-an-ip/32"),
        ("hub_endpoint", "hub"),
        ("hub_endpoint", "hub:0"),
        ("hub_endpoint", "hub:x"),
    ]:
        with pytest.raises(ProtocolError) as info:
            VpnDesired(**{**good, field: value})  # type: ignore[arg-type]
        assert info.value.field == field


def test_encode_translates_unencodable_values() -> None:
    with pytest.raises(ProtocolError, match="payload: cannot encode"):
        encode(Event(ts=1, id="x", kind="info", data={"obj": object()}))


def test_now_is_epoch_seconds() -> None:
    t = now()
    assert isinstance(t, float)
    assert t > 1_600_000_000
