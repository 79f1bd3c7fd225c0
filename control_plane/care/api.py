"""The care API under /api/v1/care: the call WebSocket, call records, outcomes, escalations,
contact sheets, the caregiver's agenda and a beneficiary's timeline."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit
from ..api.deps import CurrentUser, SessionDep, SettingsDep, user_from_token
from ..db import utcnow
from ..models import Beneficiary, Device, User
from ..twin import TwinError, set_section
from . import escalations as esc
from .access import (
    CARE_ROLES,
    SEE_ALL,
    require_beneficiary,
    require_coordinator,
    visible_beneficiary_ids,
)
from .agenda import agenda
from .models import (
    Call,
    Contact,
    ContactKind,
    Escalation,
    EscalationStatus,
    Outcome,
    OutcomeKind,
    Target,
)
from .timeline import timeline
from .turn import ice_servers

router = APIRouter(prefix="/care", tags=["care"])


def _care_user(user: CurrentUser) -> User:
    if user.role not in CARE_ROLES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not do this")
    return user


CareUser = Annotated[User, Depends(_care_user)]


# --- schemas -----------------------------------------------------------------------------


class CallPublic(BaseModel):
    id: int
    session: str
    beneficiary_id: int
    device_id: str | None
    caller_id: int | None
    status: str
    end_reason: str | None
    end_message: str
    auto_answered: bool | None
    started_at: dt.datetime
    answered_at: dt.datetime | None
    connected_at: dt.datetime | None
    ended_at: dt.datetime | None
    stats_browser: dict[str, float]
    stats_device: dict[str, float]
    outcome_id: int | None

    @classmethod
    def of(cls, c: Call) -> CallPublic:
        return cls(
            id=c.id,
            session=c.session,
            beneficiary_id=c.beneficiary_id,
            device_id=c.device_id,
            caller_id=c.caller_id,
            status=c.status,
            end_reason=c.end_reason,
            end_message=c.end_message,
            auto_answered=c.auto_answered,
            started_at=c.started_at,
            answered_at=c.answered_at,
            connected_at=c.connected_at,
            ended_at=c.ended_at,
            stats_browser=c.stats_browser or {},
            stats_device=c.stats_device or {},
            outcome_id=c.outcome.id if c.outcome is not None else None,
        )


class EscalationCreate(BaseModel):
    target: Target
    summary: str = Field(default="", max_length=4000)
    urgent: bool = False


class OutcomeCreate(BaseModel):
    kind: OutcomeKind
    note: str = Field(default="", max_length=4000)
    escalations: list[EscalationCreate] = Field(default_factory=list, max_length=4)


class MissedOutcomeCreate(OutcomeCreate):
    beneficiary_id: int


class EscalationEventPublic(BaseModel):
    at: dt.datetime
    kind: str
    actor_id: int | None
    text: str
    data: dict[str, Any]


class EscalationPublic(BaseModel):
    id: int
    beneficiary_id: int
    beneficiary_name: str
    outcome_id: int | None
    target: str
    urgent: bool
    status: str
    summary: str
    owner_id: int | None
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    events: list[EscalationEventPublic] = Field(default_factory=list)

    @classmethod
    def of(cls, e: Escalation, name: str, *, events: bool = False) -> EscalationPublic:
        return cls(
            id=e.id,
            beneficiary_id=e.beneficiary_id,
            beneficiary_name=name,
            outcome_id=e.outcome_id,
            target=e.target,
            urgent=e.urgent,
            status=e.status,
            summary=e.summary,
            owner_id=e.owner_id,
            created_by=e.created_by,
            created_at=e.created_at,
            updated_at=e.updated_at,
            closed_at=e.closed_at,
            events=[
                EscalationEventPublic(
                    at=v.at, kind=v.kind, actor_id=v.actor_id, text=v.text, data=v.data or {}
                )
                for v in e.events
            ]
            if events
            else [],
        )


class OutcomePublic(BaseModel):
    id: int
    beneficiary_id: int
    call_id: int | None
    kind: str
    note: str
    missed: bool
    recorded_by: int | None
    recorded_at: dt.datetime
    escalations: list[EscalationPublic]


class ContactIn(BaseModel):
    kind: ContactKind
    name: str = Field(min_length=1, max_length=200)
    organisation: str = Field(default="", max_length=200)
    relation: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=50)
    email: str = Field(default="", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")
    webhook_url: str = Field(default="", max_length=500, pattern=r"^$|^https?://\S+$")
    paid: bool = False
    notes: str = Field(default="", max_length=4000)


class ContactPublic(ContactIn):
    id: int
    beneficiary_id: int


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class CloseIn(BaseModel):
    note: str = Field(default="", max_length=4000)


class AssignIn(BaseModel):
    owner_id: int


class CallPolicyIn(BaseModel):
    auto_answer: bool
    width: int = Field(default=640, ge=16, le=4096)
    height: int = Field(default=480, ge=16, le=4096)
    max_kbps: int = Field(default=800, ge=16, le=100_000)


class AgendaAppointment(BaseModel):
    start: dt.datetime
    end: dt.datetime
    title: str


class AgendaRowPublic(BaseModel):
    beneficiary_id: int
    name: str
    device_id: str | None
    online: bool
    in_call: bool
    in_window: bool
    can_call: bool
    appointments: list[AgendaAppointment]


class AgendaPublic(BaseModel):
    appointments_known: bool
    rows: list[AgendaRowPublic]


class TimelineItemPublic(BaseModel):
    at: dt.datetime
    kind: str
    ref: int
    title: str
    detail: str
    status: str
    data: dict[str, Any]


# --- the call WebSocket -------------------------------------------------------------------


def _ws_user(websocket: WebSocket, session: Session, token: str | None) -> User | None:
    if token:
        return user_from_token(session, token)
    user_id = websocket.scope.get("state", {}).get("console_user_id")
    if user_id is None:
        return None
    # A cookie is sent by the browser whatever page opens the socket: accept only our own
    # pages (cross-site WebSocket hijacking). Bearer tokens are never sent implicitly.
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host", "")
    settings = websocket.app.state.settings
    allowed = {f"http://{host}", f"https://{host}", settings.public_url.rstrip("/")}
    if origin is None or origin not in allowed:
        return None
    user = session.get(User, user_id)
    return user if user is not None and user.is_active else None


@router.websocket("/calls/ws")
async def call_socket(
    websocket: WebSocket,
    beneficiary_id: int,
    token: str | None = None,
) -> None:
    """Start a call to ``beneficiary_id`` and carry its signalling (see care/relay.py).

    Authenticated by the console cookie (same origin only) or ``?token=`` (programs, tests).
    """
    await websocket.accept()
    factory = websocket.app.state.sessionmaker

    def _auth() -> int | None:
        with factory() as session:
            user = _ws_user(websocket, session, token)
            session.commit()
            return user.id if user is not None else None

    user_id = await asyncio.to_thread(_auth)
    if user_id is None:
        await websocket.send_json(
            {"type": "ended", "reason": "auth", "message": "Please log in again."}
        )
        await websocket.close(code=4401)
        return
    await websocket.app.state.care_relay.serve(websocket, user_id, beneficiary_id)


@router.get("/ice-servers")
def get_ice_servers(user: CareUser, settings: SettingsDep) -> list[dict[str, Any]]:
    """STUN/TURN servers with fresh time-limited TURN credentials for this person."""
    return ice_servers(settings, f"user-{user.id}")


# --- agenda, calls ---------------------------------------------------------------------------


@router.get("/agenda", response_model=AgendaPublic)
def get_agenda(
    session: SessionDep, user: CareUser, days: Annotated[int, Query(ge=1, le=31)] = 7
) -> AgendaPublic:
    """The caller's people with their PCs' live state and appointments (today and ahead)."""
    rows, known = agenda(session, user, utcnow(), days=days)
    return AgendaPublic(
        appointments_known=known,
        rows=[
            AgendaRowPublic(
                beneficiary_id=r.beneficiary_id,
                name=r.name,
                device_id=r.device_id,
                online=r.online,
                in_call=r.in_call,
                in_window=r.in_window,
                can_call=r.can_call,
                appointments=[
                    AgendaAppointment(start=a.start, end=a.end, title=a.title)
                    for a in r.appointments
                ],
            )
            for r in rows
        ],
    )


def call_for(session: Session, user: User, call_id: int) -> Call:
    """A call record ``user`` may see (404/403 naming the field otherwise)."""
    call = session.get(Call, call_id)
    if call is None:
        raise HTTPException(404, f"call_id: no call {call_id}")
    require_beneficiary(session, user, call.beneficiary_id)
    return call


@router.get("/calls/{call_id}", response_model=CallPublic)
def get_call(call_id: int, session: SessionDep, user: CareUser) -> CallPublic:
    """One call record with its quality figures from both ends."""
    return CallPublic.of(call_for(session, user, call_id))


@router.get("/beneficiaries/{beneficiary_id}/calls", response_model=list[CallPublic])
def list_calls(
    beneficiary_id: int,
    session: SessionDep,
    user: CareUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CallPublic]:
    """The newest calls to one beneficiary."""
    require_beneficiary(session, user, beneficiary_id)
    rows = session.execute(
        select(Call)
        .where(Call.beneficiary_id == beneficiary_id)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
    ).scalars()
    return [CallPublic.of(c) for c in rows]


# --- outcomes ---------------------------------------------------------------------------------


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(Beneficiary.id, Beneficiary.name).where(Beneficiary.id.in_(ids)))
    return {row.id: row.name for row in rows}


def _outcome_public(
    session: Session, outcome: Outcome, escalations: list[Escalation]
) -> OutcomePublic:
    names = _names(session, {outcome.beneficiary_id})
    return OutcomePublic(
        id=outcome.id,
        beneficiary_id=outcome.beneficiary_id,
        call_id=outcome.call_id,
        kind=outcome.kind,
        note=outcome.note,
        missed=outcome.missed,
        recorded_by=outcome.recorded_by,
        recorded_at=outcome.recorded_at,
        escalations=[EscalationPublic.of(e, names.get(e.beneficiary_id, "")) for e in escalations],
    )


def _store_outcome(
    request: Request,
    session: Session,
    user: User,
    beneficiary_id: int,
    body: OutcomeCreate,
    call_id: int | None,
    missed: bool,
) -> OutcomePublic:
    outcome, opened = esc.record_outcome(
        session,
        user=user,
        beneficiary_id=beneficiary_id,
        kind=body.kind,
        note=body.note,
        call_id=call_id,
        missed=missed,
        escalations=[
            esc.EscalationRequest(e.target, e.summary, e.urgent) for e in body.escalations
        ],
    )
    session.commit()
    notifier = getattr(request.app.state, "care_notifier", None)
    if notifier is not None:
        for escalation in opened:
            notifier.submit(escalation.id)
    return _outcome_public(session, outcome, opened)


@router.post("/calls/{call_id}/outcome", response_model=OutcomePublic, status_code=201)
def record_call_outcome(
    call_id: int, body: OutcomeCreate, request: Request, session: SessionDep, user: CareUser
) -> OutcomePublic:
    """After a call (or a failed attempt): all well, or a problem with escalations."""
    call = call_for(session, user, call_id)
    return _store_outcome(request, session, user, call.beneficiary_id, body, call.id, False)


@router.post("/outcomes", response_model=OutcomePublic, status_code=201)
def record_missed_outcome(
    body: MissedOutcomeCreate, request: Request, session: SessionDep, user: CareUser
) -> OutcomePublic:
    """An outcome without a call: the appointment was missed (PC off, nobody answering)."""
    require_beneficiary(session, user, body.beneficiary_id)
    return _store_outcome(request, session, user, body.beneficiary_id, body, None, True)


# --- escalations ------------------------------------------------------------------------------


def escalation_for(session: Session, user: User, escalation_id: int) -> Escalation:
    """An escalation ``user`` may see."""
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise HTTPException(404, f"escalation_id: no escalation {escalation_id}")
    require_beneficiary(session, user, escalation.beneficiary_id)
    return escalation


@router.get("/escalations", response_model=list[EscalationPublic])
def list_escalations(
    session: SessionDep,
    user: CareUser,
    state: Literal["active", "open", "taken", "closed", "all"] = "active",
    mine: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[EscalationPublic]:
    """The coordinators' queue: urgent first, then oldest first (caregivers see their people's)."""
    query = select(Escalation)
    if state == "active":
        query = query.where(Escalation.status != EscalationStatus.CLOSED.value)
    elif state != "all":
        query = query.where(Escalation.status == state)
    if mine:
        query = query.where(Escalation.owner_id == user.id)
    ids = visible_beneficiary_ids(session, user)
    if ids is not None:
        query = query.where(Escalation.beneficiary_id.in_(ids))
    rows = list(
        session.execute(
            query.order_by(Escalation.urgent.desc(), Escalation.created_at, Escalation.id).limit(
                limit
            )
        ).scalars()
    )
    names = _names(session, {e.beneficiary_id for e in rows})
    return [EscalationPublic.of(e, names.get(e.beneficiary_id, "")) for e in rows]


@router.get("/escalations/{escalation_id}", response_model=EscalationPublic)
def get_escalation(escalation_id: int, session: SessionDep, user: CareUser) -> EscalationPublic:
    """One escalation with its timeline."""
    e = escalation_for(session, user, escalation_id)
    return EscalationPublic.of(
        e, _names(session, {e.beneficiary_id}).get(e.beneficiary_id, ""), events=True
    )


@router.post("/escalations/{escalation_id}/take", response_model=EscalationPublic)
def take_escalation(escalation_id: int, session: SessionDep, user: CareUser) -> EscalationPublic:
    """Take the escalation on (coordinators)."""
    e = escalation_for(session, user, escalation_id)
    esc.take(session, e, user)
    session.commit()
    return get_escalation(escalation_id, session, user)


@router.post("/escalations/{escalation_id}/assign", response_model=EscalationPublic)
def assign_escalation(
    escalation_id: int, body: AssignIn, session: SessionDep, user: CareUser
) -> EscalationPublic:
    """Hand the escalation to another coordinator."""
    e = escalation_for(session, user, escalation_id)
    owner = session.get(User, body.owner_id)
    if owner is None:
        raise HTTPException(422, f"owner_id: no user {body.owner_id}")
    esc.assign(session, e, owner, user)
    session.commit()
    return get_escalation(escalation_id, session, user)


@router.post("/escalations/{escalation_id}/notes", response_model=EscalationPublic)
def note_escalation(
    escalation_id: int, body: NoteIn, session: SessionDep, user: CareUser
) -> EscalationPublic:
    """Add a note to the escalation's timeline."""
    e = escalation_for(session, user, escalation_id)
    esc.add_note(session, e, user, body.text)
    session.commit()
    return get_escalation(escalation_id, session, user)


@router.post("/escalations/{escalation_id}/close", response_model=EscalationPublic)
def close_escalation(
    escalation_id: int, body: CloseIn, session: SessionDep, user: CareUser
) -> EscalationPublic:
    """Close the escalation with what was done."""
    e = escalation_for(session, user, escalation_id)
    esc.close(session, e, user, body.note)
    session.commit()
    return get_escalation(escalation_id, session, user)


# --- contact sheets ---------------------------------------------------------------------------


def _contact_public(c: Contact) -> ContactPublic:
    return ContactPublic(
        id=c.id,
        beneficiary_id=c.beneficiary_id,
        kind=ContactKind(c.kind),
        name=c.name,
        organisation=c.organisation,
        relation=c.relation,
        phone=c.phone,
        email=c.email,
        webhook_url=c.webhook_url,
        paid=c.paid,
        notes=c.notes,
    )


@router.get("/beneficiaries/{beneficiary_id}/contacts", response_model=list[ContactPublic])
def list_contacts(beneficiary_id: int, session: SessionDep, user: CareUser) -> list[ContactPublic]:
    """The beneficiary's contact sheet."""
    require_beneficiary(session, user, beneficiary_id)
    rows = session.execute(
        select(Contact)
        .where(Contact.beneficiary_id == beneficiary_id)
        .order_by(Contact.kind, Contact.name)
    ).scalars()
    return [_contact_public(c) for c in rows]


@router.post(
    "/beneficiaries/{beneficiary_id}/contacts", response_model=ContactPublic, status_code=201
)
def add_contact(
    beneficiary_id: int, body: ContactIn, session: SessionDep, user: CareUser
) -> ContactPublic:
    """Add a person or service to the contact sheet (coordinators)."""
    require_coordinator(user)
    require_beneficiary(session, user, beneficiary_id)
    contact = Contact(beneficiary_id=beneficiary_id, **body.model_dump(mode="json"))
    session.add(contact)
    session.flush()
    audit.record(
        session,
        action="contact.create",
        object_type="contact",
        object_id=contact.id,
        actor=user,
        data={"beneficiary_id": beneficiary_id, "kind": contact.kind},
    )
    session.commit()
    return _contact_public(contact)


def _contact(session: Session, user: User, contact_id: int) -> Contact:
    require_coordinator(user)
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise HTTPException(404, f"contact_id: no contact {contact_id}")
    require_beneficiary(session, user, contact.beneficiary_id)
    return contact


@router.put("/contacts/{contact_id}", response_model=ContactPublic)
def update_contact(
    contact_id: int, body: ContactIn, session: SessionDep, user: CareUser
) -> ContactPublic:
    """Replace a contact-sheet entry (coordinators)."""
    contact = _contact(session, user, contact_id)
    for key, value in body.model_dump(mode="json").items():
        setattr(contact, key, value)
    audit.record(
        session, action="contact.update", object_type="contact", object_id=contact.id, actor=user
    )
    session.commit()
    return _contact_public(contact)


@router.delete("/contacts/{contact_id}", status_code=204)
def delete_contact(contact_id: int, session: SessionDep, user: CareUser) -> None:
    """Remove a contact-sheet entry (coordinators)."""
    contact = _contact(session, user, contact_id)
    audit.record(
        session,
        action="contact.delete",
        object_type="contact",
        object_id=contact.id,
        actor=user,
        data={"name": contact.name},
    )
    session.delete(contact)
    session.commit()


# --- timeline and call policy -----------------------------------------------------------------


@router.get("/beneficiaries/{beneficiary_id}/timeline", response_model=list[TimelineItemPublic])
def get_timeline(
    beneficiary_id: int,
    session: SessionDep,
    user: CareUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[TimelineItemPublic]:
    """Calls, outcomes, escalations and missed wakes of one person, newest first."""
    beneficiary = require_beneficiary(session, user, beneficiary_id)
    return [
        TimelineItemPublic(
            at=i.at,
            kind=i.kind,
            ref=i.ref,
            title=i.title,
            detail=i.detail,
            status=i.status,
            data=i.data,
        )
        for i in timeline(session, beneficiary, limit=limit)
    ]


@router.put("/beneficiaries/{beneficiary_id}/call-policy", response_model=CallPolicyIn)
def put_call_policy(
    beneficiary_id: int,
    body: CallPolicyIn,
    request: Request,
    session: SessionDep,
    user: CareUser,
) -> CallPolicyIn:
    """Auto-answer and media limits for this person's PC (published in its desired twin)."""
    if user.role not in SEE_ALL:
        raise HTTPException(403, f"your role ({user.role}) may not change the call policy")
    beneficiary = require_beneficiary(session, user, beneficiary_id)
    beneficiary.auto_answer = body.auto_answer
    device_id = beneficiary.device_id
    if device_id is not None:
        device = session.get(Device, device_id)
        if device is not None:
            try:
                set_section(session, device, "call", body.model_dump())
            except TwinError as exc:
                raise HTTPException(422, str(exc)) from exc
    audit.record(
        session,
        action="call_policy.set",
        object_type="beneficiary",
        object_id=beneficiary_id,
        actor=user,
        data=body.model_dump(),
    )
    session.commit()
    if device_id is not None:
        request.app.state.twin.publish_sync([device_id])
    return body
