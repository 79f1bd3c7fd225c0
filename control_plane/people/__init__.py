"""People: accounts, beneficiaries, their PC and their caregivers.

``accounts`` and ``beneficiaries`` hold the checks and the changes (audited); ``api`` and the
console pages (``pages``, ``pages_users``) are the ways in. Administrators manage accounts;
administrators and coordinators manage beneficiaries; caregivers read their own people.
"""

from __future__ import annotations

from ..features import FeatureContext
from .errors import InputError, Problem


def install(ctx: FeatureContext) -> None:
    """Mount the API and the console pages."""
    from .api import input_error_handler, router

    ctx.api.include_router(router)
    ctx.app.add_exception_handler(InputError, input_error_handler)
    try:
        from . import pages, pages_users
    except ImportError:  # the console is not part of this build
        return
    # Accounts first: "/people/users" must not be taken for a beneficiary's number.
    ctx.app.include_router(pages_users.router)
    ctx.app.include_router(pages.router)


__all__ = ["InputError", "Problem", "install"]
