"""The edge daemon's typed configuration, loaded once from a TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from .calls.config import CallConfig

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


class WakeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Waking for appointments (see ``edge.wake``); a schedule's own values win once it arrives."""

    enabled: bool = True
    tick_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0  # re-plan and power policy
    lead_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 120
    idle_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 600.0
    grace_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 120.0  # after an alarm wake
    policy: Literal["poweroff", "suspend", "stay"] = "poweroff"
    rtc_backend: Literal["sysfs", "rtcwake"] = "sysfs"
    # None: ask the kernel (rtc_cmos's "alarms up to one day") and /etc/adjtime.
    rtc_max_ahead_s: Annotated[int, msgspec.Meta(ge=3600)] | None = None
    rtc_local_time: bool | None = None
    # Tests and the demo only: the device's clock runs this many times faster than real time
    # (from the moment the daemon starts), so an appointment window passes in seconds.
    clock_speed: Annotated[float, msgspec.Meta(gt=0, le=100_000)] = 1.0


class ButtonConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The big help button and its LED on GPIO pins (see ``edge.button``)."""

    enabled: bool = False
    pin: int | str = 17
    led_pin: int | str = 27
    hold_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 1.5
    mock: bool = False  # gpiozero's MockFactory: tests and the demo


class TelemetryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    batch_max: Annotated[int, msgspec.Meta(ge=1, le=500)] = 10
    outbox_max_telemetry: Annotated[int, msgspec.Meta(ge=10)] = 50_000


class VpnConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The WireGuard tunnel to the hub (see ``edge.vpn``); the key lives in state_dir/vpn."""

    enabled: bool = True
    interface: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_=+.-]{1,15}\Z")] = "difronte0"
    # auto: kernel WireGuard when the kernel has it, else wireguard-go through its UAPI socket.
    backend: Literal["auto", "kernel", "userspace"] = "auto"
    wireguard_go: str = "wireguard-go"
    uapi_dir: str = "/var/run/wireguard"
    listen_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # 0: any free port
    refresh_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0  # handshake/counter reads


class JobsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Remote jobs (see ``edge.jobs``): downloads, the agent's install layout, restarts."""

    ca_file: str | None = None  # CA trusted for HTTPS downloads and uploads; None: the system's
    agent_root: str = "/opt/difronte"  # venvs/<version>, and current -> venvs/<version>
    health_deadline_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 300.0  # new agent
    restart_command: list[str] = msgspec.field(
        default_factory=lambda: ["systemctl", "restart", "difronte-edge.service"]
    )
    # The update guard must outlive the agent it restarts: run it outside the agent's unit.
    guard_launcher: list[str] = msgspec.field(
        default_factory=lambda: ["systemd-run", "--quiet", "--collect", "--no-block"]
    )
    pip_args: list[str] = []  # e.g. ["--no-index", "--find-links", "/var/cache/difronte"]
    max_download_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 200 * 1024 * 1024
    journal_units: list[str] = msgspec.field(default_factory=lambda: ["difronte-edge.service"])
    log_files: list[str] = []  # daemon log files collect-logs adds to the journal


class EdgeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Everything the daemon needs, passed into constructors (never read from globals)."""

    device_id: _ID
    control_plane_url: str = ""
    timezone: str = "Europe/Rome"
    mqtt: MqttConfig
    paths: PathsConfig = msgspec.field(default_factory=PathsConfig)
    power: PowerConfig = msgspec.field(default_factory=PowerConfig)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)
    wake: WakeConfig = msgspec.field(default_factory=WakeConfig)
    button: ButtonConfig = msgspec.field(default_factory=ButtonConfig)
    call: CallConfig = msgspec.field(default_factory=CallConfig)
    vpn: VpnConfig = msgspec.field(default_factory=VpnConfig)
    jobs: JobsConfig = msgspec.field(default_factory=JobsConfig)

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
