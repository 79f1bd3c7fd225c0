"""What a job may ask for: operations and their parameters, targets, rollout, abort criteria.

These are the control plane's own checks, made when a job is created, so a person gets the
wrong field named at once rather than fifty REJECTED executions later. The device checks the
parameters again (``edge.jobs``) and rejects what it cannot do, with the reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .rollout import AbortCriterion, ExponentialPolicy, RatePolicy, Rollout

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,63}$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$"
MAX_TARGETS = 10_000

Operation = Literal[
    "reboot",
    "update-agent",
    "run-diagnostics",
    "collect-logs",
    "set-config",
    "test-wake",
    "rotate-credentials",
    "rotate-vpn-key",
]
OPERATIONS: tuple[str, ...] = get_args(Operation)
# What a technician may start on their own; the rest is the fleet manager's.
TECHNICIAN_OPERATIONS = frozenset({"run-diagnostics", "collect-logs", "test-wake"})

# set-config may change these keys of the edge configuration, and only these: the broker
# address or the device id changed remotely could cut the device off for good.
SETTABLE_CONFIG: dict[str, type | tuple[type, ...]] = {
    "timezone": str,
    "control_plane_url": str,
    "telemetry.interval_s": (int, float),
    "telemetry.batch_max": int,
    "telemetry.outbox_max_telemetry": int,
    "mqtt.keepalive": int,
    "mqtt.backoff_cap_s": (int, float),
    "jobs.health_deadline_s": (int, float),
}


class JobSpecError(ValueError):
    """A job document is invalid; the message starts with the field's path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- parameters of each operation --------------------------------------------------------


class RebootParams(_Strict):
    delay_s: Annotated[int, Field(ge=0, le=3600)] = 0


class UpdateAgentParams(_Strict):
    url: Annotated[str, Field(min_length=9, max_length=2000, pattern=r"^https://\S+$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    version: Annotated[str, Field(pattern=VERSION_PATTERN)]
    health_deadline_s: Annotated[int, Field(ge=10, le=3600)] | None = None


class RunDiagnosticsParams(_Strict):
    test_devices: bool = False


class CollectLogsParams(_Strict):
    since_s: Annotated[int, Field(ge=60, le=30 * 86400)] = 86400
    max_bytes: Annotated[int, Field(ge=1024, le=10 * 1024 * 1024)] = 1024 * 1024


class SetConfigParams(_Strict):
    settings: Annotated[dict[str, str | int | float | bool], Field(min_length=1, max_length=50)]

    @model_validator(mode="after")
    def _known_keys(self) -> SetConfigParams:
        for key, value in self.settings.items():
            expected = SETTABLE_CONFIG.get(key)
            if expected is None:
                allowed = ", ".join(sorted(SETTABLE_CONFIG))
                raise ValueError(f"settings.{key}: not settable remotely (allowed: {allowed})")
            if isinstance(value, bool) or not isinstance(value, expected):
                raise ValueError(f"settings.{key}: wrong type {type(value).__name__}")
        return self


class TestWakeParams(_Strict):
    delay_s: Annotated[int, Field(ge=60, le=3600)] = 120


class RotateCredentialsParams(_Strict):
    pass


class RotateVpnKeyParams(_Strict):
    pass


PARAMETERS: dict[str, type[BaseModel]] = {
    "reboot": RebootParams,
    "update-agent": UpdateAgentParams,
    "run-diagnostics": RunDiagnosticsParams,
    "collect-logs": CollectLogsParams,
    "set-config": SetConfigParams,
    "test-wake": TestWakeParams,
    "rotate-credentials": RotateCredentialsParams,
    "rotate-vpn-key": RotateVpnKeyParams,
}


def _first_error(prefix: str, exc: ValidationError) -> str:
    errors = exc.errors()
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        head = msg.split(": ", 1)[0]
        if not loc and head != msg and " " not in head:
            # A model validator names the field at the start of its message.
            parts.append(f"{prefix}.{msg}")
        else:
            parts.append(f"{prefix}.{loc}: {msg}" if loc else f"{prefix}: {msg}")
    return "; ".join(parts)


def validate_parameters(operation: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``operation`` checked and with defaults filled in."""
    model = PARAMETERS.get(operation)
    if model is None:
        raise JobSpecError(f"operation: unknown operation {operation!r}")
    try:
        return model.model_validate(parameters).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise JobSpecError(_first_error("parameters", exc)) from None


# --- targets, rollout, abort -------------------------------------------------------------


class DeviceFilter(_Strict):
    """Devices matching every given condition."""

    groups: list[Annotated[str, Field(max_length=100)]] | None = None
    agent_version: Annotated[str, Field(max_length=64)] | None = None
    agent_version_not: Annotated[str, Field(max_length=64)] | None = None
    online: bool | None = None
    id_prefix: Annotated[str, Field(max_length=64)] | None = None


class Targets(_Strict):
    """Which devices: the union of the ids, the groups, the filter and the saved query."""

    devices: Annotated[
        list[Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]], Field(max_length=MAX_TARGETS)
    ] = []
    groups: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=100)] = []
    filter: DeviceFilter | None = None
    query: Annotated[str, Field(max_length=100)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Targets:
        if not (self.devices or self.groups or self.filter or self.query):
            raise ValueError("give devices, groups, a filter or a saved query")
        return self


class RateRollout(_Strict):
    type: Literal["rate"] = "rate"
    max_per_minute: Annotated[int, Field(ge=1, le=10_000)]


class ExponentialRollout(_Strict):
    type: Literal["exponential"]
    base_per_minute: Annotated[int, Field(ge=1, le=10_000)]
    factor: Annotated[float, Field(gt=1.0, le=10.0)]
    increase_after: Annotated[int, Field(ge=1, le=10_000)] | None = None
    max_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 1000


RolloutSpec = Annotated[RateRollout | ExponentialRollout, Field(discriminator="type")]


class AbortSpec(_Strict):
    failure_type: Literal["FAILED", "REJECTED", "TIMED_OUT", "ANY"] = "ANY"
    threshold_pct: Annotated[float, Field(ge=0, le=100)]
    min_executed: Annotated[int, Field(ge=1, le=MAX_TARGETS)] = 1


class JobCreate(_Strict):
    """A new job, as the API receives it."""

    id: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    description: Annotated[str, Field(max_length=2000)] = ""
    operation: Operation
    parameters: dict[str, Any] = {}
    targets: Targets
    rollout: RolloutSpec | None = None
    abort: Annotated[list[AbortSpec], Field(max_length=10)] = []
    timeout_s: Annotated[int, Field(ge=10, le=86400)] = 600
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    maintenance_window: bool = Field(
        default=False,
        description="release an execution only while its device is awake and not in a call",
    )


def rollout_policy(stored: dict[str, Any] | None) -> Rollout:
    """The planner's policy for a stored rollout section."""
    if not stored:
        return None
    if stored.get("type") == "exponential":
        base = int(stored["base_per_minute"])
        return ExponentialPolicy(
            base_per_minute=base,
            factor=float(stored["factor"]),
            increase_after=int(stored.get("increase_after") or base),
            max_per_minute=int(stored.get("max_per_minute", 1000)),
        )
    return RatePolicy(max_per_minute=int(stored["max_per_minute"]))


def abort_criteria(stored: list[dict[str, Any]]) -> tuple[AbortCriterion, ...]:
    """The planner's abort criteria for a stored abort section."""
    return tuple(
        AbortCriterion(
            failure_type=c.get("failure_type", "ANY"),
            threshold_pct=float(c["threshold_pct"]),
            min_executed=int(c.get("min_executed", 1)),
        )
        for c in stored
    )
