"""The life of a donated machine as an explicit state machine.

Every machine moves along this graph; anything else is refused with a reason a trainee
can read, in Italian and in English.

=================  ==========================================  ===============================
from               to                                          requires
=================  ==========================================  ===============================
(intake)           received                                    a donation with consent
received           triaged                                     —
triaged            wiped                                       —
wiped              tested                                      diagnostics on file and a passed
                                                               erasure certificate for every
                                                               built-in disk they list
tested             imaged                                      (the same certificates)
imaged             quality_checked                             (the same certificates)
quality_checked    ready                                       (the same certificates)
ready              deployed                                    beneficiary id; no telecare
                                                               blockers in the assessment;
                                                               (the same certificates)
ready              sold                                        buyer; (the same certificates)
ready              donated_on                                  recipient organisation; (the
                                                               same certificates)
wiped … ready      triaged (rework: a part swapped, QA failed) notes saying why
any non-terminal   recycled                                    recycler and the recycler's
                                                               certificate reference
deployed, sold,    —                                           terminal: nothing leaves them
donated_on,
recycled
=================  ==========================================  ===============================

"(the same certificates)": the rule is "nothing moves past wiped without a certificate
for every disk", so it is checked on every step beyond wiped, not only wiped → tested — a
diagnostics report re-run later may reveal a disk nobody erased.

Every transition also needs an operator (``actor``) and a timezone-aware time, and the
result is a :class:`TransitionRecord` (who, when, from, to, notes, details) for the audit
trail and the impact report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class MachineState(StrEnum):
    """Where a donated machine is in the workshop."""

    RECEIVED = "received"
    TRIAGED = "triaged"
    WIPED = "wiped"
    TESTED = "tested"
    IMAGED = "imaged"
    QUALITY_CHECKED = "quality_checked"
    READY = "ready"
    DEPLOYED = "deployed"
    SOLD = "sold"
    DONATED_ON = "donated_on"
    RECYCLED = "recycled"


TERMINAL_STATES: frozenset[MachineState] = frozenset(
    {MachineState.DEPLOYED, MachineState.SOLD, MachineState.DONATED_ON, MachineState.RECYCLED}
)

# States that mean "this machine found a second life" (the impact report counts them).
REUSE_STATES: frozenset[MachineState] = frozenset(
    {MachineState.DEPLOYED, MachineState.SOLD, MachineState.DONATED_ON}
)

# States a machine may be sent back to triage from; before "wiped" there is nothing to redo.
_REWORK_FROM: frozenset[MachineState] = frozenset(
    {
        MachineState.WIPED,
        MachineState.TESTED,
        MachineState.IMAGED,
        MachineState.QUALITY_CHECKED,
        MachineState.READY,
    }
)

# Targets that lie beyond "wiped": reaching any of them needs every disk certified erased.
_PAST_WIPED: frozenset[MachineState] = frozenset(
    {
        MachineState.TESTED,
        MachineState.IMAGED,
        MachineState.QUALITY_CHECKED,
        MachineState.READY,
        MachineState.DEPLOYED,
        MachineState.SOLD,
        MachineState.DONATED_ON,
    }
)


def _build_edges() -> Mapping[MachineState, frozenset[MachineState]]:
    s = MachineState
    forward: dict[MachineState, set[MachineState]] = {
        s.RECEIVED: {s.TRIAGED},
        s.TRIAGED: {s.WIPED},
        s.WIPED: {s.TESTED},
        s.TESTED: {s.IMAGED},
        s.IMAGED: {s.QUALITY_CHECKED},
        s.QUALITY_CHECKED: {s.READY},
        s.READY: {s.DEPLOYED, s.SOLD, s.DONATED_ON},
    }
    for state in _REWORK_FROM:
        forward[state].add(s.TRIAGED)
    for state in forward:
        forward[state].add(s.RECYCLED)
    edges = {state: frozenset(forward.get(state, ())) for state in MachineState}
    return MappingProxyType(edges)


#: The whole graph: state → the states it may move to (empty for terminal states).
TRANSITIONS: Mapping[MachineState, frozenset[MachineState]] = _build_edges()


class TransitionError(ValueError):
    """A refused transition, with a stable code and a plain-words reason in both languages."""

    def __init__(
        self,
        code: str,
        message_it: str,
        message_en: str,
        *,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_it = message_it
        self.message_en = message_en
        self.details: Mapping[str, Any] = MappingProxyType(dict(details or {}))

    def message(self, language: str) -> str:
        """The reason in ``language`` ("it" or "en"); Italian for anything else."""
        return self.message_en if language.startswith("en") else self.message_it


@dataclass(frozen=True, slots=True)
class MachineFacts:
    """What the rules need to know about one machine; the database layer fills it in."""

    state: MachineState
    # Serials of the disks found by the latest diagnostics report.
    disk_serials: frozenset[str] = frozenset()
    # Serials of the disks with an erasure certificate whose verification passed.
    certified_disk_serials: frozenset[str] = frozenset()
    diagnostics_present: bool = False
    # Finding codes from the assessment that rule the machine out for a home (see assessment).
    telecare_blockers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TransitionParams:
    """Who asks for the transition, when, why, and where the machine goes."""

    actor: str
    at: datetime
    notes: str = ""
    beneficiary_id: str | None = None
    buyer: str | None = None
    recipient: str | None = None
    recycler: str | None = None
    recycling_certificate_ref: str | None = None


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One step in a machine's journey, as stored in the audit trail."""

    asset_tag: str
    from_state: MachineState | None  # None for the intake record
    to_state: MachineState
    actor: str
    at: datetime
    notes: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


def allowed_targets(state: MachineState) -> frozenset[MachineState]:
    """The states a machine in ``state`` may move to, for the buttons the console shows."""
    return TRANSITIONS[MachineState(state)]


def is_terminal(state: MachineState) -> bool:
    """Whether nothing can happen to a machine in ``state`` any more."""
    return MachineState(state) in TERMINAL_STATES


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _check_params(params: TransitionParams) -> None:
    if _blank(params.actor):
        raise TransitionError(
            "actor_required",
            "Indicare chi esegue il passaggio (campo actor).",
            "Say who performs the transition (field actor).",
        )
    if params.at.tzinfo is None or params.at.utcoffset() is None:
        # A naive time is ambiguous across DST and between servers: refuse it here.
        raise TransitionError(
            "time_not_aware",
            "L'orario del passaggio deve avere un fuso orario (campo at).",
            "The transition time must carry a time zone (field at).",
        )


def _check_edge(current: MachineState, to: MachineState) -> None:
    if current == to:
        raise TransitionError(
            "same_state",
            f"La macchina è già nello stato «{current.value}».",
            f"The machine is already in state '{current.value}'.",
            details={"from": current.value, "to": to.value},
        )
    if current in TERMINAL_STATES:
        raise TransitionError(
            "terminal_state",
            f"La macchina è nello stato finale «{current.value}»: non può più cambiare stato.",
            f"The machine is in the final state '{current.value}' and cannot change any more.",
            details={"from": current.value, "to": to.value},
        )
    allowed = TRANSITIONS[current]
    if to not in allowed:
        options = ", ".join(sorted(s.value for s in allowed))
        raise TransitionError(
            "not_allowed",
            f"Da «{current.value}» non si può passare a «{to.value}». Passaggi possibili: "
            f"{options}.",
            f"A machine cannot go from '{current.value}' to '{to.value}'. "
            f"Possible next states: {options}.",
            details={"from": current.value, "to": to.value, "allowed": options},
        )


def _check_erasure(machine: MachineFacts, to: MachineState) -> None:
    if not machine.diagnostics_present:
        raise TransitionError(
            "diagnostics_missing",
            "Manca il rapporto di diagnostica: senza l'elenco dei dischi non si può "
            "verificare la cancellazione.",
            "The diagnostics report is missing: without the list of disks the erasure "
            "cannot be checked.",
            details={"to": to.value},
        )
    missing = sorted(machine.disk_serials - machine.certified_disk_serials)
    if missing:
        serials = ", ".join(missing)
        raise TransitionError(
            "certificate_missing",
            f"Manca un certificato di cancellazione verificato per i dischi: {serials}.",
            f"A verified erasure certificate is missing for the disks: {serials}.",
            details={"to": to.value, "disk_serials": serials},
        )


def _require(value: str | None, code: str, message_it: str, message_en: str) -> None:
    if _blank(value):
        raise TransitionError(code, message_it, message_en)


def _check_destination(machine: MachineFacts, to: MachineState, params: TransitionParams) -> None:
    if to is MachineState.DEPLOYED:
        _require(
            params.beneficiary_id,
            "beneficiary_required",
            "Per consegnare la macchina indicare il beneficiario (campo beneficiary_id).",
            "To deploy the machine, say who the beneficiary is (field beneficiary_id).",
        )
        if machine.telecare_blockers:
            codes = ", ".join(sorted(machine.telecare_blockers))
            raise TransitionError(
                "telecare_blockers",
                f"La diagnostica ha trovato problemi che impediscono la teleassistenza: {codes}.",
                f"The diagnostics found problems that rule out telecare: {codes}.",
                details={"blockers": codes},
            )
    elif to is MachineState.SOLD:
        _require(
            params.buyer,
            "buyer_required",
            "Per registrare la vendita indicare l'acquirente (campo buyer).",
            "To record the sale, say who the buyer is (field buyer).",
        )
    elif to is MachineState.DONATED_ON:
        _require(
            params.recipient,
            "recipient_required",
            "Per donare la macchina indicare l'ente che la riceve (campo recipient).",
            "To donate the machine on, say which organisation receives it (field recipient).",
        )
    elif to is MachineState.RECYCLED:
        _require(
            params.recycler,
            "recycler_required",
            "Per il riciclo indicare l'impianto di riciclo (campo recycler).",
            "To recycle the machine, say which recycler takes it (field recycler).",
        )
        _require(
            params.recycling_certificate_ref,
            "recycling_certificate_required",
            "Per il riciclo indicare il riferimento del certificato del riciclatore "
            "(campo recycling_certificate_ref).",
            "To recycle the machine, give the recycler's certificate reference "
            "(field recycling_certificate_ref).",
        )
    elif to is MachineState.TRIAGED and machine.state in _REWORK_FROM:
        _require(
            params.notes,
            "notes_required",
            "Per rimandare la macchina al triage scrivere il motivo nelle note.",
            "To send the machine back to triage, write the reason in the notes.",
        )


def check_transition(machine: MachineFacts, to: MachineState, params: TransitionParams) -> None:
    """Refuse (raise :class:`TransitionError`) unless ``machine`` may move to ``to`` now."""
    current = MachineState(machine.state)
    target = MachineState(to)
    _check_params(params)
    _check_edge(current, target)
    if target in _PAST_WIPED:
        _check_erasure(machine, target)
    _check_destination(machine, target, params)


def _details(to: MachineState, params: TransitionParams) -> dict[str, str]:
    # Keep only the fields that belong to this destination, so the audit trail says
    # "deployed to B-12", not a row of empty columns.
    wanted: dict[MachineState, tuple[str, ...]] = {
        MachineState.DEPLOYED: ("beneficiary_id",),
        MachineState.SOLD: ("buyer",),
        MachineState.DONATED_ON: ("recipient",),
        MachineState.RECYCLED: ("recycler", "recycling_certificate_ref"),
    }
    out: dict[str, str] = {}
    for name in wanted.get(to, ()):
        value = getattr(params, name)
        if value is not None:
            out[name] = value.strip()
    return out


def transition(
    asset_tag: str, machine: MachineFacts, to: MachineState, params: TransitionParams
) -> TransitionRecord:
    """Check the transition and return the record to store; raise TransitionError if refused."""
    check_transition(machine, to, params)
    target = MachineState(to)
    return TransitionRecord(
        asset_tag=asset_tag,
        from_state=MachineState(machine.state),
        to_state=target,
        actor=params.actor.strip(),
        at=params.at,
        notes=params.notes.strip(),
        details=_details(target, params),
    )


def intake_record(asset_tag: str, actor: str, at: datetime, notes: str = "") -> TransitionRecord:
    """The first record of every machine: it was received at the workshop."""
    _check_params(TransitionParams(actor=actor, at=at))
    return TransitionRecord(
        asset_tag=asset_tag,
        from_state=None,
        to_state=MachineState.RECEIVED,
        actor=actor.strip(),
        at=at,
        notes=notes.strip(),
    )
