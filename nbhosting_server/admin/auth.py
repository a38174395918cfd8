"""Who a request acts for, and the one check every admin route and API call makes: :func:`require`.

A request is a staff member's when it carries

* ``Authorization: Bearer nbh_…``: an API token (made by ``nbh token create``); or else
* the session cookie set by ``/admin/login``: ``__Host-nbh-staff`` over https (Secure, HttpOnly,
  SameSite=Strict, Path=/, no Domain). Browsers refuse a ``__Host-`` cookie that is not Secure, and a Secure
  cookie over plain http (a test on localhost), so over http the cookie is ``nbh-staff``, the same without Secure.
  Behind Caddy the app sees https (uvicorn's proxy headers), and only the ``__Host-`` name is read.

A request with an ``Authorization`` header is judged by it alone (a bad token is no principal, whatever cookie
comes with it). A write (any method but GET, HEAD, OPTIONS) through a session must also come from the site itself
(``Origin``, ``Sec-Fetch-Site``, when the browser sends them) and carry the session's CSRF token (a form's ``csrf``
field, or an ``X-CSRF-Token`` header): :func:`require` checks both before the permission.

Refusals are :class:`AdminRefused`, which the app turns into JSON under ``/api/`` and into a page elsewhere (a
401 for a page is a redirect to the login page, coming back to the same local path after it).
"""

from __future__ import annotations

import logging
import urllib.parse

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from nbhosting_core.roles import Permission, Principal, allowed, allowed_anywhere
from nbhosting_core.staff import SESSION_MAX, StaffStore

from .. import pages
from .csrf import FIELD, HEADER, csrf_for, csrf_ok, same_origin
from .forms import form_of, safe_next
from .page import protect
from .refusals import AdminRefused

log = logging.getLogger(__name__)

SECURE_COOKIE = "__Host-nbh-staff"
PLAIN_COOKIE = "nbh-staff"
LOGIN_PATH = "/admin/login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: the ``error`` slug of a refusal's JSON, by status
REFUSALS = {
    400: "invalid-input",
    401: "unauthenticated",
    403: "forbidden",
    413: "too-large",
    415: "unsupported-media-type",
    429: "throttled",
}


def cookie_name(request: Request) -> str:
    """The session cookie's name on this request's scheme (``__Host-`` only over https)."""
    return SECURE_COOKIE if request.url.scheme == "https" else PLAIN_COOKIE


def session_of(request: Request) -> str | None:
    """The session token the request's cookie holds, if any (never logged)."""
    value = request.cookies.get(cookie_name(request))
    return value if value and value.isascii() and len(value) <= 128 else None


def set_session_cookie(response: Response, request: Request, session: str) -> None:
    """Give the browser its session cookie (see the module's docstring for its attributes)."""
    response.set_cookie(
        cookie_name(request),
        session,
        max_age=int(SESSION_MAX),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    """Make the browser forget its session cookie."""
    response.delete_cookie(
        cookie_name(request), path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )


def store_of(request: Request) -> StaffStore | None:
    """The app's staff store (``app.state.staff``); None when the app has no database."""
    store = getattr(request.app.state, "staff", None)
    return store if isinstance(store, StaffStore) else None


def _secret(request: Request) -> bytes:
    secret = request.app.state.gate.secret
    assert isinstance(secret, bytes)
    return secret


async def principal_of(request: Request) -> Principal | None:
    """Who the request acts for: a bearer token's principal, else the session cookie's; None if neither is valid
    (or the app has no database). Asked once per request (kept in ``request.state``)."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    store = store_of(request)
    principal: Principal | None = None
    if store is not None:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                principal = await run_in_threadpool(store.token_principal, token.strip())
        else:
            session = session_of(request)
            if session is not None:
                principal = await run_in_threadpool(store.session_principal, session)
    request.state.principal = principal
    return principal


def csrf_token(request: Request) -> str:
    """The CSRF token forms of this request's session carry (in a hidden ``csrf`` field); "" without a session."""
    session = session_of(request)
    return csrf_for(_secret(request), session) if session is not None else ""


def check_origin(request: Request) -> None:
    """Refuse (403) a write that a browser says comes from another site."""
    own = f"{request.url.scheme}://{request.url.netloc}"
    if not same_origin(own, request.headers.get("origin"), request.headers.get("sec-fetch-site")):
        log.info(
            "refused %s %s: from another origin (Origin %.80r, Sec-Fetch-Site %.20r)",
            request.method,
            request.url.path,
            request.headers.get("origin"),
            request.headers.get("sec-fetch-site"),
        )
        raise AdminRefused(403, "This change must be made from nbhosting's own pages.")


async def check_write(request: Request, principal: Principal) -> None:
    """A write through a session: from the site itself, with the session's CSRF token (header or form field).
    A write through a bearer token needs neither. Raises AdminRefused (403)."""
    if principal.via != "session":
        return
    check_origin(request)
    session = session_of(request)
    given = request.headers.get(HEADER)
    if given is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        given = (await form_of(request)).get(FIELD)
    if session is None or not csrf_ok(_secret(request), session, given):
        log.info("refused %s %s for %s: no or wrong CSRF token", request.method, request.url.path, principal.username)
        raise AdminRefused(403, "This form has expired: load the page again and retry.")


async def authenticated(request: Request) -> Principal:
    """The request's principal, whatever it may do (a write checked as by :func:`require`); else AdminRefused
    (401)."""
    principal = await principal_of(request)
    if principal is None:
        raise AdminRefused(401, "Log in first: this needs a staff account (or an API token).")
    if request.method not in SAFE_METHODS:
        await check_write(request, principal)
    return principal


async def require(request: Request, permission: Permission, course: str | None = None) -> Principal:
    """The request's principal if it may ``permission`` on ``course`` (None: the whole host); else AdminRefused:
    401 without a principal, 403 when it may not (or a session's write lacks its CSRF token or comes from
    another site)."""
    principal = await authenticated(request)
    if not allowed(principal, permission, course):
        log.info(
            "refused %s %s to %s: %s on %s",
            request.method,
            request.url.path,
            principal.username,
            permission.value,
            course or "the host",
        )
        raise AdminRefused(403, "Your staff account may not do this" + (f" in course {course}." if course else "."))
    return principal


async def require_anywhere(request: Request, permission: Permission) -> Principal:
    """As :func:`require`, for a listing: the principal may ``permission`` on at least one course (filter what you
    list with :func:`nbhosting_core.roles.visible_courses`)."""
    principal = await authenticated(request)
    if not allowed_anywhere(principal, permission):
        raise AdminRefused(403, "Your staff account may not do this.")
    return principal


def login_url(next_path: str) -> str:
    """The login page, coming back to ``next_path`` (a local path) after it."""
    return f"{LOGIN_PATH}?{urllib.parse.urlencode({'next': safe_next(next_path)})}"


async def refused_response(request: Request, exc: Exception) -> Response:
    """The app's answer to an :class:`AdminRefused`: JSON ``{"error": slug, "message"}`` under ``/api/`` (the slugs
    of :data:`REFUSALS`);
    elsewhere a page, or, for a 401 on a GET, the login page."""
    assert isinstance(exc, AdminRefused)
    headers = {"Cache-Control": "no-store"} | exc.headers
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if request.url.path.startswith("/api/"):
        body = {"error": REFUSALS.get(exc.status, "refused"), "message": exc.message}
        return JSONResponse(body, status_code=exc.status, headers=headers)
    if exc.status == 401 and request.method in SAFE_METHODS:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(login_url(here), status_code=303, headers={"Cache-Control": "no-store"})
    titles = {401: "Log in first", 403: "Not allowed", 413: "Too large", 429: "Too many attempts"}
    response = pages.error_page(exc.status, titles.get(exc.status, "Refused"), exc.message)
    protect(response)
    response.headers.update(headers)
    return response
