"""The cooperative's stock: goods taken in exchange, refurbished PCs from the workshop."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit
from ..db import utcnow
from ..models import User
from .errors import Conflict, Invalid, NotFound
from .models import GoodStatus, ServiceRequest, StockItem, StockSource, StockStatus

# Which status may follow which: a sold or disposed item stays so.
_NEXT = {
    StockStatus.AVAILABLE: {StockStatus.RESERVED, StockStatus.SOLD, StockStatus.DISPOSED},
    StockStatus.RESERVED: {StockStatus.AVAILABLE, StockStatus.SOLD, StockStatus.DISPOSED},
    StockStatus.SOLD: set(),
    StockStatus.DISPOSED: set(),
}


def next_statuses(current: StockStatus) -> list[StockStatus]:
    """The states an item in ``current`` may move to, in the enum's order."""
    return [status for status in StockStatus if status in _NEXT[current]]


def goods_to_stock(session: Session, request: ServiceRequest) -> list[StockItem]:
    """Turn the request's accepted goods into stock items (once: a good is stocked only once)."""
    items = []
    for good in request.goods:
        if good.status != GoodStatus.ACCEPTED.value:
            continue
        if session.scalar(select(StockItem.id).where(StockItem.good_id == good.id)) is not None:
            continue
        item = StockItem(
            source=StockSource.BARTER.value,
            good_id=good.id,
            kind=good.kind,
            title=good.title,
            description=good.description,
            value_cents=good.value_cents or 0,
        )
        session.add(item)
        items.append(item)
    session.flush()
    return items


def add_item(
    session: Session,
    *,
    source: str,
    kind: str,
    title: str,
    description: str = "",
    value_cents: int = 0,
    workshop_ref: str = "",
    actor: User,
) -> StockItem:
    """Put an item in the stock by hand (a refurbished PC, a donation)."""
    if source == StockSource.BARTER.value:
        raise Invalid("source", "bartered goods enter the stock when their job is done")
    if source == StockSource.WORKSHOP.value and not workshop_ref.strip():
        raise Invalid("workshop_ref", "give the workshop's asset tag of the machine")
    if workshop_ref and session.scalar(
        select(StockItem.id).where(StockItem.workshop_ref == workshop_ref.strip())
    ):
        raise Conflict("workshop_ref", f"{workshop_ref} is already in the stock")
    item = StockItem(
        source=StockSource(source).value,
        kind=kind,
        title=title,
        description=description,
        value_cents=value_cents,
        workshop_ref=workshop_ref.strip(),
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        action="market.stock.add",
        object_type="market_stock",
        object_id=item.id,
        actor=actor,
        data={"source": item.source, "workshop_ref": item.workshop_ref},
    )
    return item


def get_item(session: Session, item_id: int) -> StockItem:
    """The stock item with ``item_id``; :class:`NotFound` if none."""
    item = session.get(StockItem, item_id)
    if item is None:
        raise NotFound("item", f"no stock item with id {item_id}")
    return item


def set_status(session: Session, item: StockItem, status: str, *, actor: User) -> StockItem:
    """Reserve, sell or dispose of an item (or make a reserved one available again)."""
    current, wanted = StockStatus(item.status), StockStatus(status)
    if wanted == current:
        return item
    if wanted not in _NEXT[current]:
        raise Conflict("status", f"an item that is {current.value} cannot become {wanted.value}")
    item.status = wanted.value
    item.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        action="market.stock.status",
        object_type="market_stock",
        object_id=item.id,
        actor=actor,
        data={"from": current.value, "to": wanted.value},
    )
    return item


def list_items(
    session: Session, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[StockItem]:
    """Stock items, newest first."""
    query = select(StockItem)
    if status is not None:
        query = query.where(StockItem.status == status)
    return list(
        session.scalars(
            query.order_by(StockItem.created_at.desc(), StockItem.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
