"""``/admin/login`` (a form; a session cookie on success) and ``/admin/logout``.

A login's answer never says whether the user name exists ("wrong user name or password"); too many failures for a
user name or an address answer 429 with Retry-After, without checking the password. The form is read with a bound
(:data:`~.forms.FORM_LIMIT`) and must come from the site itself (``Origin`` / ``Sec-Fetch-Site``, when the browser
sends them): another site cannot log a browser in to an account of its choosing.
"""

from __future__ import annotations

import html
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from nbhosting_core.errors import LoginThrottled
from nbhosting_core.throttle import retry_after_header

from .auth import (
    LOGIN_PATH,
    authenticated,
    check_origin,
    clear_session_cookie,
    session_of,
    set_session_cookie,
    store_of,
)
from .forms import form_of, safe_next
from .page import admin_page
from .refusals import AdminRefused

log = logging.getLogger(__name__)


def login_page(next_path: str, *, username: str = "", error: str = "", status: int = 200) -> HTMLResponse:
    """The login form, with ``error`` above it (escaped), coming back to ``next_path`` after it."""
    alert = f'<p class="alert" role="alert">{html.escape(error)}</p>' if error else ""
    body = (
        "<h1>Staff login</h1>"
        f"{alert}"
        f'<form class="stacked" method="post" action="{LOGIN_PATH}">'
        f'<input type="hidden" name="next" value="{html.escape(safe_next(next_path))}">'
        '<label for="username">User name</label>'
        f'<input id="username" name="username" type="text" autocomplete="username" required maxlength="64" '
        f'autofocus value="{html.escape(username)}">'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required '
        'maxlength="1024">'
        '<button type="submit">Log in</button></form>'
        '<p class="muted">For nbhosting\'s staff. Students open notebooks from their course.</p>'
    )
    return admin_page("Staff login", body, status=status)


async def login_form(request: Request) -> Response:
    """GET /admin/login: the form."""
    return login_page(request.query_params.get("next", ""))


async def login(request: Request) -> Response:
    """POST /admin/login: check the user name and password; a session cookie and on to ``next`` on success."""
    store = store_of(request)
    if store is None:
        raise AdminRefused(404, "There are no staff accounts here.")
    check_origin(request)
    form = await form_of(request)
    username, password = form.get("username", "").strip(), form.get("password", "")
    next_path = safe_next(form.get("next"))
    client = request.client.host if request.client else "unknown"
    try:
        principal = await run_in_threadpool(store.authenticate, username, password, client)
    except LoginThrottled as exc:
        wait = retry_after_header(exc.retry_after)
        response = login_page(
            next_path, username=username, error=f"Too many failed logins: try again in {wait} s.", status=429
        )
        response.headers["Retry-After"] = str(wait)
        return response
    if principal is None:
        return login_page(next_path, username=username, error="Wrong user name or password.", status=401)
    old = session_of(request)
    if old is not None:
        await run_in_threadpool(store.end_session, old)
    session = await run_in_threadpool(store.create_session, principal.staff_id)
    redirect = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    set_session_cookie(redirect, request, session)
    return redirect


async def logout(request: Request) -> Response:
    """POST /admin/logout (with the session's CSRF token): end the session, forget the cookie."""
    store = store_of(request)
    principal = await authenticated(request)
    session = session_of(request)
    if store is not None and session is not None and principal.via == "session":
        await run_in_threadpool(store.end_session, session)
        log.info("%s logged out", principal.username)
    response = RedirectResponse(LOGIN_PATH, status_code=303, headers={"Cache-Control": "no-store"})
    clear_session_cookie(response, request)
    return response
