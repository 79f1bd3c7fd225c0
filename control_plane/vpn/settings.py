"""VPN settings: the hub's key and endpoint, the address pool, how the hub is driven.

Read from the environment with the prefix ``DIFRONTE_VPN_`` (or the ``.env`` file), e.g.
``DIFRONTE_VPN_HUB_PUBLIC_KEY``, ``DIFRONTE_VPN_HUB_ENDPOINT=vpn.example.org:51820``,
``DIFRONTE_VPN_POOL=10.8.0.0/16``. Without a hub key and endpoint the feature stays idle: devices
still report their keys, nobody gets an address.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.protocol import WG_KEY_PATTERN

_WG_KEY_RE = re.compile(WG_KEY_PATTERN)
_ENDPOINT_RE = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})\Z"
)


class VpnSettings(BaseSettings):
    """Everything the VPN feature needs to know about the hub and the address plan."""

    model_config = SettingsConfigDict(env_prefix="DIFRONTE_VPN_", env_file=".env", extra="ignore")

    hub_public_key: str | None = None
    hub_endpoint: str | None = None  # host:port the devices dial
    # Device addresses come from here; the hub takes hub_address (default: the first host).
    pool: ipaddress.IPv4Network = ipaddress.IPv4Network("10.8.0.0/16")
    pool6: ipaddress.IPv6Network | None = None
    hub_address: ipaddress.IPv4Address | None = None
    hub_address6: ipaddress.IPv6Address | None = None
    # What a device routes into the tunnel. Default: the hub only, so a device can never reach
    # another device (a technician subnet routed by the hub can be added here).
    allowed_ips: list[str] | None = None
    keepalive_s: int = Field(default=25, ge=0, le=65535)

    # Driving the hub's interface when this control plane runs on the hub.
    hub_apply: Literal["off", "auto", "kernel", "userspace"] = "off"
    hub_interface: str = Field(default="wg-difronte", pattern=r"^[A-Za-z0-9_=+.-]{1,15}$")
    uapi_dir: Path = Path("/var/run/wireguard")
    hub_sync_s: float = Field(default=30.0, gt=0)
    hub_listen_port: int = Field(default=51820, ge=1, le=65535)
    hub_private_key_file: Path = Path("/etc/wireguard/difronte-hub.key")

    # A device online for this long without a handshake raises an alert.
    handshake_alert_s: float = Field(default=900.0, gt=0)
    alerts_every_s: float = Field(default=60.0, gt=0)

    @field_validator("hub_public_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and not _WG_KEY_RE.search(value):
            raise ValueError("hub_public_key: not a WireGuard public key (44 base64 characters)")
        return value

    @field_validator("hub_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _ENDPOINT_RE.match(value)
        if match is None or not 1 <= int(match.group(3)) <= 65535:
            raise ValueError(f"hub_endpoint: must be host:port (IPv6 in brackets), got {value!r}")
        return value

    @field_validator("allowed_ips")
    @classmethod
    def _allowed(cls, value: list[str] | None) -> list[str] | None:
        for i, net in enumerate(value or ()):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"allowed_ips[{i}]: {exc}") from None
        return value

    @model_validator(mode="after")
    def _hub_in_pool(self) -> VpnSettings:
        if self.pool.num_addresses < 4:
            raise ValueError(f"pool: {self.pool} is too small for a hub and devices")
        if self.hub_address is not None and self.hub_address not in self.pool:
            raise ValueError(f"hub_address: {self.hub_address} is not in pool {self.pool}")
        if self.pool6 is not None and self.hub_address6 is not None:
            if self.hub_address6 not in self.pool6:
                raise ValueError(f"hub_address6: {self.hub_address6} is not in pool6 {self.pool6}")
        return self

    @property
    def enabled(self) -> bool:
        """True when devices can be given a tunnel (the hub's key and endpoint are known)."""
        return bool(self.hub_public_key and self.hub_endpoint)

    @property
    def hub_ip(self) -> ipaddress.IPv4Address:
        """The hub's own tunnel address."""
        return self.hub_address or self.pool.network_address + 1

    @property
    def hub_ip6(self) -> ipaddress.IPv6Address | None:
        """The hub's IPv6 tunnel address, when there is an IPv6 pool."""
        if self.pool6 is None:
            return None
        return self.hub_address6 or self.pool6.network_address + 1

    def device_allowed_ips(self) -> list[str]:
        """What a device routes through the tunnel."""
        if self.allowed_ips is not None:
            return list(self.allowed_ips)
        nets = [f"{self.hub_ip}/32"]
        if self.hub_ip6 is not None:
            nets.append(f"{self.hub_ip6}/128")
        return nets
