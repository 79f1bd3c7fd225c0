"""JSON encoding and strict decoding of contract messages, with errors that name the field."""

from __future__ import annotations

import functools
import re
from typing import Any, TypeVar

import msgspec

from edge.protocol._errors import ProtocolError
from edge.protocol.messages import (
    PROTOCOL_VERSION,
    CallSignal,
    CpStatus,
    Event,
    JobsGet,
    JobsNotify,
    JobUpdate,
    Message,
    Status,
    TelemetryBatch,
    TwinDesired,
    TwinReported,
)
from edge.protocol.topics import ParsedTopic, TopicKind, parse_topic

MAX_PAYLOAD = 64 * 1024  # bytes, the whole MQTT payload

T = TypeVar("T", bound=msgspec.Struct)

MESSAGE_FOR_KIND: dict[TopicKind, type[Message]] = {
    TopicKind.STATUS: Status,
    TopicKind.TWIN_DESIRED: TwinDesired,
    TopicKind.TWIN_REPORTED: TwinReported,
    TopicKind.TELEMETRY: TelemetryBatch,
    TopicKind.EVENTS: Event,
    TopicKind.JOBS_GET: JobsGet,
    TopicKind.JOBS_NOTIFY: JobsNotify,
    TopicKind.JOB_UPDATE: JobUpdate,
    TopicKind.CALL_IN: CallSignal,
    TopicKind.CALL_OUT: CallSignal,
    TopicKind.CP_STATUS: CpStatus,
}


class _Header(msgspec.Struct):
    # Read before the typed decode: a missing "v" must be an error even though the models
    # default it to 1 for senders, and a future v2 payload must not be misread as v1.
    v: Any = msgspec.UNSET


_ENCODER = msgspec.json.Encoder()
_HEADER_DECODER = msgspec.json.Decoder(_Header)
_V1_PREFIX = b'{"v":1,'
# msgspec ends a validation message with " - at `$.path`", or " - at `key` in `$.path`"
# when a dict key is at fault.
_AT_PATH = re.compile(r" - at (`key` in )?`(\$[^`]*)`\Z", re.DOTALL)


@functools.cache
def _decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    # Building a Decoder compiles the type once; the ingest path reuses it for every message.
    return msgspec.json.Decoder(type_)


def encode(msg: msgspec.Struct) -> bytes:
    """Encode ``msg`` as a JSON payload; ProtocolError("payload") if it is too large."""
    try:
        data = _ENCODER.encode(msg)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        # Unsupported object, lone surrogate in a str, int beyond 64 bits, absurd nesting.
        raise ProtocolError("payload", f"cannot encode: {exc}") from None
    if len(data) > MAX_PAYLOAD:
        raise ProtocolError("payload", f"too large: {len(data)} bytes > {MAX_PAYLOAD}")
    return data


def _validation_error(exc: msgspec.ValidationError) -> ProtocolError:
    message = str(exc)
    match = _AT_PATH.search(message)
    if match is None:
        path, reason = "$", message
    else:
        path, reason = match.group(2), message[: match.start()]
        if match.group(1):
            reason = f"invalid key: {reason}"
    cause = exc.__cause__
    if isinstance(cause, ProtocolError):
        # Raised by a __post_init__ with a field relative to its struct: anchor it at the
        # struct's path so the caller sees "$.schedule.wakes[3].end", not just "end".
        return ProtocolError(f"{path}.{cause.field}", cause.reason)
    return ProtocolError(path, reason)


def decode(data: bytes | str, type_: type[T]) -> T:
    """Decode and validate a JSON payload as ``type_``; any defect raises ProtocolError."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD:
        raise ProtocolError("payload", f"too large: {size} bytes > {MAX_PAYLOAD}")
    try:
        if isinstance(data, bytes) and data.startswith(_V1_PREFIX):
            # What every sender of this contract writes ("v" first): the version is there
            # and is 1, so one typed decode does. Anything else takes the careful path.
            try:
                return _decoder(type_).decode(data)
            except msgspec.ValidationError:
                pass  # a duplicate "v" may hide behind the prefix: let the header speak
        if isinstance(type_, type) and issubclass(type_, Message):
            try:
                header = _HEADER_DECODER.decode(data)
            except msgspec.ValidationError:
                # _Header accepts any object, so the only failure left is "not an object".
                raise ProtocolError("payload", "not a JSON object") from None
            version = header.v
            if version is msgspec.UNSET:
                raise ProtocolError(
                    "$.v", f"unsupported version: missing (expected {PROTOCOL_VERSION})"
                )
            # type() rather than ==: true == 1 and 1.0 == 1 in Python, but not on the wire.
            if type(version) is not int or version != PROTOCOL_VERSION:
                raise ProtocolError(
                    "$.v", f"unsupported version {version!r} (expected {PROTOCOL_VERSION})"
                )
        return _decoder(type_).decode(data)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("payload", f"not valid JSON: {exc}") from None
    except UnicodeError as exc:
        # Invalid UTF-8 in bytes, or a lone surrogate in a str: msgspec lets these through.
        raise ProtocolError("payload", f"not valid UTF-8: {exc}") from None
    except RecursionError:
        # 64 KiB of "[" nests far deeper than the interpreter's recursion limit.
        raise ProtocolError("payload", "nested too deeply") from None


def decode_message(topic: str, data: bytes | str) -> tuple[ParsedTopic, Message]:
    """Parse ``topic`` and decode ``data`` as the message that topic carries."""
    parsed = parse_topic(topic)
    msg = decode(data, MESSAGE_FOR_KIND[parsed.kind])
    if isinstance(msg, JobUpdate) and msg.execution_id != parsed.execution_id:
        # The broker ACL checks the topic, not the payload: trust neither alone.
        raise ProtocolError(
            "$.execution_id",
            f"{msg.execution_id!r} does not match the topic's {parsed.execution_id!r}",
        )
    return parsed, msg
