"""Who may see and change whose appointments.

Coordinators and admins: every beneficiary. Caregivers: the beneficiaries they are assigned
to (``CaregiverAssignment``). Fleet managers and technicians see devices' wake state, not
people's appointments. Objects a person may not see answer 404, as if they did not exist.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Beneficiary, CaregiverAssignment, Role, User

CARE_ROLES = frozenset({Role.ADMIN.value, Role.COORDINATOR.value, Role.CAREGIVER.value})
FLEET_ROLES = frozenset(
    {
        Role.ADMIN.value,
        Role.COORDINATOR.value,
        Role.FLEET_MANAGER.value,
        Role.TECHNICIAN.value,
    }
)
# Who may set a device's wake policy (after commissioning).
PROFILE_ROLES = frozenset({Role.ADMIN.value, Role.FLEET_MANAGER.value, Role.TECHNICIAN.value})


def sees_everyone(user: User) -> bool:
    """True for people who follow every beneficiary (coordinators, admins)."""
    return user.role in (Role.ADMIN.value, Role.COORDINATOR.value)


def require_care_role(user: User) -> None:
    """403 unless ``user`` works with beneficiaries' appointments."""
    if user.role not in CARE_ROLES:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not see appointments"
        )


def require_role(user: User, roles: frozenset[str], what: str) -> None:
    """403 unless ``user`` has one of ``roles``; ``what`` says what was refused."""
    if user.role not in roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not {what}")


def visible_beneficiary_ids(session: Session, user: User) -> set[int] | None:
    """The beneficiaries ``user`` may see; None means all of them."""
    require_care_role(user)
    if sees_everyone(user):
        return None
    return set(
        session.execute(
            select(CaregiverAssignment.beneficiary_id).where(CaregiverAssignment.user_id == user.id)
        ).scalars()
    )


def beneficiary_for(session: Session, user: User, beneficiary_id: int) -> Beneficiary:
    """The beneficiary, if ``user`` may see (and so edit the appointments of) them; else 404."""
    visible = visible_beneficiary_ids(session, user)
    person = session.get(Beneficiary, beneficiary_id)
    if person is None or (visible is not None and beneficiary_id not in visible):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no beneficiary with id {beneficiary_id}")
    return person


def assigned_user_ids(session: Session, beneficiary_id: int) -> set[int]:
    """The users assigned to the beneficiary (caregivers and the coordinators following them)."""
    return set(
        session.execute(
            select(CaregiverAssignment.user_id).where(
                CaregiverAssignment.beneficiary_id == beneficiary_id
            )
        ).scalars()
    )
