"""The edge daemon's typed configuration, loaded once from a TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

_ID = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]


class MqttConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8883
    password: str
    tls_ca: str | None = None  # pinned CA certificate; None = plain TCP (tests, demo)
    keepalive: Annotated[int, msgspec.Meta(ge=2, le=3600)] = 30
    backoff_cap_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0


class PathsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    state_dir: str = "/var/lib/difronte"
    rtc_dir: str = "/sys/class/rtc/rtc0"
    fake_rtc: bool = False  # use a fake kernel RTC in rtc_dir (tests, demo)


class PowerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    backend: Literal["systemd", "record"] = "systemd"
    record_file: str | None = None  # where "record" appends the actions it would take


class TelemetryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    batch_max: Annotated[int, msgspec.Meta(ge=1, le=500)] = 10
    outbox_max_telemetry: Annotated[int, msgspec.Meta(ge=10)] = 50_000


class EdgeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Everything the daemon needs, passed into constructors (never read from globals)."""

    device_id: _ID
    control_plane_url: str = ""
    timezone: str = "Europe/Rome"
    mqtt: MqttConfig
    paths: PathsConfig = msgspec.field(default_factory=PathsConfig)
    power: PowerConfig = msgspec.field(default_factory=PowerConfig)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)

    @property
    def state_dir(self) -> Path:
        return Path(self.paths.state_dir)


class ConfigError(ValueError):
    """The configuration file is missing or wrong; the message names the field."""


def load_config(path: str | Path) -> EdgeConfig:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return msgspec.toml.decode(data, type=EdgeConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def dump_config(config: EdgeConfig) -> bytes:
    """TOML text for ``config`` (used by enrollment and set-config)."""
    return msgspec.toml.encode(config)
