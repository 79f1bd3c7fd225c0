"""Topic names of the MQTT contract v1: build, parse, subscribe, ACL patterns.

Direction of the two call topics, seen from the device: ``call/in`` carries signalling from
the control plane into the device, ``call/out`` carries the device's answers out.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from edge.protocol._errors import ProtocolError

# Spelled out rather than built from PROTOCOL_VERSION: the root is part of the wire contract
# and must not move if someone bumps a constant; a test ties the two together.
ROOT = "difronte/v1"

# Plain regex strings, ending in \Z for use with msgspec's Meta(pattern=...), which searches:
# "$" would also match before a trailing newline.
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,63}\Z"
EXECUTION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z"

# The compiled forms use the documented "$" spelling; always match them with fullmatch().
DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
EXECUTION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

# "jobs/get" and "jobs/notify" are topics of their own; an execution with one of these ids
# would make "jobs/{id}/..." read like them, so (as in AWS IoT Jobs) the names are reserved.
RESERVED_EXECUTION_IDS = frozenset({"get", "notify"})


class TopicKind(enum.StrEnum):
    """Every topic of the contract; the value is the suffix after ``dev/{id}/`` (or ROOT)."""

    STATUS = "status"
    TWIN_DESIRED = "twin/desired"
    TWIN_REPORTED = "twin/reported"
    TELEMETRY = "telemetry"
    EVENTS = "events"
    JOBS_GET = "jobs/get"
    JOBS_NOTIFY = "jobs/notify"
    JOB_UPDATE = "jobs/update"
    CALL_IN = "call/in"
    CALL_OUT = "call/out"
    CP_STATUS = "cp/status"


class ParsedTopic(NamedTuple):
    """A topic split into its kind and the ids it carries."""

    kind: TopicKind
    device_id: str | None  # None only for CP_STATUS
    execution_id: str | None  # set only for JOB_UPDATE


# Retained topics carry state (last will, twins); commands and streams are never retained.
RETAINED: frozenset[TopicKind] = frozenset(
    {TopicKind.STATUS, TopicKind.TWIN_DESIRED, TopicKind.TWIN_REPORTED, TopicKind.CP_STATUS}
)
QOS = 1  # every topic of the contract is QoS 1; payloads carry ids so duplicates are harmless

DEVICE_PUBLISHES: frozenset[TopicKind] = frozenset(
    {
        TopicKind.STATUS,
        TopicKind.TWIN_REPORTED,
        TopicKind.TELEMETRY,
        TopicKind.EVENTS,
        TopicKind.JOBS_GET,
        TopicKind.JOB_UPDATE,
        TopicKind.CALL_OUT,
    }
)
DEVICE_SUBSCRIBES: frozenset[TopicKind] = frozenset(
    {TopicKind.TWIN_DESIRED, TopicKind.JOBS_NOTIFY, TopicKind.CALL_IN, TopicKind.CP_STATUS}
)

_CP_STATUS_TOPIC = f"{ROOT}/{TopicKind.CP_STATUS.value}"
_DEV_PREFIX = f"{ROOT}/dev/"
# Suffix -> kind for every device topic with a fixed suffix (all but JOB_UPDATE).
_FIXED_SUFFIX: dict[str, TopicKind] = {
    k.value: k for k in TopicKind if k not in (TopicKind.CP_STATUS, TopicKind.JOB_UPDATE)
}


def validate_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is a valid device id, else raise ProtocolError("device_id")."""
    if not isinstance(device_id, str):
        raise ProtocolError("device_id", f"must be a string, got {type(device_id).__name__}")
    if DEVICE_ID_RE.fullmatch(device_id) is None:
        raise ProtocolError(
            "device_id",
            f"invalid device id {device_id!r}: 3-64 of a-z, 0-9 and '-', not starting with '-'",
        )
    return device_id


def validate_execution_id(execution_id: str) -> str:
    """Return ``execution_id`` if valid for ``jobs/{id}/update``, else raise ProtocolError."""
    if not isinstance(execution_id, str):
        raise ProtocolError("execution_id", f"must be a string, got {type(execution_id).__name__}")
    if EXECUTION_ID_RE.fullmatch(execution_id) is None:
        raise ProtocolError(
            "execution_id",
            f"invalid execution id {execution_id!r}: 1-64 of A-Z, a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
        )
    if execution_id in RESERVED_EXECUTION_IDS:
        raise ProtocolError("execution_id", f"{execution_id!r} is reserved")
    return execution_id


def _device_topic(kind: TopicKind, device: str, execution: str) -> str:
    # The one place that knows where the ids go, shared by topic(), filters and ACL patterns.
    if kind is TopicKind.JOB_UPDATE:
        return f"{_DEV_PREFIX}{device}/jobs/{execution}/update"
    return f"{_DEV_PREFIX}{device}/{kind.value}"


def topic(kind: TopicKind, device_id: str | None = None, execution_id: str | None = None) -> str:
    """Build the topic name for ``kind``, validating the ids it needs."""
    kind = TopicKind(kind)
    if kind is TopicKind.CP_STATUS:
        if device_id is not None:
            raise ProtocolError("device_id", "must be None for cp/status")
        if execution_id is not None:
            raise ProtocolError("execution_id", "must be None for cp/status")
        return _CP_STATUS_TOPIC
    if device_id is None:
        raise ProtocolError("device_id", f"required for {kind.value}")
    validate_device_id(device_id)
    if kind is TopicKind.JOB_UPDATE:
        if execution_id is None:
            raise ProtocolError("execution_id", "required for jobs/update")
        validate_execution_id(execution_id)
        return _device_topic(kind, device_id, execution_id)
    if execution_id is not None:
        raise ProtocolError("execution_id", f"only for jobs/update, not {kind.value}")
    return _device_topic(kind, device_id, "")


def device_filter(kind: TopicKind) -> str:
    """Wildcard subscription matching ``kind`` for every device (``+`` for each id)."""
    kind = TopicKind(kind)
    if kind is TopicKind.CP_STATUS:
        raise ProtocolError("kind", "cp/status is not a device topic")
    return _device_topic(kind, "+", "+")


def acl_pattern(kind: TopicKind) -> str:
    """Mosquitto ACL ``pattern`` for ``kind`` on the device's own topics (``%u`` = username)."""
    kind = TopicKind(kind)
    if kind is TopicKind.CP_STATUS:
        raise ProtocolError("kind", "cp/status is not a device topic")
    # The device id is the MQTT username, so %u confines each device to its own subtree.
    return _device_topic(kind, "%u", "+")


def parse_topic(topic: str) -> ParsedTopic:
    """Split a concrete topic name into its kind and ids; ProtocolError("topic") otherwise."""
    if not isinstance(topic, str):
        raise ProtocolError("topic", f"must be a string, got {type(topic).__name__}")
    if topic == _CP_STATUS_TOPIC:
        return ParsedTopic(TopicKind.CP_STATUS, None, None)
    if not topic.startswith(_DEV_PREFIX):
        raise ProtocolError("topic", f"not a difronte v1 topic: {topic!r}")
    device_id, sep, suffix = topic[len(_DEV_PREFIX) :].partition("/")
    if not sep:
        raise ProtocolError("topic", f"missing topic kind after the device id: {topic!r}")
    # fullmatch also rejects the wildcards "+" and "#": a filter is not a topic name.
    if DEVICE_ID_RE.fullmatch(device_id) is None:
        raise ProtocolError("topic", f"invalid device id {device_id!r} in {topic!r}")
    kind = _FIXED_SUFFIX.get(suffix)
    if kind is not None:
        return ParsedTopic(kind, device_id, None)
    parts = suffix.split("/")
    if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "update":
        execution_id = parts[1]
        if (
            EXECUTION_ID_RE.fullmatch(execution_id) is None
            or execution_id in RESERVED_EXECUTION_IDS
        ):
            raise ProtocolError("topic", f"invalid execution id {execution_id!r} in {topic!r}")
        return ParsedTopic(TopicKind.JOB_UPDATE, device_id, execution_id)
    raise ProtocolError("topic", f"unknown topic kind {suffix!r} in {topic!r}")
