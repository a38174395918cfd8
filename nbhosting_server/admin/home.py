"""``/admin/``: the staff's landing page: who is logged in, the pages they may open (the navigation, with what each
shows), their courses, and what they may do where."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import Response

from nbhosting_core.roles import Permission, Principal, allowed

from .auth import authenticated, csrf_token
from .formats import segment
from .layout import nav_links, staff_page

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


#: what each page of the navigation shows
PAGES = {
    "/admin/courses": "their state, commit, last pull, notebooks; try a notebook",
    "/admin/servers": "students' servers: age, idle time, memory, image; stop, restart, logs",
    "/admin/students": "the students seen, their workspaces, servers and events",
    "/admin/events": "opens, failures, stops, culls, newest first",
    "/admin/host": "the host's servers, kernels, memory, load and disk over time",
}


async def home(request: Request) -> Response:
    """GET /admin/: who you are, where you may go, and what you may do where."""
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
    pages = "".join(
        f'<li><a href="{path}">{html.escape(label)}</a>: {html.escape(PAGES[path])}</li>'
        for path, label in nav_links(principal)
        if path in PAGES
    )
    courses = "".join(
        f'<li><a href="/admin/courses/{html.escape(segment(c))}">{html.escape(c)}</a></li>'
        for c in sorted(principal.courses)
        if allowed(principal, Permission.VIEW_COURSES, c)
    )
    body = (
        "<h1>nbhosting staff</h1>"
        f"<p>Logged in as <strong>{html.escape(principal.username)}</strong> ({principal.role.value}).</p>"
        + (f'<h2>Pages</h2><ul class="pages">{pages}</ul>' if pages else "")
        + (f"<h2>Your courses</h2><ul>{courses}</ul>" if courses else "")
        + f"<h2>Your permissions</h2>{table}"
    )
    head = f'<meta name="csrf-token" content="{html.escape(csrf_token(request))}">'
    return staff_page(request, principal, "nbhosting staff", body, head=head)
