"""The home page: a greeting and one card per page this person may open."""

from __future__ import annotations

from fastapi import Response

from ..pages import UserPage, console_router

router = console_router()


@router.get("/")
def home(page: UserPage) -> Response:
    """Greet the person and show the cards for their role."""
    local_hour = page.now.astimezone(page.console.tz).hour
    greeting = (
        page._("Good evening") if local_hour >= 17 or local_hour < 4 else page._("Good morning")
    )
    cards = [item for item in page.nav() if item.path != "/"]
    return page.render("home.html", greeting=greeting, cards=cards)
