"""``/admin/``: the staff's landing page: who is logged in, and what they may see and do (the admin pages link from
here)."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import Response

from nbhosting_core.roles import Permission, Principal, allowed

from .auth import authenticated, csrf_token
from .csrf import FIELD
from .page import admin_page

#: what each permission means to a person
LABELS = {
    Permission.VIEW_COURSES: "see courses",
    Permission.VIEW_SERVERS: "see students' servers",
    Permission.ACT_ON_SERVERS: "stop and restart servers",
    Permission.VIEW_LOGS: "read servers' logs",
    Permission.VIEW_STUDENTS: "see students and their workspaces",
    Permission.VIEW_EVENTS: "see events",
    Permission.VIEW_STATISTICS: "see statistics",
    Permission.TRY_NOTEBOOK: "try a notebook as a student",
    Permission.MANAGE_HOST: "manage the host: every course, metrics, staff",
}


def _scope(principal: Principal, permission: Permission) -> str:
    if allowed(principal, permission):
        return "every course"
    courses = sorted(c for c in principal.courses if allowed(principal, permission, c))
    return ", ".join(courses)


async def home(request: Request) -> Response:
    """GET /admin/: who you are, and what you may do where."""
    principal = await authenticated(request)
    rows = []
    for permission in Permission:
        scope = _scope(principal, permission)
        if scope:
            rows.append(f"<tr><td>{html.escape(LABELS[permission])}</td><td>{html.escape(scope)}</td></tr>")
    table = (
        f'<table class="perms"><tr><th>You may</th><th>in</th></tr>{"".join(rows)}</table>'
        if rows
        else "<p>Your account may not see anything yet: ask an admin for your courses.</p>"
    )
    logout = (
        '<form class="inline" method="post" action="/admin/logout">'
        f'<input type="hidden" name="{FIELD}" value="{html.escape(csrf_token(request))}">'
        '<button type="submit">Log out</button></form>'
        if principal.via == "session"
        else ""
    )
    body = (
        "<h1>nbhosting staff</h1>"
        f"<p>Logged in as <strong>{html.escape(principal.username)}</strong> ({principal.role.value}).</p>"
        f"{table}{logout}"
    )
    head = f'<meta name="csrf-token" content="{html.escape(csrf_token(request))}">'
    return admin_page("nbhosting staff", body, head=head)
