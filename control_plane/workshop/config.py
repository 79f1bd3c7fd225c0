"""Settings of the workshop, from ``DIFRONTE_WORKSHOP_*``: who issues its documents, and how."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .documents import Organization


class WorkshopConfig(BaseSettings):
    """The issuing organisation, the tag prefix, deployment and linking timings."""

    model_config = SettingsConfigDict(env_prefix="DIFRONTE_WORKSHOP_", extra="ignore")

    # The cooperative named on certificates, labels and impact reports.
    org_name: str = Field(default="ΔiFronte", min_length=1, max_length=200)
    org_address: str = ""
    org_tax_code: str = ""
    org_contact: str = ""
    # The workshop's calendar: intake years, "today" for hours, impact periods, PDF times.
    timezone: str = "Europe/Rome"
    tag_prefix: str = "DF"
    # A deployed PC enrolls itself on first boot at the beneficiary's home; the token must
    # outlive the trip there (the fleet refuses tokens older than this).
    enrollment_ttl_days: int = Field(default=14, ge=1, le=30)
    # The fleet group deployed PCs join.
    device_group: str = Field(default="homes", max_length=100)
    # How often deployed machines whose PC has enrolled are linked to their beneficiary
    # (also done at once when the PC first comes online).
    link_interval_s: float = Field(default=60.0, gt=0)
    # A diagnostics report bigger than this is refused before it is parsed.
    max_report_bytes: int = Field(default=2_000_000, ge=10_000)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("tag_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2,4}", value):
            raise ValueError("expected 2-4 capital letters, like DF")
        return value

    @property
    def organization(self) -> Organization:
        """The organisation printed on the workshop's PDFs."""
        return Organization(
            name=self.org_name,
            address=self.org_address,
            tax_code=self.org_tax_code,
            contact=self.org_contact,
            timezone=self.timezone,
        )

    @property
    def tz(self) -> ZoneInfo:
        """The workshop's time zone."""
        return ZoneInfo(self.timezone)
