"""The console pages of donations: the intake form (items one by one, or a pallet's
manifest), the list, and a donation's page with its labels and erasure summary."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import UploadFile

from ..api.deps import SessionDep
from ..db import transaction
from ..models import User
from ..web.pages import Page, console_router
from . import service
from .api import ConfigDep
from .config import WorkshopConfig
from .errors import WorkshopError, from_validation
from .intake import ItemKind
from .models import Donation
from .pages import ReaderPage, StaffPage, common, config_of, not_found_page
from .schemas import DonationCreate, donation_spec

router = console_router(prefix="/workshop")

_INTAKE_ROWS = 3
_MAX_MANIFEST_BYTES = 500_000


@router.get("/donations")
def donations(page: ReaderPage, db: SessionDep) -> Response:
    """Donations, newest first."""
    rows = list(db.execute(select(Donation).order_by(Donation.id.desc()).limit(200)).scalars())
    return page.render("workshop/donations.html", **common(page, rows=rows))


def _intake_form(page: Page, config: WorkshopConfig) -> dict[str, Any]:
    return common(
        page,
        kinds=[k.value for k in ItemKind],
        rows=range(_INTAKE_ROWS),
        today=service.workshop_today(config).isoformat(),
    )


@router.get("/donations/new")
def new_donation(page: StaffPage, config: ConfigDep) -> Response:
    """The intake form: the donor, their consent, the items or a pallet's manifest."""
    return page.render(
        "workshop/donation_form.html", **_intake_form(page, config), errors={}, form={}
    )


async def _read_manifest(upload: Any) -> str:
    if not isinstance(upload, UploadFile) or not upload.filename:
        return ""
    data = await upload.read(_MAX_MANIFEST_BYTES + 1)
    if len(data) > _MAX_MANIFEST_BYTES:
        raise WorkshopError(
            422, "manifest_file", "the file is too large", "il file è troppo grande"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkshopError(
            422,
            "manifest_file",
            "save the file as CSV in UTF-8",
            "salvare il file come CSV in UTF-8",
        ) from None


def _items_from_form(form: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for row in range(_INTAKE_ROWS):
        values = {
            name: form.get(f"{name}_{row}", "").strip()
            for name in ("kind", "manufacturer", "model", "serial_number", "weight_kg")
        }
        if not any(v for k, v in values.items() if k != "kind"):
            continue  # an untouched row
        weight = values["weight_kg"].replace(",", ".")
        item: dict[str, Any] = {**values, "weight_kg": weight or None, "row": row}
        if not item["kind"]:
            del item["kind"]  # the model's default
        items.append(item)
    return items


@router.post("/donations/new")
async def receive_donation(request: Request, page: StaffPage) -> Response:
    """Receive the donation and go to its page, with the labels to print."""
    config = config_of(request)
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    user_id = page.viewer.id if page.viewer else 0
    try:
        manifest = form.get("manifest_csv", "").strip() or await _read_manifest(
            raw.get("manifest_file")
        )
        donation_id = await run_in_threadpool(_receive, request, config, user_id, form, manifest)
    except WorkshopError as exc:
        await raw.close()
        field = _form_field(exc.field)
        return page.render(
            "workshop/donation_form.html",
            status_code=exc.status if exc.status in (409, 422) else 422,
            **_intake_form(page, config),
            errors={field: exc.message(page.lang)},
            form=form,
        )
    # The uploaded file is spooled to disk; close it now rather than at garbage collection.
    await raw.close()
    page.flash(page._("Donation received. Print the labels and stick one on each item."))
    return page.redirect(f"/workshop/donations/{donation_id}")


def _form_field(field: str) -> str:
    # "items[1].serial_number" is the second filled row; the form shows it on that row.
    if field.startswith("items[") and "]." in field:
        index, _, name = field[len("items[") :].partition("].")
        return f"item:{index}:{name}"
    if field.startswith("manifest"):
        return "manifest_csv"
    return field


def _receive(
    request: Request, config: WorkshopConfig, user_id: int, form: dict[str, str], manifest: str
) -> int:
    items = _items_from_form(form)
    if items and manifest:
        raise WorkshopError(
            422,
            "manifest_csv",
            "give the items or a manifest, not both",
            "indicare gli oggetti oppure il file, non entrambi",
        )
    if not items and not manifest:
        raise WorkshopError(
            422,
            "items",
            "describe at least one item, or attach the pallet's manifest",
            "descrivere almeno un oggetto, oppure allegare l'elenco del bancale",
        )
    try:
        received_on = dt.date.fromisoformat(form.get("received_on", "").strip())
    except ValueError:
        raise WorkshopError(
            422, "received_on", "give the date of the donation", "indicare la data della donazione"
        ) from None
    data = {
        "donor": form.get("donor", "").strip(),
        "donor_contact": form.get("donor_contact", "").strip(),
        "received_on": received_on,
        "consent_erase_reuse": form.get("consent_erase_reuse") == "yes",
        "notes": form.get("notes", "").strip(),
        "items": [{k: v for k, v in item.items() if k != "row"} for item in items],
        "manifest_csv": manifest or None,
    }
    try:
        body = DonationCreate.model_validate(data)
    except ValidationError as exc:
        raise _row_error(from_validation(exc.errors()), items) from None
    with transaction(request.app.state.sessionmaker) as db:
        user = db.get(User, user_id)
        assert user is not None
        spec = donation_spec(body, service.workshop_today(config))
        try:
            donation = service.receive_donation(db, config, spec=spec, user=user, notes=body.notes)
        except WorkshopError as exc:
            raise _row_error(exc, items) from exc
        return donation.id


def _row_error(exc: WorkshopError, items: list[dict[str, Any]]) -> WorkshopError:
    # Errors name the n-th *filled* row; the form shows them on the row the person typed in.
    if not exc.field.startswith("items[") or not items:
        return exc
    index, _, rest = exc.field[len("items[") :].partition("]")
    if index.isdigit() and int(index) < len(items):
        field = f"items[{items[int(index)]['row']}]{rest}"
        return WorkshopError(exc.status, field, exc.message_en, exc.message_it, code=exc.code)
    return exc


@router.get("/donations/{donation_id}")
def donation_page(donation_id: int, page: ReaderPage, db: SessionDep) -> Response:
    """A donation: its machines, their labels and the erasure summary."""
    try:
        donation = service.get_donation(db, donation_id)
    except WorkshopError as exc:
        raise not_found_page(page, exc) from exc
    return page.render("workshop/donation.html", **common(page, donation=donation))
