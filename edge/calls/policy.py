"""When the PC answers by itself: a pure decision, tested without media or broker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from edge import protocol as p

Answer = Literal["auto", "ring"]

# A wake window opens a little before the appointment and the caregiver may be a few
# minutes late: calls this close to a window still count as inside it.
WINDOW_SLACK_S = 10 * 60


@dataclass(frozen=True)
class Decision:
    """How to take an incoming call, and why (logged and shown to the caregiver)."""

    answer: Answer
    reason: str


def in_window(now: float, wakes: Iterable[p.Wake], slack_s: float = WINDOW_SLACK_S) -> bool:
    """True when ``now`` falls inside (or within ``slack_s`` of) an appointment window."""
    return any(w.start - slack_s <= now <= w.end + slack_s for w in wakes)


def decide(
    *,
    now: float,
    call: p.CallDesired | None,
    schedule: p.ScheduleDesired | None,
    assigned: bool,
) -> Decision:
    """Auto-answer inside appointment windows for assigned caregivers, if the policy allows."""
    if call is not None and not call.auto_answer:
        return Decision("ring", "auto-answer is off for this person")
    if not assigned:
        return Decision("ring", "the caller is not one of this person's caregivers")
    if schedule is None or not in_window(now, schedule.wakes):
        return Decision("ring", "outside the appointment windows")
    return Decision("auto", "assigned caregiver inside an appointment window")
