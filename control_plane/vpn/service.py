"""VPN services: enrollment, key rotation, the desired ``vpn`` section, alerts, inventory.

All functions work inside the caller's transaction and never publish or touch the hub
themselves: callers mark what changed (see ``runtime``) and the hub and twins follow after
the commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from edge import protocol as p

from .. import alerts, audit
from ..models import Device
from ..twin import set_section
from .addresses import PoolExhausted, allocate, paired_ipv6
from .hub import DesiredPeer
from .models import VpnPeer
from .settings import VpnSettings
from .uapi import HubPeerState

log = logging.getLogger(__name__)

_WG_KEY_RE = re.compile(p.WG_KEY_PATTERN)
_GROUP_BAD = re.compile(r"[^A-Za-z0-9_]+")

KEY_ALERT = "vpn-key:{}"
HANDSHAKE_ALERT = "vpn-handshake:{}"
POOL_ALERT = "vpn-pool"


def is_valid_key(text: str | None) -> bool:
    """True for a well-formed WireGuard public key (the contract's pattern)."""
    return bool(text) and _WG_KEY_RE.search(text or "") is not None


def _actor(device: Device) -> str:
    return f"device:{device.id}"


def _epoch(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.UTC) if value else None


# -- the desired section -----------------------------------------------------------------------


def desired_section(settings: VpnSettings, peer: VpnPeer) -> dict[str, Any]:
    """The ``vpn`` section of a device's desired twin."""
    assert settings.hub_public_key and settings.hub_endpoint
    accepted = [peer.public_key]
    if peer.pending_public_key:
        accepted.append(peer.pending_public_key)
    section: dict[str, Any] = {
        "address": f"{peer.address}/32",
        "hub_public_key": settings.hub_public_key,
        "hub_endpoint": settings.hub_endpoint,
        "allowed_ips": settings.device_allowed_ips(),
        "keepalive_s": settings.keepalive_s,
        "accepted_keys": accepted,
    }
    if peer.address6:
        section["address6"] = f"{peer.address6}/128"
    return section


def sync_desired(session: Session, settings: VpnSettings, device: Device, peer: VpnPeer) -> bool:
    """Put the device's ``vpn`` section in its desired twin if it differs; True if it did."""
    section = desired_section(settings, peer)
    if (device.desired or {}).get("vpn") == section:
        return False
    set_section(session, device, "vpn", section)
    return True


# -- reports from devices --------------------------------------------------------------------


def _key_owner(session: Session, key: str, device_id: str) -> str | None:
    """Another device holding ``key`` (current, pending or previous), if any."""
    return session.execute(
        select(VpnPeer.device_id)
        .where(
            VpnPeer.device_id != device_id,
            or_(
                VpnPeer.public_key == key,
                VpnPeer.pending_public_key == key,
                VpnPeer.previous_public_key == key,
            ),
        )
        .limit(1)
    ).scalar_one_or_none()


def _key_alert(session: Session, device: Device, message: str) -> None:
    alerts.raise_alert(
        session,
        key=KEY_ALERT.format(device.id),
        kind="vpn",
        severity="warning",
        message=message,
        device_id=device.id,
    )


def enroll(
    session: Session, settings: VpnSettings, device: Device, key: str, now: dt.datetime
) -> VpnPeer:
    """Give ``device`` a tunnel address for ``key`` (raises PoolExhausted)."""
    taken = session.execute(select(VpnPeer.address)).scalars().all()
    address = allocate(settings.pool, taken, reserved={settings.hub_ip})
    address6 = paired_ipv6(address, settings.pool, settings.pool6) if settings.pool6 else None
    peer = VpnPeer(
        device_id=device.id,
        public_key=key,
        address=str(address),
        address6=str(address6) if address6 else None,
        enrolled_at=now,
        key_changed_at=now,
        hub_rx_bytes=0,
        hub_tx_bytes=0,
    )
    session.add(peer)
    session.flush()
    audit.record(
        session,
        action="vpn.enrolled",
        object_type="device",
        object_id=device.id,
        actor=_actor(device),
        data={"address": peer.address, "address6": peer.address6, "public_key": key},
    )
    log.info("VPN: %s enrolled at %s", device.id, peer.address)
    return peer


def complete_rotation(session: Session, peer: VpnPeer, now: dt.datetime, *, why: str) -> None:
    """The device uses its new key: the hub keeps only that one from now on."""
    assert peer.pending_public_key is not None
    old = peer.public_key
    peer.previous_public_key = old
    peer.public_key = peer.pending_public_key
    peer.pending_public_key = None
    peer.rotation_started_at = None
    peer.key_changed_at = now
    session.flush()
    audit.record(
        session,
        action="vpn.key_rotated",
        object_type="device",
        object_id=peer.device_id,
        actor="system",
        data={"old": old, "new": peer.public_key, "seen": why},
    )


def handle_report(
    session: Session,
    settings: VpnSettings,
    device: Device,
    vpn: p.VpnReported,
    now: dt.datetime,
) -> bool:
    """Act on a device's reported key(s); True when the hub or its twin must follow."""
    if not settings.enabled:
        return False
    key = vpn.public_key
    if not is_valid_key(key):
        _key_alert(session, device, f"the device reported an invalid WireGuard key: {key[:64]!r}")
        return False
    pending = vpn.pending_public_key
    if pending is not None and (not is_valid_key(pending) or pending == key):
        log.warning("VPN: %s reported an unusable pending key %r; ignored", device.id, pending)
        pending = None
    owner = _key_owner(session, key, device.id)
    if owner is not None:
        # Most likely a disk image copied from another machine, key included.
        _key_alert(
            session,
            device,
            f"the device reports the WireGuard key of {owner} (a cloned disk?): delete its "
            "vpn/private.key in the state directory and restart the agent",
        )
        return False
    peer = session.get(VpnPeer, device.id)
    if peer is None:
        try:
            peer = enroll(session, settings, device, key, now)
        except PoolExhausted as exc:
            alerts.raise_alert(
                session, key=POOL_ALERT, kind="vpn", severity="high", message=str(exc)
            )
            return False
    elif key == peer.pending_public_key:
        complete_rotation(session, peer, now, why="device report")
    elif key == peer.previous_public_key:
        # A report from before a rotation the hub already completed: a device never goes
        # back to an old key (the new one is on its disk before it is used).
        log.info("VPN: stale report from %s with its previous key; ignored", device.id)
        return False
    elif key != peer.public_key:
        # A new key without a rotation: the device lost its old one (new disk, re-imaged).
        # Its MQTT login proves who it is, as at enrollment, so the new key replaces the old.
        audit.record(
            session,
            action="vpn.key_replaced",
            object_type="device",
            object_id=device.id,
            actor=_actor(device),
            data={"old": peer.public_key, "new": key},
        )
        peer.previous_public_key = peer.public_key
        peer.public_key = key
        peer.pending_public_key = None
        peer.rotation_started_at = None
        peer.key_changed_at = now
    if pending != peer.pending_public_key and key == peer.public_key:
        if pending is not None and _key_owner(session, pending, device.id) is not None:
            log.warning("VPN: %s's pending key belongs to another device; ignored", device.id)
        else:
            peer.pending_public_key = pending
            peer.rotation_started_at = now if pending else None
    session.flush()
    alerts.resolve(session, KEY_ALERT.format(device.id))
    sync_desired(session, settings, device, peer)
    return True


def enroll_reported(session: Session, settings: VpnSettings, now: dt.datetime) -> list[str]:
    """Catch up on devices whose reported key was not handled (a lost race, a feature enabled
    later): returns the ids whose twin changed."""
    if not settings.enabled:
        return []
    changed: list[str] = []
    rows = session.execute(
        select(Device, VpnPeer)
        .outerjoin(VpnPeer, VpnPeer.device_id == Device.id)
        .where(Device.revoked_at.is_(None), Device.reported.is_not(None))
    ).all()
    for device, peer in rows:
        reported_vpn = (device.reported or {}).get("vpn")
        if peer is not None:
            if sync_desired(session, settings, device, peer):
                changed.append(device.id)
            continue
        if not reported_vpn or not reported_vpn.get("public_key"):
            continue
        try:
            vpn = p.VpnReported(
                public_key=str(reported_vpn["public_key"]),
                pending_public_key=reported_vpn.get("pending_public_key"),
            )
        except (p.ProtocolError, TypeError):
            continue
        if handle_report(session, settings, device, vpn, now):
            changed.append(device.id)
    return changed


# -- the hub ---------------------------------------------------------------------------------


def hub_peers(session: Session) -> list[DesiredPeer]:
    """Every peer the hub should have: enrolled devices that are not revoked."""
    rows = session.execute(
        select(VpnPeer)
        .join(Device, Device.id == VpnPeer.device_id)
        .where(Device.revoked_at.is_(None))
        .order_by(VpnPeer.address)
    ).scalars()
    peers: list[DesiredPeer] = []
    for peer in rows:
        nets = [f"{peer.address}/32"]
        if peer.address6:
            nets.append(f"{peer.address6}/128")
        peers.append(DesiredPeer(peer.device_id, peer.public_key, tuple(nets)))
        if peer.pending_public_key:
            peers.append(
                DesiredPeer(peer.device_id, peer.pending_public_key, (), "(new key, rotating)")
            )
    return peers


def known_keys(session: Session) -> set[str]:
    """Every key the control plane ever gave a place on the hub (revoked devices included)."""
    keys: set[str] = set()
    for row in session.execute(
        select(VpnPeer.public_key, VpnPeer.pending_public_key, VpnPeer.previous_public_key)
    ):
        keys.update(k for k in row if k)
    return keys


def record_hub_state(
    session: Session, state: dict[str, HubPeerState], now: dt.datetime
) -> list[str]:
    """Store what the hub says about each peer; complete rotations whose new key has shaken
    hands with the hub. Returns the ids of devices whose rotation completed."""
    completed: list[str] = []
    for peer in session.execute(select(VpnPeer)).scalars():
        pending = state.get(peer.pending_public_key) if peer.pending_public_key else None
        shook = _epoch(pending.latest_handshake) if pending is not None else None
        started = peer.rotation_started_at
        if shook is not None and (started is None or shook >= started):
            complete_rotation(session, peer, now, why="hub handshake")
            completed.append(peer.device_id)
        current = state.get(peer.public_key)
        if current is None:
            continue
        peer.hub_handshake_at = _epoch(current.latest_handshake)
        peer.hub_endpoint = current.endpoint[:64] if current.endpoint else None
        peer.hub_rx_bytes = current.rx_bytes
        peer.hub_tx_bytes = current.tx_bytes
        peer.hub_seen_at = now
    session.flush()
    return completed


def pending_rotations(session: Session) -> int:
    """How many devices are in the middle of a key rotation."""
    return session.execute(
        select(func.count()).select_from(VpnPeer).where(VpnPeer.pending_public_key.is_not(None))
    ).scalar_one()


# -- handshake alerts ------------------------------------------------------------------------


def last_handshake(device: Device, peer: VpnPeer) -> dt.datetime | None:
    """The newest handshake anyone saw: the hub, the device's telemetry or its report."""
    seen: list[dt.datetime] = []
    if peer.hub_handshake_at is not None:
        seen.append(peer.hub_handshake_at)
    telemetry = device.last_telemetry or {}
    age = (telemetry.get("metrics") or {}).get("vpn.handshake_age_s")
    if age is not None and telemetry.get("ts"):
        at = _epoch(float(telemetry["ts"]) - float(age))
        if at is not None:
            seen.append(at)
    reported = ((device.reported or {}).get("vpn") or {}).get("latest_handshake")
    if reported:
        at = _epoch(float(reported))
        if at is not None:
            seen.append(at)
    return max(seen) if seen else None


@dataclass(frozen=True, slots=True)
class HandshakeVerdict:
    """What the handshake rule decided for one device."""

    device_id: str
    stale: bool | None  # None: cannot tell (offline, just enrolled)
    last: dt.datetime | None


def handshake_verdict(
    device: Device, peer: VpnPeer, now: dt.datetime, policy_s: float
) -> HandshakeVerdict:
    """Is the tunnel of an online device stale? (pure: reads only the rows given)."""
    last = last_handshake(device, peer)
    grace = dt.timedelta(seconds=policy_s)
    if last is not None and now - last <= grace:
        return HandshakeVerdict(device.id, False, last)
    # A device that just came online, enrolled or changed key gets the policy time to shake
    # hands; one that is off (powered down between appointments) is not judged at all.
    online_since = device.status_at or device.last_seen
    if (
        not device.online
        or online_since is None
        or now - online_since < grace
        or now - peer.key_changed_at < grace
    ):
        return HandshakeVerdict(device.id, None, last)
    return HandshakeVerdict(device.id, True, last)


def check_handshakes(session: Session, settings: VpnSettings, now: dt.datetime) -> list[str]:
    """Raise or resolve the no-handshake alert of every enrolled device; returns the stale ids."""
    stale: list[str] = []
    rows = session.execute(
        select(Device, VpnPeer).join(VpnPeer, VpnPeer.device_id == Device.id)
    ).all()
    for device, peer in rows:
        key = HANDSHAKE_ALERT.format(device.id)
        if device.revoked_at is not None:
            alerts.resolve(session, key)
            continue
        verdict = handshake_verdict(device, peer, now, settings.handshake_alert_s)
        if verdict.stale is False:
            alerts.resolve(session, key)
        elif verdict.stale:
            stale.append(device.id)
            when = verdict.last.isoformat(timespec="seconds") if verdict.last else "never"
            alerts.raise_alert(
                session,
                key=key,
                kind="vpn",
                severity="warning",
                message=(
                    f"VPN tunnel of {device.id} has had no handshake for more than "
                    f"{int(settings.handshake_alert_s)} s (last: {when}); technicians cannot "
                    "reach it"
                ),
                device_id=device.id,
                data={"last_handshake": verdict.last.isoformat() if verdict.last else None},
            )
    session.flush()
    return stale


# -- inventory -------------------------------------------------------------------------------


def ansible_group(name: str) -> str:
    """An Ansible-safe group name for a fleet group ("Milano Nord" -> "milano_nord")."""
    group = _GROUP_BAD.sub("_", name.strip().lower()).strip("_")
    if not group:
        return "ungrouped"
    return f"g_{group}" if group[0].isdigit() else group


def inventory(session: Session, *, online_only: bool = False) -> dict[str, Any]:
    """Ansible's dynamic-inventory JSON: enrolled, non-revoked devices by group."""
    query = (
        select(Device, VpnPeer)
        .join(VpnPeer, VpnPeer.device_id == Device.id)
        .where(Device.revoked_at.is_(None))
        .order_by(Device.id)
    )
    if online_only:
        query = query.where(Device.online.is_(True))
    groups: dict[str, list[str]] = {}
    hostvars: dict[str, dict[str, Any]] = {}
    for device, peer in session.execute(query).all():
        group = ansible_group(device.group)
        groups.setdefault(group, []).append(device.id)
        hostvars[device.id] = {
            "ansible_host": peer.address,
            "difronte_device_id": device.id,
            "difronte_name": device.name,
            "difronte_group": device.group,
            "difronte_online": device.online,
            "difronte_vpn_address6": peer.address6,
            "difronte_vpn_public_key": peer.public_key,
        }
    body: dict[str, Any] = {"_meta": {"hostvars": hostvars}}
    body["all"] = {"children": sorted(groups)}
    for group, hosts in sorted(groups.items()):
        body[group] = {"hosts": hosts}
    return body
