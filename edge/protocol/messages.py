"""Message models of the MQTT contract v1, one msgspec Struct per payload.

Decoding (see ``codec``) enforces every ``Meta`` constraint below and names the failing
field's path. Constructing a Struct in Python does not run those constraints; only the
``__post_init__`` checks run then, and they cover what JSON cannot carry (NaN, infinities)
and what spans several fields (a window's end before its start).
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge.protocol._errors import ProtocolError
from edge.protocol.topics import EXECUTION_ID_PATTERN, RESERVED_EXECUTION_IDS

PROTOCOL_VERSION = 1

# Ids chosen by their sender (event ids, call sessions): safe in logs, URLs and SQL keys.
ID_PATTERN = r"^[A-Za-z0-9_.:-]+\Z"
# A WireGuard key is 32 bytes in base64: 43 significant characters then "=". The last
# character before "=" carries only 4 bits, so just 16 letters are possible there.
WG_KEY_PATTERN = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\Z"
METRIC_KEY_PATTERN = r"^[a-z0-9_.]{1,64}\Z"
# host:port, with IPv6 hosts in brackets as WireGuard's Endpoint wants them.
ENDPOINT_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}\Z"

Timestamp = Annotated[float, Meta(ge=0)]  # epoch seconds UTC
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=ID_PATTERN)]
ExecutionId = Annotated[str, Meta(pattern=EXECUTION_ID_PATTERN)]
NonNegInt = Annotated[int, Meta(ge=0)]
MetricKey = Annotated[str, Meta(pattern=METRIC_KEY_PATTERN)]
_METRIC_KEY = re.compile(METRIC_KEY_PATTERN)
_METRIC_KEYS = re.compile(r"[a-z0-9_.]{1,64}(?:\n[a-z0-9_.]{1,64})*\Z")
Cidr = Annotated[str, Meta(min_length=1, max_length=64)]

JobStatus = Literal[
    "QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "CANCELED"
]
BootReason = Literal["rtc", "button", "power", "unknown"]
EventKind = Literal[
    "help", "woke", "shutting_down", "error", "alarm_armed", "call", "job", "diagnostics", "info"
]
Severity = Literal["info", "warning", "error", "urgent"]
CallSignalType = Literal[
    "offer", "answer", "candidate", "hangup", "ring", "accept", "error", "stats"
]


def now() -> float:
    """Current time in epoch seconds UTC: the one clock messages use, so tests can fake it."""
    return time.time()


def _check_time(field: str, value: float) -> None:
    # bool is an int subclass; True as a timestamp is a bug, not 1970-01-01T00:00:01.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(field, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ProtocolError(field, f"must be a finite number >= 0, got {value!r}")


def _check_finite(field: str, value: object) -> None:
    # msgspec writes NaN and infinities as null, which the receiver then rejects as a whole
    # message: refuse them where the message is built, naming the culprit.
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(field, f"must be finite, got {value!r}")


class Message(msgspec.Struct, kw_only=True):
    """Base of every top-level payload: protocol version and send time."""

    v: Literal[1] = 1
    ts: Timestamp

    def __post_init__(self) -> None:
        _check_time("ts", self.ts)


# --- dev/{id}/status -------------------------------------------------------------------


class Status(Message, kw_only=True):
    """Birth and Last Will of a device; ``session`` orders a stale will after a newer birth."""

    online: bool
    session: NonNegInt
    agent_version: Annotated[str, Meta(max_length=64)] = ""
    boot_reason: BootReason = "unknown"


# --- dev/{id}/twin/desired -------------------------------------------------------------


class Wake(msgspec.Struct, kw_only=True):
    """One appointment window the device must be awake for."""

    start: Timestamp
    end: Timestamp
    appointment_ids: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=64)] = []

    def __post_init__(self) -> None:
        _check_time("start", self.start)
        _check_time("end", self.end)
        if self.end < self.start:
            raise ProtocolError("end", f"must be >= start ({self.end!r} < {self.start!r})")


class ScheduleDesired(msgspec.Struct, kw_only=True):
    """Concrete UTC wake windows up to ``horizon_end`` and what to do between them."""

    version: NonNegInt
    lead_s: Annotated[int, Meta(ge=0, le=3600)] = 120
    horizon_end: Timestamp
    wakes: Annotated[list[Wake], Meta(max_length=2000)]
    policy: Literal["poweroff", "suspend", "stay"] = "poweroff"
    idle_s: Annotated[int, Meta(ge=0, le=86400)] = 600

    def __post_init__(self) -> None:
        _check_time("horizon_end", self.horizon_end)


class TelemetryDesired(msgspec.Struct, kw_only=True):
    """How often to sample health and how many samples to send per batch."""

    interval_s: Annotated[int, Meta(ge=5, le=86400)] = 60
    batch_max: Annotated[int, Meta(ge=1, le=500)] = 10


class VpnDesired(msgspec.Struct, kw_only=True):
    """The device's tunnel address and the hub peer to configure."""

    address: Cidr
    hub_public_key: Annotated[str, Meta(pattern=WG_KEY_PATTERN)]
    hub_endpoint: Annotated[str, Meta(max_length=255, pattern=ENDPOINT_PATTERN)]
    allowed_ips: Annotated[list[Cidr], Meta(max_length=256)]
    keepalive_s: Annotated[int, Meta(ge=0, le=65535)] = 25
    # Optional IPv6 tunnel address, set when the hub's pool has an IPv6 prefix too.
    address6: Cidr | None = None
    # Device keys the hub accepts for this device: its current key and, during a key rotation,
    # the new one as well. A device switches to its pending key once it is listed here.
    accepted_keys: Annotated[
        list[Annotated[str, Meta(pattern=WG_KEY_PATTERN)]], Meta(max_length=4)
    ] = []

    def __post_init__(self) -> None:
        if "/" not in self.address:
            raise ProtocolError(
                "address", f"must be in CIDR form like 10.8.0.2/32, got {self.address!r}"
            )
        try:
            ipaddress.ip_interface(self.address)
        except ValueError as exc:
            raise ProtocolError("address", str(exc)) from None
        if self.address6 is not None:
            try:
                iface6 = ipaddress.ip_interface(self.address6)
            except ValueError as exc:
                raise ProtocolError("address6", str(exc)) from None
            if iface6.version != 6 or "/" not in self.address6:
                raise ProtocolError(
                    "address6", f"must be IPv6 in CIDR form like fd00::2/128, got {self.address6!r}"
                )
        for i, net in enumerate(self.allowed_ips):
            try:
                # strict=False: wg accepts host bits set ("10.8.0.1/24"), so do we.
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ProtocolError(f"allowed_ips[{i}]", str(exc)) from None
        # The pattern checks the shape on the wire; the port range needs arithmetic.
        port_text = self.hub_endpoint.rpartition(":")[2]
        port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
        if not 1 <= port <= 65535:
            raise ProtocolError(
                "hub_endpoint", f"must be host:port with port 1..65535, got {self.hub_endpoint!r}"
            )


class CallDesired(msgspec.Struct, kw_only=True):
    """Call answering policy and media limits."""

    auto_answer: bool = True
    width: Annotated[int, Meta(ge=16, le=4096)] = 640
    height: Annotated[int, Meta(ge=16, le=4096)] = 480
    max_kbps: Annotated[int, Meta(ge=16, le=100_000)] = 800


class TwinDesired(Message, kw_only=True):
    """Versioned desired state; a missing section means "leave as is"."""

    version: NonNegInt
    schedule: ScheduleDesired | None = None
    telemetry: TelemetryDesired | None = None
    vpn: VpnDesired | None = None
    call: CallDesired | None = None


# --- dev/{id}/twin/reported ------------------------------------------------------------


class VpnReported(msgspec.Struct, kw_only=True):
    """The device's own WireGuard public key and tunnel state."""

    # Not pattern-checked: a device may report a broken key, and the control plane should see
    # (and refuse to deploy) it rather than lose the whole report. See WG_KEY_PATTERN.
    public_key: Annotated[str, Meta(max_length=64)]
    state: Literal["down", "up", "error"] = "down"
    latest_handshake: Timestamp | None = None
    rx_bytes: NonNegInt = 0
    tx_bytes: NonNegInt = 0
    error: Annotated[str, Meta(max_length=1000)] | None = None
    # A key generated for a rotation and not in use yet; the hub learns it before the switch.
    pending_public_key: Annotated[str, Meta(max_length=64)] | None = None

    def __post_init__(self) -> None:
        if self.latest_handshake is not None:
            _check_time("latest_handshake", self.latest_handshake)


ConfigValue = str | int | float | bool


class TwinReported(Message, kw_only=True):
    """What the device actually applied: versions, armed RTC alarm, VPN, effective config."""

    desired_version: NonNegInt | None = None
    agent_version: Annotated[str, Meta(max_length=64)] = ""
    schedule_version: NonNegInt | None = None
    armed_alarm: Timestamp | None = None
    alarm_reason: Annotated[str, Meta(max_length=500)] | None = None
    alarm_error: Annotated[str, Meta(max_length=1000)] | None = None
    rtc_local_time: bool | None = None
    rtc_max_ahead_s: NonNegInt | None = None
    vpn: VpnReported | None = None
    config: Annotated[
        dict[Annotated[str, Meta(max_length=128)], ConfigValue], Meta(max_length=200)
    ] = {}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.armed_alarm is not None:
            _check_time("armed_alarm", self.armed_alarm)
        for key, value in self.config.items():
            _check_finite(f"config[{key!r}]", value)


# --- dev/{id}/telemetry ----------------------------------------------------------------


class Sample(msgspec.Struct, kw_only=True):
    """One health sample: metric name -> value, and the collectors that failed."""

    ts: Timestamp
    # Keys are MetricKey, checked in __post_init__: one regular expression over all of them
    # instead of one call per key (a Meta pattern) made decoding eight times slower.
    metrics: Annotated[dict[str, float], Meta(max_length=200)]
    errors: dict[str, str] = {}  # collector name -> error text

    def __post_init__(self) -> None:
        _check_time("ts", self.ts)
        metrics = self.metrics
        if metrics:
            joined = "\n".join(metrics)
            if _METRIC_KEYS.match(joined) is None or joined.count("\n") != len(metrics) - 1:
                for key in metrics:
                    if _METRIC_KEY.match(key) is None:
                        raise ProtocolError(
                            "metrics", f"invalid key {key!r}: must match {METRIC_KEY_PATTERN}"
                        )
        # One pass in C over the values; by name only to say which one is wrong.
        if not all(map(math.isfinite, metrics.values())):
            for key, value in metrics.items():
                _check_finite(f"metrics[{key!r}]", value)


class TelemetryBatch(Message, kw_only=True):
    """Samples in time order; ``seq`` is per device and monotonic, so duplicates are harmless."""

    seq: NonNegInt
    samples: Annotated[list[Sample], Meta(min_length=1, max_length=500)]
    dropped: NonNegInt = 0  # samples the outbox dropped since the last batch


# --- dev/{id}/events -------------------------------------------------------------------


class Event(Message, kw_only=True):
    """Something that happened on the device; ``id`` is unique per event for de-duplication."""

    id: Id
    kind: EventKind
    severity: Severity = "info"
    message: Annotated[str, Meta(max_length=1000)] = ""
    data: dict[str, Any] = {}


# --- dev/{id}/jobs/... -----------------------------------------------------------------


class JobsGet(Message, kw_only=True):
    """Ask for the pending job executions (sent on every connect)."""


class JobExecution(msgspec.Struct, kw_only=True):
    """One pending execution of a job on this device."""

    execution_id: ExecutionId
    job_id: Annotated[str, Meta(min_length=1, max_length=64)]
    operation: Annotated[str, Meta(min_length=1, max_length=64)]
    parameters: dict[str, Any] = {}
    timeout_s: Annotated[int, Meta(ge=1, le=86400)] = 600
    version: Annotated[int, Meta(ge=1)] = 1

    def __post_init__(self) -> None:
        if self.execution_id in RESERVED_EXECUTION_IDS:
            raise ProtocolError("execution_id", f"{self.execution_id!r} is reserved")


class JobsNotify(Message, kw_only=True):
    """The device's pending executions, pushed on change and in answer to ``jobs/get``."""

    executions: Annotated[list[JobExecution], Meta(max_length=100)]


class JobUpdate(Message, kw_only=True):
    """Status and progress of one execution; ``seq`` orders updates and drops duplicates."""

    execution_id: ExecutionId
    status: JobStatus
    seq: NonNegInt
    progress: Annotated[int, Meta(ge=0, le=100)] | None = None
    details: dict[str, str] = {}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.execution_id in RESERVED_EXECUTION_IDS:
            raise ProtocolError("execution_id", f"{self.execution_id!r} is reserved")


# --- dev/{id}/call/in, dev/{id}/call/out -----------------------------------------------


class IceServer(msgspec.Struct, kw_only=True):
    """A STUN or TURN server for one call, with time-limited TURN REST credentials."""

    urls: Annotated[list[Annotated[str, Meta(max_length=500)]], Meta(min_length=1, max_length=8)]
    username: Annotated[str, Meta(max_length=256)] | None = None
    credential: Annotated[str, Meta(max_length=256)] | None = None


class CallSignal(Message, kw_only=True):
    """One WebRTC signalling message of call ``session``."""

    session: Id
    type: CallSignalType
    sdp: Annotated[str, Meta(max_length=60000)] | None = None
    candidate: dict[str, Any] | None = None  # None with type "candidate" = end of candidates
    reason: Annotated[str, Meta(max_length=500)] | None = None
    stats: dict[str, float] | None = None
    # With an offer: the ICE servers the device may use, who is calling (shown while it rings)
    # and whether they are one of the beneficiary's assigned caregivers (auto-answer policy).
    ice_servers: Annotated[list[IceServer], Meta(max_length=8)] | None = None
    caller: Annotated[str, Meta(max_length=200)] | None = None
    assigned: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type in ("offer", "answer") and not self.sdp:
            raise ProtocolError("sdp", f"required for {self.type}")
        if self.stats is not None:
            for key, value in self.stats.items():
                _check_finite(f"stats[{key!r}]", value)


# --- cp/status -------------------------------------------------------------------------


class CpStatus(Message, kw_only=True):
    """Birth and Last Will of a control-plane instance."""

    online: bool
    instance: Annotated[str, Meta(max_length=128)] = ""
