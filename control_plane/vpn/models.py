"""The VPN's table: one peer per enrolled device, with its address and keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class VpnPeer(Base):
    """A device's place on the hub: its tunnel address and the public key(s) the hub accepts.

    The row outlives a revocation (the device's address is never handed to another device,
    and the old key stays known so the hub removes it); the hub's peer goes with the device.
    """

    __tablename__ = "vpn_peers"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    public_key: Mapped[str] = mapped_column(String(44), unique=True)
    # During a rotation: the new key, on the hub as a second peer until the device switches.
    pending_public_key: Mapped[str | None] = mapped_column(String(44), unique=True, nullable=True)
    previous_public_key: Mapped[str | None] = mapped_column(String(44), nullable=True)
    address: Mapped[str] = mapped_column(String(45), unique=True)
    address6: Mapped[str | None] = mapped_column(String(45), unique=True, nullable=True)
    enrolled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    key_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rotation_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    # What the hub itself last said about this peer (when the control plane drives the hub).
    hub_handshake_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    hub_endpoint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hub_rx_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    hub_tx_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    hub_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
