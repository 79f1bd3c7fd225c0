"""The console's navigation: feature modules register their pages, the layout shows them.

A feature adds its page with one call at import time, without touching ``base.html``::

    register_nav("/calls", N_("Today's calls"), [Role.CAREGIVER], description_msgid=N_("..."))
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Role


@dataclass(frozen=True)
class NavItem:
    """One page in the navigation and a card on the home page."""

    path: str
    label_msgid: str
    roles: frozenset[str]
    description_msgid: str = ""
    order: int = 100

    def visible_to(self, role: str) -> bool:
        """True when a person with ``role`` may open this page (admins see every page)."""
        return role == Role.ADMIN.value or role in self.roles


_items: dict[str, NavItem] = {}
_lock = threading.Lock()


def register_nav(
    path: str,
    label_msgid: str,
    roles: Iterable[Role | str],
    *,
    description_msgid: str = "",
    order: int = 100,
) -> NavItem:
    """Add (or replace, by path) a page in the navigation; mark the msgids with ``N_``."""
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError(f"path: must be a local path starting with '/', got {path!r}")
    if not label_msgid:
        raise ValueError("label_msgid: must not be empty")
    role_values: set[str] = set()
    for role in roles:
        try:
            role_values.add(Role(role).value)
        except ValueError as exc:
            raise ValueError(f"roles: {role!r} is not a role") from exc
    item = NavItem(path, label_msgid, frozenset(role_values), description_msgid, order)
    with _lock:
        _items[path] = item
    return item


def unregister_nav(path: str) -> None:
    """Remove a page from the navigation (tests, features switched off)."""
    with _lock:
        _items.pop(path, None)


def nav_for(role: str) -> list[NavItem]:
    """The pages ``role`` may open, in display order."""
    with _lock:
        items = list(_items.values())
    return sorted((i for i in items if i.visible_to(role)), key=lambda i: (i.order, i.path))


def current_nav(items: list[NavItem], path: str) -> str | None:
    """The menu entry ``path`` belongs to: the longest entry path it is, or is under.

    "/people/users/3" is under "/people" and "/people/users": the menu marks the second only.
    """
    matching = [i.path for i in items if path == i.path or path.startswith(i.path + "/")]
    return max(matching, key=len, default=None)
