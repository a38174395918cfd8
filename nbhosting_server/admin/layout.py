"""The staff pages' frame: the navigation (what the principal may see), a flash message after an action, and the
stylesheet the app serves itself (``/_nbh/static/admin.css``, immutable: its URL names its content's hash).

A flash message is carried by a short cookie (``nbh-flash``, HttpOnly, SameSite=Strict, path ``/admin``) from the
action that sets it to the page it redirects to, which shows it (escaped) and clears it: nothing in the URL, so a
link cannot make a page say something.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from nbhosting_core.roles import Permission, Principal, allowed, allowed_anywhere

from .auth import csrf_token
from .csrf import FIELD
from .formats import esc
from .forms import safe_next
from .page import admin_page

STYLESHEET = (Path(__file__).parent.parent / "static" / "admin.css").read_bytes()
STYLESHEET_PATH = "/_nbh/static/admin.css"
#: the stylesheet's URL names its content: a new version is a new URL, so browsers may keep it forever
STYLESHEET_URL = f"{STYLESHEET_PATH}?v={hashlib.sha256(STYLESHEET).hexdigest()[:12]}"
FLASH_COOKIE = "nbh-flash"
FLASH_MAX = 300

#: the navigation: (path, label, permission, host-wide only)
NAV: tuple[tuple[str, str, Permission | None, bool], ...] = (
    ("/admin/", "Home", None, False),
    ("/admin/courses", "Courses", Permission.VIEW_COURSES, False),
    ("/admin/servers", "Servers", Permission.VIEW_SERVERS, False),
    ("/admin/students", "Students", Permission.VIEW_STUDENTS, False),
    ("/admin/events", "Events", Permission.VIEW_EVENTS, False),
    ("/admin/host", "Host", Permission.MANAGE_HOST, True),
)


async def stylesheet(request: Request) -> Response:
    """GET /_nbh/static/admin.css: the staff pages' stylesheet (cached for a year: its URL changes with it)."""
    return Response(
        STYLESHEET,
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"},
    )


def nav_links(principal: Principal) -> list[tuple[str, str]]:
    """The (path, label) of the pages ``principal`` may open, in the navigation's order."""
    links = []
    for path, label, permission, host_only in NAV:
        if permission is None or (
            allowed(principal, permission) if host_only else allowed_anywhere(principal, permission)
        ):
            links.append((path, label))
    return links


def navigation(request: Request, principal: Principal) -> str:
    """The navigation bar: the pages ``principal`` may open (the current one marked), who they are, log out."""
    here = request.url.path
    items = []
    for path, label in nav_links(principal):
        current = here == path or (path != "/admin/" and here.startswith(path))
        mark = ' class="here" aria-current="page"' if current else ""
        items.append(f'<a href="{path}"{mark}>{esc(label)}</a>')
    logout = (
        '<form class="inline" method="post" action="/admin/logout">'
        f'<input type="hidden" name="{FIELD}" value="{esc(csrf_token(request))}">'
        '<button type="submit">Log out</button></form>'
        if principal.via == "session"
        else ""
    )
    who = f'<span class="who">{esc(principal.username)} ({esc(principal.role.value)})</span>'
    return f'<nav class="staff" aria-label="staff pages">{"".join(items)}{who}{logout}</nav>'


def staff_page(
    request: Request, principal: Principal, title: str, body: str, *, head: str = "", status: int = 200
) -> HTMLResponse:
    """A staff page: the navigation, the flash message if one came with the request, then ``body`` (trusted
    markup: escape what goes in it); ``title`` is escaped."""
    flash = flash_of(request)
    shown = ""
    if flash is not None:
        error, message = flash
        shown = f'<p class="flash{" error" if error else ""}" role="status">{esc(message)}</p>'
    response = admin_page(
        title,
        navigation(request, principal) + shown + body,
        status=status,
        kind="wide",
        head=f'<link rel="stylesheet" href="{STYLESHEET_URL}">{head}',
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/admin", secure=request.url.scheme == "https", httponly=True)
    return response


def redirect_with_flash(request: Request, to: str, message: str, *, error: bool = False) -> RedirectResponse:
    """303 to ``to`` (a local path, else the landing page), which shows ``message`` once."""
    response = RedirectResponse(safe_next(to), status_code=303, headers={"Cache-Control": "no-store"})
    value = ("!" if error else "+") + message[:FLASH_MAX]
    response.set_cookie(
        FLASH_COOKIE,
        urllib.parse.quote(value, safe=""),
        max_age=60,
        path="/admin",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


def flash_of(request: Request) -> tuple[bool, str] | None:
    """(is it an error, the message) the request's flash cookie carries, if any."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or len(raw) > 4 * FLASH_MAX:
        return None
    value = urllib.parse.unquote(raw)
    if value[:1] not in ("!", "+"):
        return None
    return value[0] == "!", value[1 : FLASH_MAX + 1]
