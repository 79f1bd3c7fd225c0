"""Topic names of the MQTT contract: builders, parsers, filters, ACL patterns."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import (
    DEVICE_PUBLISHES,
    DEVICE_SUBSCRIBES,
    PROTOCOL_VERSION,
    RETAINED,
    ROOT,
    ParsedTopic,
    ProtocolError,
    TopicKind,
    acl_pattern,
    device_filter,
    parse_topic,
    topic,
    validate_device_id,
    validate_execution_id,
)

# (kind, device_id, execution_id, topic name): one row per row of the contract table.
TABLE = [
    (TopicKind.STATUS, "pc-001", None, "difronte/v1/dev/pc-001/status"),
    (TopicKind.TWIN_DESIRED, "pc-001", None, "difronte/v1/dev/pc-001/twin/desired"),
    (TopicKind.TWIN_REPORTED, "pc-001", None, "difronte/v1/dev/pc-001/twin/reported"),
    (TopicKind.TELEMETRY, "pc-001", None, "difronte/v1/dev/pc-001/telemetry"),
    (TopicKind.EVENTS, "pc-001", None, "difronte/v1/dev/pc-001/events"),
    (TopicKind.JOBS_GET, "pc-001", None, "difronte/v1/dev/pc-001/jobs/get"),
    (TopicKind.JOBS_NOTIFY, "pc-001", None, "difronte/v1/dev/pc-001/jobs/notify"),
    (TopicKind.JOB_UPDATE, "pc-001", "ex-1", "difronte/v1/dev/pc-001/jobs/ex-1/update"),
    (TopicKind.CALL_IN, "pc-001", None, "difronte/v1/dev/pc-001/call/in"),
    (TopicKind.CALL_OUT, "pc-001", None, "difronte/v1/dev/pc-001/call/out"),
    (TopicKind.CP_STATUS, None, None, "difronte/v1/cp/status"),
]


def test_table_covers_every_kind() -> None:
    assert {row[0] for row in TABLE} == set(TopicKind)


def test_root_matches_protocol_version() -> None:
    assert ROOT == f"difronte/v{PROTOCOL_VERSION}"


@pytest.mark.parametrize(("kind", "device_id", "execution_id", "name"), TABLE)
def test_topic_builds_the_table(
    kind: TopicKind, device_id: str | None, execution_id: str | None, name: str
) -> None:
    assert topic(kind, device_id, execution_id) == name


@pytest.mark.parametrize(("kind", "device_id", "execution_id", "name"), TABLE)
def test_parse_topic_inverts_topic(
    kind: TopicKind, device_id: str | None, execution_id: str | None, name: str
) -> None:
    assert parse_topic(name) == ParsedTopic(kind, device_id, execution_id)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (TopicKind.STATUS, "difronte/v1/dev/+/status"),
        (TopicKind.TWIN_DESIRED, "difronte/v1/dev/+/twin/desired"),
        (TopicKind.TWIN_REPORTED, "difronte/v1/dev/+/twin/reported"),
        (TopicKind.TELEMETRY, "difronte/v1/dev/+/telemetry"),
        (TopicKind.EVENTS, "difronte/v1/dev/+/events"),
        (TopicKind.JOBS_GET, "difronte/v1/dev/+/jobs/get"),
        (TopicKind.JOBS_NOTIFY, "difronte/v1/dev/+/jobs/notify"),
        (TopicKind.JOB_UPDATE, "difronte/v1/dev/+/jobs/+/update"),
        (TopicKind.CALL_IN, "difronte/v1/dev/+/call/in"),
        (TopicKind.CALL_OUT, "difronte/v1/dev/+/call/out"),
    ],
)
def test_device_filter(kind: TopicKind, expected: str) -> None:
    assert device_filter(kind) == expected


def test_device_filter_refuses_cp_status() -> None:
    with pytest.raises(ProtocolError) as info:
        device_filter(TopicKind.CP_STATUS)
    assert info.value.field == "kind"


def test_acl_patterns_confine_a_device_to_its_own_topics() -> None:
    assert acl_pattern(TopicKind.TELEMETRY) == "difronte/v1/dev/%u/telemetry"
    assert acl_pattern(TopicKind.JOB_UPDATE) == "difronte/v1/dev/%u/jobs/+/update"
    with pytest.raises(ProtocolError):
        acl_pattern(TopicKind.CP_STATUS)


def test_direction_sets() -> None:
    # Every topic has exactly one direction as seen from the device.
    assert DEVICE_PUBLISHES.isdisjoint(DEVICE_SUBSCRIBES)
    assert DEVICE_PUBLISHES | DEVICE_SUBSCRIBES == set(TopicKind)
    assert RETAINED == {
        TopicKind.STATUS,
        TopicKind.TWIN_DESIRED,
        TopicKind.TWIN_REPORTED,
        TopicKind.CP_STATUS,
    }


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "+",
        "#",
        "difronte/v1",
        "difronte/v1/",
        "difronte/v1/dev",
        "difronte/v1/dev/",
        "difronte/v1/dev/pc-001",
        "difronte/v1/dev/pc-001/",
        "difronte/v1/dev/+/telemetry",
        "difronte/v1/dev/#",
        "difronte/v1/dev/pc-001/#",
        "difronte/v1/dev/pc-001/+",
        "difronte/v1/dev/PC-001/telemetry",
        "difronte/v1/dev/pc/telemetry",  # too short
        "difronte/v1/dev/" + "a" * 65 + "/telemetry",  # too long
        "difronte/v1/dev/-pc1/telemetry",
        "difronte/v1/dev/pc_001/telemetry",
        "difronte/v1/dev/pc-001\n/telemetry",
        "difronte/v1/dev/pc-001/telemetry/",
        "difronte/v1/dev/pc-001/telemetry/extra",
        "difronte/v1/dev/pc-001/twin",
        "difronte/v1/dev/pc-001/twin/other",
        "difronte/v1/dev/pc-001/jobs",
        "difronte/v1/dev/pc-001/jobs/update",
        "difronte/v1/dev/pc-001/jobs//update",
        "difronte/v1/dev/pc-001/jobs/+/update",
        "difronte/v1/dev/pc-001/jobs/get/update",
        "difronte/v1/dev/pc-001/jobs/notify/update",
        "difronte/v1/dev/pc-001/jobs/-x/update",
        "difronte/v1/dev/pc-001/jobs/" + "e" * 65 + "/update",
        "difronte/v1/dev/pc-001/jobs/ex-1/update/more",
        "difronte/v1/dev/pc-001/jobs/ex-1/status",
        "difronte/v1/dev/pc-001/cp/status",
        "difronte/v2/dev/pc-001/telemetry",
        "Difronte/v1/dev/pc-001/telemetry",
        "/difronte/v1/dev/pc-001/telemetry",
        "difronte/v1//dev/pc-001/telemetry",
        "difronte/v1/cp/status/",
        "difronte/v1/cp",
        "$share/difronte-ingest/difronte/v1/dev/+/telemetry",
        "difronte/v1/dev/pc-001/TELEMETRY",
    ],
)
def test_parse_topic_rejects(name: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_topic(name)
    assert info.value.field == "topic"


def test_parse_topic_accepts_id_length_bounds() -> None:
    assert parse_topic("difronte/v1/dev/abc/status").device_id == "abc"
    long_id = "a" * 64
    assert parse_topic(f"difronte/v1/dev/{long_id}/status").device_id == long_id
    long_ex = "E" * 64
    assert parse_topic(f"difronte/v1/dev/abc/jobs/{long_ex}/update").execution_id == long_ex


@pytest.mark.parametrize(
    "device_id", ["", "ab", "PC-001", "-pc1", "pc 001", "pc/001", "+", "#", "a" * 65, "pc-1\n"]
)
def test_topic_rejects_bad_device_id(device_id: str) -> None:
    with pytest.raises(ProtocolError) as info:
        topic(TopicKind.TELEMETRY, device_id)
    assert info.value.field == "device_id"
    with pytest.raises(ProtocolError):
        validate_device_id(device_id)


@pytest.mark.parametrize("execution_id", ["", "get", "notify", "-x", "a/b", "+", "e" * 65, "x\n"])
def test_topic_rejects_bad_execution_id(execution_id: str) -> None:
    with pytest.raises(ProtocolError) as info:
        topic(TopicKind.JOB_UPDATE, "pc-001", execution_id)
    assert info.value.field == "execution_id"
    with pytest.raises(ProtocolError):
        validate_execution_id(execution_id)


def test_topic_argument_rules() -> None:
    with pytest.raises(ProtocolError, match="device_id: required"):
        topic(TopicKind.STATUS)
    with pytest.raises(ProtocolError, match="execution_id: required"):
        topic(TopicKind.JOB_UPDATE, "pc-001")
    with pytest.raises(ProtocolError) as info:
        topic(TopicKind.STATUS, "pc-001", "ex-1")
    assert info.value.field == "execution_id"
    with pytest.raises(ProtocolError) as info:
        topic(TopicKind.CP_STATUS, "pc-001")
    assert info.value.field == "device_id"


def test_validators_return_their_input() -> None:
    assert validate_device_id("pc-001") == "pc-001"
    assert validate_execution_id("Ex_1-a") == "Ex_1-a"


def test_protocol_error_message_and_type() -> None:
    err = ProtocolError("$.samples[0].ts", "Expected `float`, got `str`")
    assert isinstance(err, ValueError)
    assert str(err) == "$.samples[0].ts: Expected `float`, got `str`"
    assert (err.field, err.reason) == ("$.samples[0].ts", "Expected `float`, got `str`")


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_parse_topic_on_arbitrary_text_raises_only_protocol_error(name: str) -> None:
    try:
        parsed = parse_topic(name)
    except ProtocolError as err:
        assert err.field == "topic"
    else:
        assert topic(*parsed) == name


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.sampled_from(sorted(TopicKind)),
    st.from_regex(r"[a-z0-9][a-z0-9-]{2,63}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True),
)
def test_topic_round_trips_for_valid_ids(kind: TopicKind, device_id: str, ex: str) -> None:
    if kind is TopicKind.CP_STATUS:
        args: tuple[str | None, str | None] = (None, None)
    elif kind is TopicKind.JOB_UPDATE:
        if ex in ("get", "notify"):
            return
        args = (device_id, ex)
    else:
        args = (device_id, None)
    assert parse_topic(topic(kind, *args)) == ParsedTopic(kind, *args)


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(sorted(TopicKind)), st.text(), st.text())
def test_topic_on_arbitrary_ids_raises_only_protocol_error(
    kind: TopicKind, device_id: str, ex: str
) -> None:
    try:
        name = topic(kind, device_id, ex)
    except ProtocolError:
        return
    # Whatever topic() accepts, parse_topic() must read back unchanged.
    assert parse_topic(name).device_id == device_id
