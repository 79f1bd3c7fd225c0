"""The marketplace's settings: media directory, photo limits, outgoing mail."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MarketSettings(BaseSettings):
    """Settings from the environment (prefix ``DIFRONTE_MARKET_``) or a ``.env`` file."""

    model_config = SettingsConfigDict(
        env_prefix="DIFRONTE_MARKET_", env_file=".env", extra="ignore"
    )

    media_dir: Path = Path("var/market-media")
    max_photo_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_photos: int = Field(default=6, ge=0, le=20)

    # Outgoing mail. Without a host, e-mails are logged instead of sent (development).
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "Factotum <factotum@difronte.invalid>"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = Field(default=10.0, gt=0)
    mail_interval: float = Field(default=15.0, gt=0)
    mail_max_attempts: int = Field(default=6, ge=1)

    # Unattached uploads older than this are deleted (someone gave up on a form).
    orphan_media_hours: float = Field(default=24.0, gt=0)
