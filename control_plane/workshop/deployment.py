"""Deployment: a machine given to a beneficiary becomes a fleet device.

The PC is not registered by hand: deploying it issues a single-use enrollment token (the
fleet's own, :func:`control_plane.fleet.enrollment.create_token`) for the device id made
from its asset tag, and the workshop hands over a ``difronte-enroll.txt`` for the image's
first-boot step. When the PC enrolls and comes online it is linked to its beneficiary.
If the device was already registered by hand, it is linked at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge.protocol import ProtocolError, validate_device_id

from .. import audit
from ..config import Settings
from ..fleet.enrollment import create_token
from ..fleet.models import EnrollmentToken
from ..models import Beneficiary, Device, User
from .config import WorkshopConfig
from .errors import WorkshopError
from .lifecycle import MachineState
from .models import Machine

log = logging.getLogger(__name__)

AUDIT_MACHINE = "workshop_machine"


@dataclass(frozen=True)
class Enrollment:
    """How a deployed PC joins the fleet on its first boot; the token is shown only once."""

    device_id: str
    token: str
    expires_at: dt.datetime
    file_text: str  # the difronte-enroll.txt the image's first-boot step reads


def device_id_for(machine: Machine) -> str:
    """The fleet device id of a deployed machine: its asset tag in lower case."""
    # The asset tag, lower-cased, is a valid device id: the fleet and the workshop then
    # name one PC by one name, readable on the label stuck to it.
    device_id = machine.asset_tag.lower()
    try:
        return validate_device_id(device_id)
    except ProtocolError as exc:  # a custom prefix could in theory break the pattern
        raise WorkshopError(
            422, "asset_tag", f"{machine.asset_tag} cannot be a device id: {exc}"
        ) from exc


def issue_enrollment(
    session: Session,
    settings: Settings,
    config: WorkshopConfig,
    machine: Machine,
    beneficiary: Beneficiary,
    user: User,
) -> Enrollment:
    """A single-use fleet enrollment token for the deployed ``machine``'s PC."""
    assert machine.device_id is not None
    try:
        token, secret = create_token(
            session,
            settings,
            user=user,
            device_id=machine.device_id,
            name=f"{beneficiary.name} ({machine.asset_tag})"[:200],
            group=config.device_group,
            ttl_minutes=config.enrollment_ttl_days * 24 * 60,
        )
    except ValueError as exc:
        raise WorkshopError(409, "device_id", str(exc).split(": ", 1)[-1]) from exc
    file_text = f"url={settings.public_url.rstrip('/')}\ntoken={secret}\n"
    return Enrollment(
        device_id=machine.device_id, token=secret, expires_at=token.expires_at, file_text=file_text
    )


def reissue_enrollment(
    session: Session,
    settings: Settings,
    config: WorkshopConfig,
    *,
    machine: Machine,
    user: User,
) -> Enrollment:
    """A fresh enrollment token for a deployed PC that has not enrolled (file lost, expired)."""
    if machine.state != MachineState.DEPLOYED.value or machine.device_id is None:
        raise WorkshopError(
            409,
            "state",
            "only a deployed machine gets an enrollment token",
            "solo una macchina consegnata riceve un codice di registrazione",
        )
    if session.get(Device, machine.device_id) is not None:
        raise WorkshopError(
            409,
            "device_id",
            f"{machine.device_id} has already enrolled in the fleet",
            f"{machine.device_id} è già registrato nella flotta",
        )
    beneficiary = (
        session.get(Beneficiary, machine.beneficiary_id) if machine.beneficiary_id else None
    )
    if beneficiary is None:
        raise WorkshopError(
            409,
            "beneficiary_id",
            "the beneficiary of this machine no longer exists",
            "il beneficiario di questa macchina non esiste più",
        )
    # The old token (possibly still valid, on a lost USB key) must stop working.
    for old in session.execute(
        select(EnrollmentToken).where(
            EnrollmentToken.device_id == machine.device_id, EnrollmentToken.used_at.is_(None)
        )
    ).scalars():
        session.delete(old)
    session.flush()
    enrollment = issue_enrollment(session, settings, config, machine, beneficiary, user)
    audit.record(
        session,
        action="workshop.machine.enrollment_reissued",
        object_type=AUDIT_MACHINE,
        object_id=machine.asset_tag,
        actor=user,
        data={"device_id": machine.device_id},
    )
    return enrollment


def link_device(session: Session, machine: Machine, device: Device, now: dt.datetime) -> None:
    """Link the enrolled ``device`` of a deployed ``machine`` to the machine's beneficiary."""
    beneficiary = (
        session.get(Beneficiary, machine.beneficiary_id) if machine.beneficiary_id else None
    )
    previous: str | None = None
    if beneficiary is not None:
        previous = beneficiary.device_id
        holder = session.execute(
            select(Beneficiary).where(
                Beneficiary.device_id == device.id, Beneficiary.id != beneficiary.id
            )
        ).scalar_one_or_none()
        if holder is not None:
            # device_id is unique among beneficiaries: let go before taking it over.
            holder.device_id = None
            session.flush()
        beneficiary.device_id = device.id
    else:
        log.warning("%s: deployed to a beneficiary who no longer exists", machine.asset_tag)
    machine.device_linked_at = now
    session.flush()
    audit.record(
        session,
        action="workshop.machine.linked",
        object_type=AUDIT_MACHINE,
        object_id=machine.asset_tag,
        actor="system",
        data={
            "device_id": device.id,
            "beneficiary_id": machine.beneficiary_id,
            "replaced_device_id": previous if previous != device.id else None,
        },
    )


def link_enrolled_devices(
    session: Session, now: dt.datetime, *, device_id: str | None = None
) -> list[str]:
    """Link deployed machines whose PC has enrolled to their beneficiary; returns the tags."""
    query = select(Machine).where(
        Machine.state == MachineState.DEPLOYED.value,
        Machine.device_id.is_not(None),
        Machine.device_linked_at.is_(None),
    )
    if device_id is not None:
        query = query.where(Machine.device_id == device_id)
    linked: list[str] = []
    for machine in session.execute(query.order_by(Machine.id)).scalars().all():
        assert machine.device_id is not None
        device = session.get(Device, machine.device_id)
        if device is None or device.revoked_at is not None:
            continue
        link_device(session, machine, device, now)
        linked.append(machine.asset_tag)
    return linked
