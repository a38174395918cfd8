"""The LTI endpoints: where course platforms launch students by LTI 1.1 and LTI 1.3.

::

    POST      /lti/11/launch   LTI 1.1 launch: an OAuth 1.0a HMAC-SHA1 signed form (also at /lti/launch)
    GET|POST  /lti/13/login    LTI 1.3 third-party login initiation (OIDC): on to the platform's login URL
    POST      /lti/13/launch   LTI 1.3 launch: the platform posts id_token and state here (the redirect URI)
    GET       /lti/13/jwks     the tool's public keys (JSON Web Key Set)

The checks are :mod:`nbhosting_core.lti11` and :mod:`nbhosting_core.lti13`; these handlers read the request,
rebuild the URL the platform signed from the public URL setting (never from ``Host`` or ``X-Forwarded-*``: behind
Caddy the platform signed ``https://HOST/...``), and answer a verified launch with a **303 to the launch URL** for
that student, course and notebook carrying nbhosting's short-lived admission token. From there the launch is a
click: progress page, polls, access cookie (``SameSite=None; Secure; Partitioned``, so that it is kept in the
course page's iframe the LTI form was posted into) and redirects. Anything missing or wrong gets a page that
says so (4xx, or 502 when the platform's keys cannot be fetched), and nothing is created.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from nbhosting_core import InvalidInput, LaunchRefused, NbhostingError
from nbhosting_core.gate import Gate
from nbhosting_core.lti import NOT_VERIFIED, LtiLaunch, continue_path
from nbhosting_core.lti11 import verify_lti11
from nbhosting_core.lti13 import login_redirect, verify_lti13
from nbhosting_core.naming import user_name
from nbhosting_core.platforms import PlatformsFile
from nbhosting_core.system.jwks import KeySets
from nbhosting_core.system.nonces import NonceStore
from nbhosting_core.system.secretfile import secret_owners
from nbhosting_core.system.toolkey import ToolKey

from . import pages
from .errors import http_status

log = logging.getLogger("nbhosting.lti")

LTI11_LAUNCH = "/lti/11/launch"
LTI11_ALIASES = (
    "/lti/launch",
)  # the launch path of most LTI 1.1 tools (JupyterHub's ltiauthenticator: /hub/lti/launch)
LTI13_LOGIN = "/lti/13/login"
LTI13_LAUNCH = "/lti/13/launch"
LTI13_JWKS = "/lti/13/jwks"
#: an LTI launch form is a few kilobytes; an id_token a few more
MAX_FORM = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


class LtiEndpoints:
    """The LTI handlers, bound to the app's :class:`Gate` (its settings, secret and clock) and the platforms it
    trusts. A verified launch goes on to the launch route, which asks the launcher."""

    def __init__(self, gate: Gate, platforms: PlatformsFile) -> None:
        self.gate = gate
        self.platforms = platforms
        s = gate.settings
        self.nonces = NonceStore(
            s.lti_dir / "nonces", keep=max(s.lti_timestamp_window, s.lti_state_ttl) + s.lti_leeway, clock=gate.clock
        )
        self.keys = KeySets(
            timeout=s.jwks_timeout,
            max_bytes=s.jwks_max_bytes,
            ttl=s.jwks_cache_ttl,
            refetch_interval=s.jwks_refetch_interval,
            clock=gate.clock,
        )
        self.tool_key = ToolKey(s.lti_dir / "tool-key.pem", owners=secret_owners(s.app_user))

    def routes(self) -> list[Route]:
        """The routes to mount in the app."""
        both = ["GET", "POST"]
        routes = [Route(path, self.launch11, methods=both) for path in (LTI11_LAUNCH, *LTI11_ALIASES)]
        return routes + [
            Route(LTI13_LOGIN, self.login13, methods=both),
            Route(LTI13_LAUNCH, self.launch13, methods=both),
            Route(LTI13_JWKS, self.jwks, methods=["GET", "HEAD"]),
        ]

    def public(self, path: str) -> str:
        """``path`` on nbhosting's public URL (what browsers, and platforms, use)."""
        return self.gate.settings.public_url.rstrip("/") + path

    # ---------------------------------------------------------------------------------------------- LTI 1.1

    async def launch11(self, request: Request) -> Response:
        """POST /lti/11/launch (and /lti/launch): an LTI 1.1 launch; a 303 to the launch URL once verified."""
        if request.method != "POST":
            return _not_a_page("LTI 1.1 launch URL")
        raw = request.scope.get("raw_path")
        path = raw.decode("ascii", "replace") if isinstance(raw, bytes) else request.url.path
        query = request.scope.get("query_string", b"").decode("ascii", "replace")
        signed_url = self.public(path) + (f"?{query}" if query else "")
        s = self.gate.settings

        async def verify() -> LtiLaunch:
            body = await _form_body(request)
            platforms = self.platforms.current()
            return await run_in_threadpool(
                verify_lti11,
                signed_url,
                body,
                platforms,
                now=self.gate.clock(),
                window=s.lti_timestamp_window,
                nonces=self.nonces,
            )

        return await self._verified(request, "lti11", verify)

    # ---------------------------------------------------------------------------------------------- LTI 1.3

    async def login13(self, request: Request) -> Response:
        """GET or POST /lti/13/login: the platform begins a launch; on to its login URL with a state and nonce."""
        try:
            if request.method == "POST":
                params = dict(urllib.parse.parse_qsl(await _form_body(request), keep_blank_values=True))
            else:
                params = dict(request.query_params)
            redirect = login_redirect(
                self.platforms.current(),
                params,
                secret=self.gate.secret,
                redirect_uri=self.public(LTI13_LAUNCH),
                now=self.gate.clock(),
            )
        except NbhostingError as exc:
            return self._refused(request, "lti13 login", exc)
        log.info("lti13 login for platform %s: on to its authorisation URL", redirect.platform)
        return RedirectResponse(redirect.url, status_code=303, headers={"Cache-Control": "no-store"})

    async def launch13(self, request: Request) -> Response:
        """POST /lti/13/launch: the platform posts the id_token; a 303 to the launch URL once verified."""
        if request.method != "POST":
            return _not_a_page("LTI 1.3 launch URL (redirect URI)")
        s = self.gate.settings

        async def verify() -> LtiLaunch:
            form = dict(urllib.parse.parse_qsl(await _form_body(request), keep_blank_values=True))
            platforms = self.platforms.current()
            return await run_in_threadpool(
                verify_lti13,
                form,
                platforms,
                secret=self.gate.secret,
                keys=self.keys,
                nonces=self.nonces,
                now=self.gate.clock(),
                state_ttl=s.lti_state_ttl,
                leeway=s.lti_leeway,
            )

        return await self._verified(request, "lti13", verify)

    async def jwks(self, request: Request) -> Response:
        """GET /lti/13/jwks: the tool's public keys (the key is made on first use)."""
        keys = await run_in_threadpool(self.tool_key.jwks)
        return JSONResponse(keys, headers={"Cache-Control": "public, max-age=3600"})

    # ------------------------------------------------------------------------------------------------- shared

    async def _verified(self, request: Request, method: str, verify: Callable[[], Any]) -> Response:
        """Run ``verify``; a verified launch continues as a click (303), anything else gets its page."""
        try:
            launch: LtiLaunch = await verify()
        except NbhostingError as exc:
            return self._refused(request, f"{method} launch", exc)
        location = continue_path(self.gate.secret, launch, now=self.gate.clock())
        log.info(
            "%s launch admitted: platform=%s user=%s course=%s notebook=%s",
            method,
            launch.platform,
            user_name(launch.student_id, self.gate.settings.user_prefix),
            launch.course,
            launch.notebook,
        )
        # the token in Location is nbhosting's own, for one redirect; no Referer carries it further
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return RedirectResponse(location, status_code=303, headers=headers)

    def _refused(self, request: Request, what: str, exc: NbhostingError) -> Response:
        status, title = http_status(exc)
        client = request.client.host if request.client else "?"
        why = f"/{exc.why}" if isinstance(exc, LaunchRefused) else ""
        # str(exc) is the message and the admin's detail: never a secret, a token or a signature
        log.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "%s from %s refused: %s [%s%s]",
            what,
            client,
            exc,
            exc.reason,
            why,
        )
        if isinstance(exc, LaunchRefused | InvalidInput):
            title = "This launch cannot open a notebook"
        return pages.error_page(status, title, exc.message)


async def _form_body(request: Request) -> str:
    """The request's form body as sent (``application/x-www-form-urlencoded``), at most :data:`MAX_FORM` bytes.

    Raises:
        InvalidInput: another content type, too large, or not UTF-8.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise InvalidInput(NOT_VERIFIED, log_detail=f"content type {kind[:60]!r}, not a form post")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise InvalidInput(NOT_VERIFIED, log_detail=f"form larger than {MAX_FORM} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(NOT_VERIFIED, log_detail="form body is not UTF-8") from exc


def _not_a_page(what: str) -> Response:
    return pages.error_page(
        405,
        "Open your notebook from your course",
        f"This address is nbhosting's {what}: your course platform sends you here, it is not a page to open.",
    )
