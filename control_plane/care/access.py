"""Who may see and call whom: the per-object checks of the care feature.

A caregiver sees (and calls) only the beneficiaries they are assigned to; coordinators and
administrators see everyone. Everybody else sees nobody.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Beneficiary, CaregiverAssignment, Role, User

SEE_ALL = frozenset({Role.ADMIN.value, Role.COORDINATOR.value})
CARE_ROLES = frozenset({*SEE_ALL, Role.CAREGIVER.value})


class AccessDenied(Exception):
    """The person may not see or act on this beneficiary; ``detail`` says why in plain words."""

    def __init__(self, detail: str, status_code: int = 403) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code


def is_assigned(session: Session, user: User, beneficiary_id: int) -> bool:
    """True when ``user`` is one of the beneficiary's assigned caregivers."""
    return (
        session.execute(
            select(CaregiverAssignment.id).where(
                CaregiverAssignment.beneficiary_id == beneficiary_id,
                CaregiverAssignment.user_id == user.id,
            )
        ).first()
        is not None
    )


def can_see(session: Session, user: User, beneficiary_id: int) -> bool:
    """Coordinators and admins see everyone, caregivers their own people."""
    if user.role in SEE_ALL:
        return True
    return user.role == Role.CAREGIVER.value and is_assigned(session, user, beneficiary_id)


def visible_beneficiary_ids(session: Session, user: User) -> list[int] | None:
    """The ids ``user`` may see; None means every beneficiary."""
    if user.role in SEE_ALL:
        return None
    if user.role != Role.CAREGIVER.value:
        return []
    return list(
        session.execute(
            select(CaregiverAssignment.beneficiary_id).where(CaregiverAssignment.user_id == user.id)
        ).scalars()
    )


def beneficiary_for(session: Session, user: User, beneficiary_id: int) -> Beneficiary:
    """The beneficiary if ``user`` may see it; AccessDenied (404 or 403) otherwise."""
    beneficiary = session.get(Beneficiary, beneficiary_id)
    if beneficiary is None:
        raise AccessDenied(f"beneficiary_id: no beneficiary {beneficiary_id}", 404)
    if not can_see(session, user, beneficiary_id):
        raise AccessDenied(
            f"beneficiary_id: you are not one of the caregivers of beneficiary {beneficiary_id}"
        )
    return beneficiary


def require_beneficiary(session: Session, user: User, beneficiary_id: int) -> Beneficiary:
    """:func:`beneficiary_for` for HTTP routes (HTTPException instead of AccessDenied)."""
    try:
        return beneficiary_for(session, user, beneficiary_id)
    except AccessDenied as exc:
        raise HTTPException(exc.status_code, exc.detail) from exc


def require_coordinator(user: User) -> None:
    """Refuse anyone but coordinators and admins (escalation queue, contact sheets edits)."""
    if user.role not in SEE_ALL:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not do this")
