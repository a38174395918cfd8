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

from . import coursepages, serverpages, statpages, studentpages
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
from .layout import STYLESHEET_PATH, stylesheet
from .login import login, login_form, logout
from .page import admin_page
from .refusals import AdminRefused


def routes() -> list[Route]:
    """``/admin/login`` (GET, POST), ``/admin/logout`` (POST), ``/admin/`` (GET), the staff pages (see the README's
    "Admin pages"), and their stylesheet ``/_nbh/static/admin.css``."""
    return [
        Route("/admin/login", login_form, methods=["GET"]),
        Route("/admin/login", login, methods=["POST"]),
        Route("/admin/logout", logout, methods=["POST"]),
        Route("/admin/", home, methods=["GET"]),
        Route("/admin/courses", coursepages.courses, methods=["GET"]),
        Route("/admin/courses/{course}", coursepages.course, methods=["GET"]),
        Route("/admin/courses/{course}/try", coursepages.try_notebook, methods=["POST"]),
        Route("/admin/courses/{course}/try", coursepages.try_status, methods=["GET"]),
        Route("/admin/courses/{course}/statistics", statpages.course_statistics_page, methods=["GET"]),
        Route("/admin/host", statpages.host_page, methods=["GET"]),
        Route("/admin/servers", serverpages.servers, methods=["GET"]),
        Route("/admin/servers/{course}/{student}/stop", serverpages.stop, methods=["POST"]),
        Route("/admin/servers/{course}/{student}/restart", serverpages.restart, methods=["POST"]),
        Route("/admin/servers/{course}/{student}/logs", serverpages.logs, methods=["GET"]),
        Route("/admin/students", studentpages.students_page, methods=["GET"]),
        Route("/admin/students/{student}", studentpages.student_page, methods=["GET"]),
        Route("/admin/events", studentpages.events_page, methods=["GET"]),
        Route(STYLESHEET_PATH, stylesheet, methods=["GET"]),
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
