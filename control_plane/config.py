"""The control plane's one typed configuration object."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEV_SECRET = "development-only-secret-change-me"


class Settings(BaseSettings):
    """Settings from the environment (prefix ``DIFRONTE_``) or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="DIFRONTE_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///var/difronte.db"
    secret_key: str = _DEV_SECRET
    public_url: str = "http://127.0.0.1:8000"

    # The control plane's own broker account and the broker it drives.
    mqtt_enabled: bool = True
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str = "difronte-cp"
    mqtt_password: str = _DEV_SECRET
    mqtt_tls_ca: Path | None = None
    mqtt_keepalive: int = Field(default=30, ge=5, le=3600)
    mqtt_backoff_cap_s: float = Field(default=30.0, gt=0, le=3600)
    mqtt_instance: str = "cp-1"
    # Several ingest workers share the device stream through this shared-subscription group.
    ingest_share_group: str = "difronte-ingest"
    ingest_shared: bool = True
    # The ingest connection keeps its session at the broker (MQTT clean session off): while the
    # control plane is away (a restart, an upgrade) the broker holds the devices' QoS 1 messages
    # for it, a help-button event included, instead of dropping what nobody is subscribed to.
    ingest_persistent_session: bool = True

    # Mosquitto files the control plane writes when devices are added or revoked.
    broker_password_file: Path | None = None
    broker_acl_file: Path | None = None
    broker_pid_file: Path | None = None

    # Keep this many rejected messages per device for the fleet manager to look at.
    ingest_errors_kept: int = 50

    # What enrolled devices are told: where the broker is for them, and the CA to pin.
    device_mqtt_host: str | None = None  # default: mqtt_host
    device_mqtt_port: int | None = None  # default: mqtt_port
    device_mqtt_tls_ca: Path | None = None  # PEM file handed to devices at enrollment
    enrollment_token_ttl_minutes: int = Field(default=24 * 60, ge=1, le=60 * 24 * 30)

    # Telemetry series: the embedded SQL table, or InfluxDB line protocol (InfluxDB 2/3,
    # VictoriaMetrics) through influxdb-client.
    telemetry_sink: Literal["sql", "influx"] = "sql"
    influx_url: str = "http://127.0.0.1:8086"
    influx_token: str = ""
    influx_org: str = "difronte"
    influx_bucket: str = "telemetry"
    influx_retries: int = Field(default=3, ge=0, le=10)

    # Alert policy.
    offline_after_s: int = Field(default=15 * 60, ge=10)
    disk_full_pct: float = Field(default=90.0, gt=0, le=100)
    rtc_drift_max_s: float = Field(default=120.0, gt=0)
    alert_check_interval_s: float = Field(default=30.0, gt=0)

    # Alert notifications: e-mail over SMTP and/or a signed webhook.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "difronte@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    alert_email_to: list[str] = Field(default_factory=list)
    alert_webhook_url: str | None = None
    alert_webhook_secret: str = ""

    # Calls and care: TURN (coturn with use-auth-secret) and STUN for browsers and devices,
    # signalling timeouts, escalation notifications.
    turn_urls: list[str] = Field(default_factory=list)  # e.g. ["turn:turn.example.org:3478"]
    turn_secret: str = ""  # coturn's static-auth-secret
    turn_ttl_s: int = Field(default=6 * 3600, ge=60, le=7 * 86400)
    stun_urls: list[str] = Field(default_factory=list)
    call_answer_timeout_s: float = Field(default=45.0, gt=0)  # ringing with nobody answering
    call_setup_timeout_s: float = Field(default=20.0, gt=0)  # no word from the device at all
    call_silence_timeout_s: float = Field(default=20.0, gt=0)  # device quiet during a call
    care_email_to: list[str] = Field(default_factory=list)  # coordinators' shared mailbox
    care_webhook_url: str | None = None
    care_webhook_secret: str = ""
    care_urgent_renotify_s: float = Field(default=300.0, gt=0)  # until someone takes it

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.environment == "production":
            for name in ("secret_key", "mqtt_password"):
                if getattr(self, name) == _DEV_SECRET:
                    raise ValueError(f"{name}: set a real secret (DIFRONTE_{name.upper()})")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
