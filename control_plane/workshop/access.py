"""Who may do what in the workshop.

* Workshop leads (and admins) do everything, and see every work order.
* Technicians receive donations, move machines along, upload diagnostics, record
  erasures and deploy; they see every work order but do not hand them out.
* Trainees see the machines, move them through the bench steps (triage, wipe, test,
  image), record the erasures they perform, and see and log only their own work.
  Quality checks, rework decisions and where a machine goes in the end are left to
  the staff who supervise them.
"""

from __future__ import annotations

from ..models import Role, User
from .lifecycle import MachineState

#: Everyone with a workshop page.
READERS: tuple[Role, ...] = (Role.WORKSHOP_LEAD, Role.TECHNICIAN, Role.TRAINEE)
#: Staff who may take any step in a machine's lifecycle.
STAFF: tuple[Role, ...] = (Role.WORKSHOP_LEAD, Role.TECHNICIAN)
#: Who hands out and signs off work orders.
LEADS: tuple[Role, ...] = (Role.WORKSHOP_LEAD,)

# The bench steps a trainee may record, each from the state right before it.
_TRAINEE_STEPS: dict[MachineState, MachineState] = {
    MachineState.TRIAGED: MachineState.RECEIVED,
    MachineState.WIPED: MachineState.TRIAGED,
    MachineState.TESTED: MachineState.WIPED,
    MachineState.IMAGED: MachineState.TESTED,
}


def _role(user: User) -> str:
    return str(user.role)


def is_admin(user: User) -> bool:
    """Whether ``user`` is an administrator."""
    return _role(user) == Role.ADMIN.value


def is_lead(user: User) -> bool:
    """A workshop lead or an admin."""
    return is_admin(user) or _role(user) == Role.WORKSHOP_LEAD.value


def is_staff(user: User) -> bool:
    """A workshop lead, a technician or an admin."""
    return is_lead(user) or _role(user) == Role.TECHNICIAN.value


def is_trainee(user: User) -> bool:
    """A trainee (who sees only their own work)."""
    return _role(user) == Role.TRAINEE.value


def may_move(user: User, current: MachineState, target: MachineState) -> bool:
    """Whether ``user`` may ask for ``current`` → ``target`` (the lifecycle still decides)."""
    if is_staff(user):
        return True
    return is_trainee(user) and _TRAINEE_STEPS.get(target) == current


def sees_all_work(user: User) -> bool:
    """Whether ``user`` sees every work order, not only their own."""
    return is_staff(user)
