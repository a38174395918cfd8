"""The admin surface's web layer: staff logins, sessions, CSRF, and the check every admin route makes.

For a route of the admin pages or the API (a principal may do ``permission`` on ``course``)::

    from nbhosting_server.admin import require
    from nbhosting_core.roles import Permission

    async def stop_server(request):
        principal = await require(request, Permission.ACT_ON_SERVERS, course)   # 401 / 403 raised as AdminRefused
        ...

A listing asks :func:`require_anywhere` and filters with :func:`nbhosting_core.roles.visible_courses`. A form of a
page carries ``<input type="hidden" name="csrf" value="{csrf_token(request)}">`` and is read with :func:`form_of`
(bounded; :func:`require` has already checked its token on a write). A page's script calling the API with the
session sends ``X-CSRF-Token`` (the landing page has it in ``<meta name="csrf-token">``).

The app's store is ``request.app.state.staff`` (:class:`nbhosting_core.staff.StaffStore`), its database
``request.app.state.database``; :func:`routes` are the login, logout and landing pages, mounted by ``create_app``
when it is given a database.
"""

from __future__ import annotations

from starlette.routing import Route

from .auth import (
    authenticated,
    cookie_name,
    csrf_token,
    principal_of,
    refused_response,
    require,
    require_anywhere,
    store_of,
)
from .forms import FORM_LIMIT, form_of, safe_next
from .home import home
from .login import login, login_form, logout
from .page import admin_page
from .refusals import AdminRefused


def routes() -> list[Route]:
    """``/admin/login`` (GET, POST), ``/admin/logout`` (POST), ``/admin/`` (GET)."""
    return [
        Route("/admin/login", login_form, methods=["GET"]),
        Route("/admin/login", login, methods=["POST"]),
        Route("/admin/logout", logout, methods=["POST"]),
        Route("/admin/", home, methods=["GET"]),
    ]


__all__ = [
    "AdminRefused",
    "FORM_LIMIT",
    "admin_page",
    "authenticated",
    "cookie_name",
    "csrf_token",
    "form_of",
    "principal_of",
    "refused_response",
    "require",
    "require_anywhere",
    "routes",
    "safe_next",
    "store_of",
]
