"""Property tests: no input, however broken, makes the codec raise anything but ProtocolError."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.protocol import (
    MESSAGE_FOR_KIND,
    Message,
    ProtocolError,
    TopicKind,
    decode,
    decode_message,
    encode,
    topic,
)

MESSAGE_TYPES: list[type[Message]] = sorted(
    set(MESSAGE_FOR_KIND.values()), key=lambda t: t.__name__
)


def _struct_types(root: type[msgspec.Struct]) -> set[type[msgspec.Struct]]:
    # Walk the type tree so random objects can use the real field names of nested structs too.
    found: set[type[msgspec.Struct]] = set()
    todo: list[msgspec.inspect.Type] = [msgspec.inspect.type_info(root)]
    while todo:
        info = todo.pop()
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in found:
                continue
            found.add(info.cls)
            todo.extend(f.type for f in info.fields)
        elif isinstance(info, msgspec.inspect.UnionType):
            todo.extend(info.types)
        elif isinstance(info, msgspec.inspect.ListType | msgspec.inspect.DictType):
            todo.append(
                info.item_type if isinstance(info, msgspec.inspect.ListType) else info.value_type
            )
    return found


FIELD_NAMES: list[str] = sorted(
    {f.name for t in MESSAGE_TYPES for s in _struct_types(t) for f in msgspec.structs.fields(s)}
)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # keep .hypothesis/ out of the work tree
    suppress_health_check=[HealthCheck.too_slow],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text()
    | st.sampled_from(["", "help", "offer", "rtc", "ex-1", "10.8.0.1/32", "FAILED"])
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6),
    max_leaves=25,
)


@st.composite
def message_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object that looks like a message: "v": 1, a ts, then random real-ish fields."""
    obj = draw(st.dictionaries(keys, json_values, max_size=8))
    obj["v"] = 1
    if draw(st.booleans()):
        obj["ts"] = draw(st.floats(min_value=0, max_value=2e9) | st.integers(min_value=0))
    return obj


def _check_decode(data: bytes | str, type_: type[Message]) -> None:
    try:
        msg = decode(data, type_)
    except ProtocolError as err:
        assert err.field
        assert err.reason
        return
    # Whatever decodes must survive a re-encode unchanged (or be refused as too large).
    try:
        again = encode(msg)
    except ProtocolError as err:
        assert err.field == "payload"
        return
    assert decode(again, type_) == msg


def _dumps(value: Any) -> str:
    # allow_nan: NaN/Infinity are not JSON, and the decoder must say so cleanly.
    return json.dumps(value, allow_nan=True)


@SETTINGS
@given(st.binary(max_size=512), st.sampled_from(MESSAGE_TYPES))
def test_arbitrary_bytes(data: bytes, type_: type[Message]) -> None:
    _check_decode(data, type_)


@SETTINGS
@given(json_values, st.sampled_from(MESSAGE_TYPES))
def test_arbitrary_json_values(value: Any, type_: type[Message]) -> None:
    text = _dumps(value)
    _check_decode(text, type_)
    _check_decode(text.encode("utf-8", "surrogatepass"), type_)


@SETTINGS
@given(message_objects(), st.sampled_from(MESSAGE_TYPES))
def test_arbitrary_json_objects_with_version(obj: dict[str, Any], type_: type[Message]) -> None:
    _check_decode(_dumps(obj).encode("utf-8", "surrogatepass"), type_)


def _topic_for(kind: TopicKind) -> str:
    if kind is TopicKind.CP_STATUS:
        return topic(kind)
    if kind is TopicKind.JOB_UPDATE:
        return topic(kind, "pc-001", "ex-1")
    return topic(kind, "pc-001")


@SETTINGS
@given(st.sampled_from(sorted(TopicKind)), message_objects() | json_values)
def test_decode_message_for_every_topic_kind(kind: TopicKind, value: Any) -> None:
    data = _dumps(value).encode("utf-8", "surrogatepass")
    try:
        parsed, msg = decode_message(_topic_for(kind), data)
    except ProtocolError:
        return
    assert parsed.kind is kind
    assert isinstance(msg, MESSAGE_FOR_KIND[kind])


@SETTINGS
@given(st.sampled_from(sorted(TopicKind)), st.binary(max_size=256))
def test_decode_message_arbitrary_bytes(kind: TopicKind, data: bytes) -> None:
    try:
        decode_message(_topic_for(kind), data)
    except ProtocolError:
        pass


@SETTINGS
@given(st.text(max_size=80), st.binary(max_size=64))
def test_decode_message_arbitrary_topic(name: str, data: bytes) -> None:
    try:
        decode_message(name, data)
    except ProtocolError:
        pass
