"""The life of one job execution: its states and which moves between them are allowed.

Pure: no database, no clock. The ingest handler asks :func:`apply_device_update` whether a
device's report moves an execution, the periodic task asks :func:`can_cancel` and friends;
both then write the answer with a conditional UPDATE so two replicas cannot both apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ExecStatus(StrEnum):
    """Where an execution is; the values are the contract's ``JobStatus`` literals."""

    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"
    CANCELED = "CANCELED"


class JobStatus(StrEnum):
    """Where a whole job is."""

    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"  # every execution reached a terminal state
    CANCELED = "CANCELED"  # a person canceled it
    ABORTED = "ABORTED"  # its abort criteria fired; the rest was canceled


TERMINAL: frozenset[ExecStatus] = frozenset(
    {
        ExecStatus.SUCCEEDED,
        ExecStatus.FAILED,
        ExecStatus.TIMED_OUT,
        ExecStatus.REJECTED,
        ExecStatus.CANCELED,
    }
)
PENDING: frozenset[ExecStatus] = frozenset({ExecStatus.QUEUED, ExecStatus.IN_PROGRESS})
FAILURES: frozenset[ExecStatus] = frozenset(
    {ExecStatus.FAILED, ExecStatus.TIMED_OUT, ExecStatus.REJECTED}
)
# "Executed" in abort criteria: the device gave (or failed to give) an answer. A canceled
# execution says nothing about the operation, so it does not count either way.
EXECUTED: frozenset[ExecStatus] = frozenset({ExecStatus.SUCCEEDED, *FAILURES})

# Failing devices first, then what is still moving, then the quiet ones.
DISPLAY_ORDER: dict[ExecStatus, int] = {
    ExecStatus.FAILED: 0,
    ExecStatus.TIMED_OUT: 1,
    ExecStatus.REJECTED: 2,
    ExecStatus.IN_PROGRESS: 3,
    ExecStatus.QUEUED: 4,
    ExecStatus.CANCELED: 5,
    ExecStatus.SUCCEEDED: 6,
}

# What a device may report from each non-terminal state. QUEUED is the control plane's to
# give, never the device's; IN_PROGRESS -> IN_PROGRESS is a progress report.
_FROM_DEVICE: dict[ExecStatus, frozenset[ExecStatus]] = {
    ExecStatus.QUEUED: frozenset(
        {
            ExecStatus.IN_PROGRESS,
            ExecStatus.SUCCEEDED,
            ExecStatus.FAILED,
            ExecStatus.TIMED_OUT,
            ExecStatus.REJECTED,
            ExecStatus.CANCELED,
        }
    ),
    ExecStatus.IN_PROGRESS: frozenset(
        {
            ExecStatus.IN_PROGRESS,
            ExecStatus.SUCCEEDED,
            ExecStatus.FAILED,
            ExecStatus.TIMED_OUT,
            ExecStatus.REJECTED,
            ExecStatus.CANCELED,
        }
    ),
}


@dataclass(frozen=True, slots=True)
class UpdateDecision:
    """What to do with one device report: apply it (and to what), or why not."""

    accepted: bool
    status: ExecStatus
    reason: str = ""

    @property
    def finished(self) -> bool:
        """True when the accepted report ends the execution."""
        return self.accepted and self.status in TERMINAL


def apply_device_update(
    current: ExecStatus, last_seq: int, reported: ExecStatus | str, seq: int
) -> UpdateDecision:
    """Decide whether a device's report (status ``reported``, sequence ``seq``) is applied.

    Updates carry a per-device sequence: one at or below the last applied is a QoS 1
    duplicate or arrived out of order, and is dropped. A terminal execution never moves
    again (a late SUCCEEDED after the control plane timed it out stays TIMED_OUT).
    """
    try:
        status = ExecStatus(reported)
    except ValueError:
        return UpdateDecision(False, current, f"status: unknown status {reported!r}")
    if seq <= last_seq:
        return UpdateDecision(False, current, f"seq: {seq} <= last applied {last_seq}")
    if current in TERMINAL:
        return UpdateDecision(False, current, f"status: execution is already {current.value}")
    allowed = _FROM_DEVICE[current]
    if status not in allowed:
        return UpdateDecision(
            False, current, f"status: a device may not move {current.value} to {status.value}"
        )
    return UpdateDecision(True, status)


def can_cancel(current: ExecStatus, *, force: bool) -> bool:
    """An execution may be canceled while queued; while in progress only with ``force``."""
    if current is ExecStatus.QUEUED:
        return True
    return force and current is ExecStatus.IN_PROGRESS


def should_retry(status: ExecStatus, attempt: int, retries: int) -> bool:
    """Retry a failed or timed-out execution while attempts remain (``attempt`` from 0).

    A rejection is the device saying the document is wrong for it: trying again would
    only get the same answer, so it is never retried.
    """
    return status in (ExecStatus.FAILED, ExecStatus.TIMED_OUT) and attempt < retries
