"""The care pages of the console: the caregiver's day, the call page, outcomes, escalations,
a person's history and contact sheet. Italian first, like the rest of the console."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..api.deps import SessionDep
from ..db import utcnow
from ..features import FeatureContext
from ..models import Beneficiary, Role, User
from ..web import N_, Page, PageError, console_router, page_for_roles, register_nav
from . import escalations as esc
from .access import SEE_ALL, AccessDenied, beneficiary_for, visible_beneficiary_ids
from .agenda import agenda
from .models import Call, Contact, Escalation, EscalationStatus, OutcomeKind, Target
from .signalling import END_MESSAGES
from .timeline import timeline

router = console_router(prefix="/care")

register_nav(
    "/care",
    N_("Today's calls"),
    [Role.CAREGIVER, Role.COORDINATOR],
    description_msgid=N_("The people you look after, their PCs, and a button to call them."),
    order=10,
)
register_nav(
    "/care/escalations",
    N_("Escalations"),
    [Role.COORDINATOR],
    description_msgid=N_("Problems reported after calls, to take on and follow up."),
    order=20,
)

CarePage = Annotated[Page, Depends(page_for_roles(Role.CAREGIVER, Role.COORDINATOR))]
CoordinatorPage = Annotated[Page, Depends(page_for_roles(Role.COORDINATOR))]

TARGETS: dict[str, str] = {
    Target.SPECIALIST.value: N_("Specialist services of the cooperatives (may be paid)"),
    Target.SOCIAL.value: N_("Social services"),
    Target.EMERGENCY.value: N_("Emergency services"),
    Target.FAMILY.value: N_("Family or other caregivers"),
}
STATUSES: dict[str, str] = {
    "open": N_("Open"),
    "taken": N_("Taken on"),
    "closed": N_("Closed"),
    "setup": N_("Calling"),
    "ringing": N_("Ringing"),
    "connected": N_("In progress"),
    "ended": N_("Took place"),
    "failed": N_("Did not take place"),
}
END_REASONS: dict[str, str] = {
    "hangup_caller": N_("The call has ended."),
    "hangup_device": N_("The call was ended on the PC."),
    "offline": N_("The PC is switched off or not connected. Try again later."),
    "busy": N_("The PC is already in another call. Try again in a few minutes."),
    "timeout": N_("Nobody answered the call."),
    "no_response": N_("The PC did not respond. It may have just switched off."),
    "dropped": N_("The connection was lost and the call has ended."),
    "declined": N_("The call was not accepted on the PC."),
    "media": N_("The camera or microphone of the PC is not working."),
    "error": N_("The call could not be set up."),
    "forbidden": N_("You are not one of the caregivers of this person."),
    "auth": N_("Please log in again."),
}
assert set(END_MESSAGES) <= set(END_REASONS)  # every reason the relay sends has words here
EVENT_KINDS: dict[str, str] = {
    "created": N_("Opened"),
    "taken": N_("Taken on"),
    "assigned": N_("Handed over"),
    "note": N_("Note"),
    "notified": N_("Notified"),
    "notify_failed": N_("Notification failed"),
    "closed": N_("Closed"),
}
# What the quality table shows, from each end's stats.
QUALITY_ROWS: list[tuple[str, str, str]] = [
    ("rtt_ms", "roundTripTimeMs", N_("Round trip (ms)")),
    ("loss_in_pct", "packetLossPct", N_("Packets lost (per cent)")),
    ("kbps_in", "kbpsIn", N_("Receiving (kbit/s)")),
    ("kbps_out", "kbpsOut", N_("Sending (kbit/s)")),
    ("video_width_in", "frameWidth", N_("Picture width received")),
    ("video_height_in", "frameHeight", N_("Picture height received")),
    ("frames_received", "framesDecoded", N_("Frames received")),
]


def _person(page: Page, db: Session, beneficiary_id: int) -> Beneficiary:
    assert page.user is not None
    try:
        return beneficiary_for(db, page.user, beneficiary_id)
    except AccessDenied as exc:
        if exc.status_code == 404:
            raise PageError(
                page, 404, N_("Not found"), N_("This person is not in the list.")
            ) from exc
        raise PageError(
            page, 403, N_("No access"), N_("You are not one of the caregivers of this person.")
        ) from exc


def _agenda_context(page: Page, db: Session) -> dict[str, Any]:
    assert page.user is not None
    rows, known = agenda(db, page.user, utcnow())
    return {"rows": rows, "appointments_known": known, "live_src": "/care/_agenda"}


@router.get("")
def today(page: CarePage, db: SessionDep) -> Response:
    """The caregiver's people, their PCs' state right now, and a Call button each."""
    return page.render("care/today.html", **_agenda_context(page, db))


@router.get("/_agenda")
def today_rows(page: CarePage, db: SessionDep) -> Response:
    """The live part of the day's list."""
    return page.render_fragment("care/_agenda.html", **_agenda_context(page, db))


@router.get("/call/{beneficiary_id}")
def call_page(beneficiary_id: int, page: CarePage, db: SessionDep) -> Response:
    """The call page: the person full size, yourself small, one button to hang up."""
    person = _person(page, db, beneficiary_id)
    messages = {reason: page._(msgid) for reason, msgid in END_REASONS.items()}
    return page.render(
        "care/call.html",
        person=person,
        messages=messages,
        ws_path=f"/api/v1/care/calls/ws?beneficiary_id={person.id}",
    )


def _call(page: Page, db: Session, call_id: int) -> tuple[Call, Beneficiary]:
    call = db.get(Call, call_id)
    if call is None:
        raise PageError(page, 404, N_("Not found"), N_("There is no such call."))
    return call, _person(page, db, call.beneficiary_id)


def _quality(call: Call) -> list[tuple[str, float | None, float | None]]:
    device, browser = call.stats_device or {}, call.stats_browser or {}
    return [
        (label, device.get(dkey), browser.get(bkey))
        for dkey, bkey, label in QUALITY_ROWS
        if dkey in device or bkey in browser
    ]


@router.get("/calls/{call_id}")
def call_record(call_id: int, page: CarePage, db: SessionDep) -> Response:
    """One call: how it went, its quality from both ends, and the outcome form."""
    call, person = _call(page, db, call_id)
    caller = db.get(User, call.caller_id) if call.caller_id else None
    duration = (
        (call.ended_at - call.connected_at).total_seconds()
        if call.ended_at and call.connected_at
        else None
    )
    return page.render(
        "care/call_record.html",
        call=call,
        person=person,
        caller=caller,
        duration=duration,
        quality=_quality(call),
        status_label=page._(STATUSES.get(call.status, call.status)),
        reason_label=page._(END_REASONS[call.end_reason]) if call.end_reason in END_REASONS else "",
        targets=TARGETS,
        outcome=call.outcome,
    )


@router.post("/calls/{call_id}/outcome")
def post_outcome(
    call_id: int,
    request: Request,
    page: CarePage,
    db: SessionDep,
    kind: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    targets: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Record the outcome; problems open the escalations ticked."""
    call, person = _call(page, db, call_id)
    assert page.user is not None
    if call.outcome is not None:
        page.flash(page._("The outcome of this call was already recorded."), "error")
        return page.redirect(f"/care/calls/{call.id}")
    try:
        outcome_kind = OutcomeKind(kind)
        chosen = [Target(t) for t in targets or []]
    except ValueError:
        raise PageError(
            page, 400, N_("Something went wrong"), N_("Choose one of the options.")
        ) from None
    if outcome_kind is OutcomeKind.PROBLEM and not note.strip():
        page.flash(page._("Please write in a few words what the problem is."), "error")
        return page.redirect(f"/care/calls/{call.id}")
    if outcome_kind is OutcomeKind.WELL:
        chosen = []
    _outcome, opened = esc.record_outcome(
        db,
        user=page.user,
        beneficiary_id=person.id,
        kind=outcome_kind,
        note=note,
        call_id=call.id,
        escalations=[esc.EscalationRequest(t) for t in chosen],
    )
    db.commit()
    notifier = getattr(request.app.state, "care_notifier", None)
    if notifier is not None:
        for escalation in opened:
            notifier.submit(escalation.id)
    page.flash(
        page._("Thank you. The outcome is recorded.")
        + (" " + page._("The people concerned have been told.") if opened else "")
    )
    return page.redirect(f"/care/people/{person.id}")


@router.get("/people/{beneficiary_id}")
def person_page(beneficiary_id: int, page: CarePage, db: SessionDep) -> Response:
    """A person's history (calls, outcomes, escalations, missed wakes) and contact sheet."""
    person = _person(page, db, beneficiary_id)
    contacts = list(
        db.execute(
            select(Contact).where(Contact.beneficiary_id == person.id).order_by(Contact.kind)
        ).scalars()
    )
    return page.render(
        "care/person.html",
        person=person,
        items=timeline(db, person),
        contacts=contacts,
        statuses=STATUSES,
        targets=TARGETS,
        reasons=END_REASONS,
    )


def _escalation(page: Page, db: Session, escalation_id: int) -> tuple[Escalation, Beneficiary]:
    escalation = db.get(Escalation, escalation_id)
    if escalation is None:
        raise PageError(page, 404, N_("Not found"), N_("There is no such escalation."))
    return escalation, _person(page, db, escalation.beneficiary_id)


def _queue_context(page: Page, db: Session) -> dict[str, Any]:
    assert page.user is not None
    query = select(Escalation).where(Escalation.status != EscalationStatus.CLOSED.value)
    ids = visible_beneficiary_ids(db, page.user)
    if ids is not None:
        query = query.where(Escalation.beneficiary_id.in_(ids))
    rows = list(
        db.execute(
            query.order_by(Escalation.urgent.desc(), Escalation.created_at, Escalation.id)
        ).scalars()
    )
    people = {
        b.id: b.name
        for b in db.execute(
            select(Beneficiary).where(Beneficiary.id.in_({e.beneficiary_id for e in rows}))
        ).scalars()
    }
    owners = {
        u.id: u.name
        for u in db.execute(
            select(User).where(User.id.in_({e.owner_id for e in rows if e.owner_id}))
        ).scalars()
    }
    return {
        "rows": rows,
        "people": people,
        "owners": owners,
        "targets": TARGETS,
        "statuses": STATUSES,
        "live_src": "/care/escalations/_rows",
    }


@router.get("/escalations")
def escalation_queue(page: CoordinatorPage, db: SessionDep) -> Response:
    """The coordinators' queue: urgent first, then the oldest."""
    return page.render("care/escalations.html", **_queue_context(page, db))


@router.get("/escalations/_rows")
def escalation_rows(page: CoordinatorPage, db: SessionDep) -> Response:
    """The live part of the queue."""
    return page.render_fragment("care/_escalation_rows.html", **_queue_context(page, db))


@router.get("/escalations/{escalation_id}")
def escalation_page(escalation_id: int, page: CarePage, db: SessionDep) -> Response:
    """One escalation and its timeline."""
    escalation, person = _escalation(page, db, escalation_id)
    names = {
        u.id: u.name
        for u in db.execute(
            select(User).where(
                User.id.in_(
                    {e.actor_id for e in escalation.events if e.actor_id}
                    | {escalation.owner_id or 0}
                )
            )
        ).scalars()
    }
    contacts = esc.contacts_for(db, person.id, Target(escalation.target))
    assert page.viewer is not None
    return page.render(
        "care/escalation.html",
        escalation=escalation,
        person=person,
        names=names,
        contacts=contacts,
        targets=TARGETS,
        statuses=STATUSES,
        event_kinds=EVENT_KINDS,
        may_handle=page.viewer.role in SEE_ALL,
    )


@router.post("/escalations/{escalation_id}/{action}")
def escalation_action(
    escalation_id: int,
    action: str,
    page: CarePage,
    db: SessionDep,
    text: Annotated[str, Form()] = "",
) -> Response:
    """Take on, add a note, close."""
    escalation, _ = _escalation(page, db, escalation_id)
    assert page.user is not None

    try:
        if action == "take":
            esc.take(db, escalation, page.user)
        elif action == "note":
            esc.add_note(db, escalation, page.user, text)
        elif action == "close":
            esc.close(db, escalation, page.user, text)
        else:
            raise PageError(page, 404, N_("Not found"), N_("There is no such escalation."))
    except HTTPException as exc:
        page.flash(str(exc.detail), "error")
        return page.redirect(f"/care/escalations/{escalation.id}")
    db.commit()
    return page.redirect(f"/care/escalations/{escalation.id}")


def install(ctx: FeatureContext) -> None:
    """Mount the pages (the nav entries are registered at import)."""
    ctx.app.include_router(router)
