"""The Starlette app: launch routes, the LTI endpoints (:mod:`nbhosting_server.lti`), tickets, Caddy's
forward-auth and TLS checks, health, friendly errors, the culler.

No handler waits for a notebook server to start: a cold launch answers at once with a progress page whose
script polls the same URL with ``?status=1``; every poll answers at once too. A ready launch sends the browser to
the server's own origin with a one-time ticket (``/_nbh/ticket``), which sets the server's access cookie there.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookies
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from nbhosting_core import (
    AccessCookie,
    Admission,
    Busy,
    Culler,
    Hub,
    Launch,
    LaunchRefused,
    LaunchState,
    NbhostingError,
    NotFound,
    Requester,
    Settings,
    admit,
    validate_course,
    validate_notebook_path,
    validate_student_id,
)
from nbhosting_core.access import COOKIE_NAME, key_from_uri
from nbhosting_core.containers import student_base
from nbhosting_core.events import EventJournal
from nbhosting_core.eventstore import ingest
from nbhosting_core.figures import HostFigures
from nbhosting_core.gate import TICKET_PATH, Gate, then_path
from nbhosting_core.helper import HelperClient
from nbhosting_core.launcher import Launcher
from nbhosting_core.launches import check_admission_token, check_poll_token, poll_token
from nbhosting_core.naming import student_copy_path
from nbhosting_core.opened import OpenedLog
from nbhosting_core.origins import check_origin, frame_ancestors
from nbhosting_core.platforms import PlatformsFile
from nbhosting_core.staff import StaffStore
from nbhosting_core.system.records import Records

from . import admin, api, pages
from .appdb import app_database
from .coursepage import CoursePages
from .errors import http_status, retry_after, retryable
from .framing import FrameAncestors
from .logs import mask_access_log
from .lti import LtiEndpoints
from .metrics import Metrics, MetricsGuard, RequestMetrics, multiprocess_dir, staff_guard, token_guard
from .student import StudentEndpoints

log = logging.getLogger("nbhosting")
LAUNCH_PREFIXES = ("notebookLazyCopy", "ipythonExercice")
#: the query parameter of the progress page's polls (``wait`` is what pages served by older versions send)
POLL_PARAMS = ("status", "wait")
#: seconds a launch waits for the host before it answers the progress page anyway (the open goes on)
ANSWER_WITHIN = 1.0
#: seconds the outcome of an open that outlived ANSWER_WITHIN is kept for the polls that follow it
OPENING_KEPT = 120.0


def _is_poll(request: Request) -> bool:
    return any(request.query_params.get(p) == "1" for p in POLL_PARAMS) or "application/json" in request.headers.get(
        "accept", ""
    )


def _set_access_cookie(response: Response, cookie: AccessCookie) -> None:
    # No Domain: host-only, on the origin that sets it (the server's own, in origin mode "subdomain").
    # SameSite=None + Secure + Partitioned: the cookie survives inside a course page's iframe.
    # (Written by hand: http.cookies learns "Partitioned" only in Python 3.14.)
    response.headers.append(
        "set-cookie",
        f"{cookie.name}={cookie.value}; Max-Age={cookie.max_age}; Path={cookie.path}; Secure; HttpOnly; "
        "SameSite=None; Partitioned",
    )


def _is_websocket(request: Request) -> bool:
    """Whether the request forward-auth checks is a websocket handshake (Caddy says so in X-Nbh-Upgrade, as it
    strips Upgrade from the check itself; a handshake also always has a Sec-WebSocket-Key)."""
    headers = request.headers
    return (
        "websocket" in headers.get("x-nbh-upgrade", "").lower()
        or "sec-websocket-key" in headers
        or headers.get("sec-fetch-mode", "").lower() == "websocket"
    )


def _next_path(value: str, settings: Settings, key: str) -> str:
    """Where a ticket sends the browser: ``value`` if it is a path of the server ``key`` (or of its students'
    pages), else its root (pure)."""
    root = f"/{settings.url_prefix}/{key}/"
    pages = f"{student_base(settings, key)}/"
    if (
        (value.startswith(root) or value.startswith(pages))
        and "\\" not in value
        and value.isprintable()
        and len(value) <= 2048
    ):
        return value
    return root


def _cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a Cookie header (several paths may each set one)."""
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value.isascii():
            values.append(http.cookies._unquote(value))
    return values


def _client_address(request: Request) -> str:
    """The address the request came from, as uvicorn gives it: what the rate limits count.

    Behind Caddy, uvicorn (``--proxy-headers``) takes it from X-Forwarded-For, and only when the connection
    comes from ``--forwarded-allow-ips`` (127.0.0.1: Caddy). Caddy 2.6 sets that header to the address the
    client connected from and drops whatever the client sent (it trusts no proxy before it), so a client
    cannot choose the address it is counted as.
    """
    return request.client.host if request.client else "unknown"


def _raw_path(request: Request) -> str:
    """The request's path as the browser sent it (still percent-encoded), to point back at the same URL."""
    raw = request.scope.get("raw_path")
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else request.url.path


class Endpoints:
    """The app's request handlers: launches through a :class:`Launcher` (the privileged helper, or a hub in this
    process), access through a :class:`Gate`, and the platforms it trusts."""

    def __init__(
        self, launcher: Launcher, gate: Gate, platforms: PlatformsFile, opened: OpenedLog | None = None
    ) -> None:
        self.launcher = launcher
        self.gate = gate
        self.platforms = platforms
        #: which notebooks each student opened (course pages show it); None: not recorded
        self.opened = opened
        #: opens of this process that outlived :data:`ANSWER_WITHIN`, by (course, notebook, student id)
        self._opening: dict[tuple[str, str, str], asyncio.Future[Launch]] = {}

    async def launch(self, request: Request) -> Response:
        """GET /notebookLazyCopy/<course>/<notebook>/<student> (and the legacy /ipythonExercice/).

        Only launches a trusted platform vouches for get in (see :mod:`nbhosting_core.launches`); the student is
        the platform's, scoped by its name. With ``?status=1`` (the progress page's polls), answers JSON: where the
        launch stands.
        """
        p = request.path_params
        course, notebook, student = p["course"], p["notebook"], p["student"]
        poll = _is_poll(request)
        then = request.query_params.get("then") or None  # a students' page of this notebook, instead of the notebook
        try:
            validate_course(course)  # a bad link is a 400 before anything else
            validate_notebook_path(notebook)
            validate_student_id(student)
            if then is not None:
                then_path(self.gate.settings, "0" * 40, notebook, then)  # an unknown page: 400 before anything
            admission = self._admit(request, course, notebook, student)
            if admission.method == "legacy":
                log.warning(
                    "legacy (unsigned) launch of %s for %s from %s",
                    course,
                    admission.student_id,
                    request.client.host if request.client else "?",
                )
            requester = Requester(platform=admission.platform, address=_client_address(request))
            opening = (course, notebook, admission.student_id)
            if poll:
                if self._still_opening(opening):  # its open has not answered yet: nothing to ask the host
                    return JSONResponse(
                        {"state": LaunchState.STARTING.value, "url": None},
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
                    )
                launch = await run_in_threadpool(self._status, course, notebook, admission.student_id, requester)
            else:
                opened = await self._open_within(opening, requester)
                if opened is None:  # the host is still making it: the progress page now, its polls follow it
                    return self._progress(request, admission, course, notebook, student, then)
                launch = opened
        except NbhostingError as exc:
            return self._error(request, exc, poll)
        ready = launch.state is LaunchState.READY
        if poll:
            # url: where to go once ready (the server's origin, with a one-time ticket); a capability
            response: Response = JSONResponse(
                {
                    "state": launch.state.value,
                    "url": self.gate.ticket_url(launch, then) if ready else None,
                    "notebook_url": self.gate.server_origin(launch.key) + launch.url,
                    "user": launch.user,
                    "container": launch.container,
                },
                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
            )
        elif ready:
            response = RedirectResponse(
                self.gate.ticket_url(launch, then),
                status_code=302,
                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
            )
        else:
            response = self._progress(request, admission, course, notebook, student, then)
        return response

    def _progress(
        self, request: Request, admission: Admission, course: str, notebook: str, student: str, then: str | None
    ) -> Response:
        """The progress page of this launch, whose script polls it (with a poll token) until it is ready."""
        token = poll_token(
            self.gate.secret,
            admission,
            course,
            notebook,
            student,
            int(self.gate.clock() + self.gate.settings.start_timeout + 120),
        )
        follow_query = {"poll": token} | ({"then": then} if then else {})
        follow = f"{_raw_path(request)}?{urllib.parse.urlencode(follow_query)}"
        copy = str(student_copy_path(validate_notebook_path(notebook)))
        return pages.progress_page(follow, copy, course, self.gate.settings.start_timeout)

    async def _open_within(self, opening: tuple[str, str, str], requester: Requester) -> Launch | None:
        """Open (course, notebook, student) and return the launch if the host answers within
        :data:`ANSWER_WITHIN`; else None, the open going on (a lecture starting queues its opens at the helper:
        every student sees the progress page meanwhile, whose polls learn how it ended).

        Raises:
            NbhostingError: the open was refused or failed within that time.
        """
        task = self._opening.get(opening)
        if task is None or task.done():  # a click again after an open ended: open again
            course, notebook, student_id = opening
            task = asyncio.ensure_future(
                run_in_threadpool(self.launcher.open_notebook, course, notebook, student_id, requester=requester)
            )
            self._opening[opening] = task
            task.add_done_callback(lambda done: self._opened(opening, done))
        await asyncio.wait({task}, timeout=ANSWER_WITHIN)
        if not task.done():
            return None
        self._opening.pop(opening, None)
        return task.result()

    def _still_opening(self, opening: tuple[str, str, str]) -> bool:
        """True while an open of ``opening`` by this process has not ended; once it has, its outcome is taken
        (and its failure raised) here, once."""
        task = self._opening.get(opening)
        if task is None:
            return False
        if not task.done():
            return True
        del self._opening[opening]
        task.result()  # a refusal or a failure of the open is this poll's answer
        return False

    def _opened(self, opening: tuple[str, str, str], task: asyncio.Future[Launch]) -> None:
        """An open ended: note it, and forget its outcome after a while if no poll came to take it."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self._record_opened(task.result())
        elif not isinstance(exc, NbhostingError):
            log.error("the open of %s/%s failed unexpectedly: %r", opening[0], opening[1], exc)

        def forget() -> None:
            if self._opening.get(opening) is task:
                del self._opening[opening]

        asyncio.get_running_loop().call_later(OPENING_KEPT, forget)

    def _record_opened(self, launch: Launch) -> None:
        """Note the launch for the student's course page; a failure to note it never fails the launch."""
        if self.opened is not None:
            try:
                self.opened.record(launch.student_id, launch.course, launch.notebook)
            except OSError as exc:
                log.warning("could not note that %s opened %s: %s", launch.user, launch.notebook, exc)

    def _admit(self, request: Request, course: str, notebook: str, student: str) -> Admission:
        """Who vouches for this launch: a platform (signed, legacy), or nbhosting's own token: a poll token (the
        progress page) or an admission token (a launch nbhosting verified itself, e.g. LTI)."""
        query = request.query_params
        token = query.get("poll")
        if token:
            return check_poll_token(
                self.gate.secret, self.platforms.current(), token, course, notebook, student, now=self.gate.clock()
            )
        token = query.get("admit")
        if token:
            return check_admission_token(
                self.gate.secret, self.platforms.current(), token, course, notebook, student, now=self.gate.clock()
            )
        return admit(
            self.platforms.current(),
            course,
            notebook,
            student,
            query,
            now=self.gate.clock(),
            max_ttl=self.gate.settings.signed_launch_max_ttl,
            referer=request.headers.get("referer"),
            fetch_site=request.headers.get("sec-fetch-site"),
        )

    def _status(self, course: str, notebook: str, student: str, requester: Requester) -> Launch:
        """A poll: where the launch stands; a launch when there is none yet (a client that polls first)."""
        try:
            return self.launcher.launch_status(course, notebook, student)
        except NotFound:
            return self.launcher.open_notebook(course, notebook, student, requester=requester)

    def _error(self, request: Request, exc: NbhostingError, as_json: bool) -> Response:
        status, title = http_status(exc)
        busy = isinstance(exc, Busy)  # the hub has logged why
        level = logging.ERROR if status >= 500 and not busy else logging.INFO
        client = _client_address(request)
        why = f"/{exc.why}" if isinstance(exc, LaunchRefused | Busy) else ""
        # the path, never the query: a signed URL is a capability until it expires
        log.log(level, "launch %s from %s failed: %s [%s%s]", request.url.path, client, exc, exc.reason, why)
        wait = retry_after(exc)
        headers = {"Cache-Control": "no-store"} | ({"Retry-After": str(wait)} if wait is not None else {})
        if as_json:
            body: dict[str, object] = {
                "state": "busy" if busy else "failed",
                "reason": exc.reason,
                "message": exc.message,
            }
            if wait is not None:
                body["retry_after"] = wait
            return JSONResponse(body, status_code=status, headers=headers)
        # the launch exactly as sent, query included (a signed launch's signature is in it)
        again = _raw_path(request) + (f"?{request.url.query}" if request.url.query else "")
        if busy and wait is not None:
            return pages.busy_page(again, exc.message, wait)
        response = pages.error_page(status, title, exc.message, retry_url=again if retryable(status) else None)
        response.headers.update(headers)
        return response

    async def ticket(self, request: Request) -> Response:
        """GET /_nbh/ticket?t=<ticket>&next=<path>: on a server's origin, trade a one-time ticket for its access
        cookie, then go on to the notebook.

        Caddy sends here from a server's host only, and names that host's key in ``X-Nbh-Key`` (origin mode
        ``subdomain``); in mode ``path`` the ticket comes to the site's origin. The ticket is never logged.
        """
        host_key = request.headers.get("x-nbh-key")
        try:
            cookie = self.gate.redeem_ticket(request.query_params.get("t", ""), host_key=host_key)
        except LaunchRefused as exc:
            status, title = http_status(exc)
            return pages.error_page(status, title, exc.message)
        target = _next_path(request.query_params.get("next", ""), self.gate.settings, cookie.key)
        response = RedirectResponse(
            target, status_code=302, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        )
        _set_access_cookie(response, cookie)
        return response

    async def tls_ask(self, request: Request) -> Response:
        """GET /_nbh/tls-ask?domain=<host>: Caddy's on-demand TLS question; 200 only for an existing server's host."""
        allowed = await run_in_threadpool(self.gate.may_certify, request.query_params.get("domain", ""))
        return Response(status_code=200 if allowed else 404)

    async def auth(self, request: Request) -> Response:
        """GET /_nbh/auth: Caddy's forward_auth; 200 + the Jupyter Authorization header, or a refusal.

        The key Caddy routes on comes in ``X-Nbh-Key`` (what its host or path matcher captured); the check is
        made on that key, so that the key authorised is the key proxied to, whatever the raw URI says. A write or
        a websocket handshake must come from the server's own origin (:func:`~nbhosting_core.origins.check_origin`).
        """
        prefix = self.gate.settings.url_prefix
        uri = request.headers.get("x-forwarded-uri", "")
        routed = request.headers.get("x-nbh-key")
        if routed is not None:
            uri = f"/{prefix}/{routed}/"
        method = request.headers.get("x-forwarded-method", "GET").upper()
        key = key_from_uri(uri, prefix)
        if key is not None:
            origin = check_origin(
                method=method,
                websocket=_is_websocket(request),
                origin=request.headers.get("origin"),
                fetch_site=request.headers.get("sec-fetch-site"),
                own_origin=self.gate.server_origin(key),
            )
            if not origin.allowed:
                log.info(
                    "refused %s%s to key=%s: %s (Origin %.80r, Sec-Fetch-Site %.20r)",
                    method,
                    " websocket" if _is_websocket(request) else "",
                    key[:8],
                    origin.verdict.value,
                    request.headers.get("origin"),
                    request.headers.get("sec-fetch-site"),
                )
                return pages.error_page(
                    403,
                    "Request refused",
                    "Changes to a notebook, and its kernels, can only come from the notebook itself.",
                )
        decision = self.gate.authorize(uri, _cookie_values(request.headers.get("cookie", ""), COOKIE_NAME))
        if decision.allowed:
            return Response(status_code=200, headers={"Authorization": decision.authorization})
        log.info("refused %s %s: %s", method, uri[:200], decision.reason)
        messages = {
            "no-cookie": (
                "Open this notebook from your course",
                "This browser has no access to this notebook server. Open the notebook again from your course page.",
            ),
            "bad-cookie": (
                "Not your notebook",
                "This notebook server belongs to someone else, or your "
                "access has expired. Open the notebook again from your course page.",
            ),
            "gone": (
                "This notebook session has ended",
                "Your notebook server was stopped (after a while "
                "without use, or by the staff). Open the notebook again from your course page to start "
                "it again; your work is kept.",
            ),
        }
        title, message = messages.get(decision.reason, ("Not found", "There is nothing here."))
        return pages.error_page(decision.status, title, message)

    async def unavailable(self, request: Request) -> Response:
        """/_nbh/unavailable: what Caddy shows when a notebook server does not answer (502/503/504)."""
        return pages.error_page(
            502,
            "Your notebook server is not answering",
            "It may have been stopped. Open the notebook again from your course page: your work is kept.",
        )

    async def health(self, request: Request) -> Response:
        """GET /_nbh/health: liveness of the app."""
        return JSONResponse({"status": "ok"})

    async def front(self, request: Request) -> Response:
        """GET /: what this server is."""
        return pages.front_page()


def _is_api(request: Request) -> bool:
    return request.url.path == "/api" or request.url.path.startswith("/api/")


async def _not_found(request: Request, exc: Any) -> Response:
    if _is_api(request):
        return JSONResponse({"error": "not-found", "message": "There is nothing at this address."}, status_code=404)
    return pages.error_page(404, "Not found", "There is nothing at this address.")


async def _not_allowed(request: Request, exc: Any) -> Response:
    allow = getattr(exc, "headers", None) or {}
    if _is_api(request):
        message = "This address does not take this method."
        return JSONResponse({"error": "method-not-allowed", "message": message}, status_code=405, headers=allow)
    return Response("Method Not Allowed", status_code=405, headers=allow, media_type="text/plain")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    if _is_api(request):
        message = "Something went wrong on the server; the administrators can find the details in the logs."
        return JSONResponse({"error": "internal", "message": message}, status_code=500)
    return pages.error_page(
        500,
        "Something went wrong on the server",
        "This is our fault, not yours. Please try again in a moment.",
        retry_url=_raw_path(request),
    )


def create_app(
    settings: Settings | None = None,
    hub: Hub | None = None,
    *,
    launcher: Launcher | None = None,
    gate: Gate | None = None,
    platforms: PlatformsFile | None = None,
    cull: bool = False,
    metrics_guard: MetricsGuard | None = None,
    database: Engine | None = None,
    staff: StaffStore | None = None,
) -> Starlette:
    """Build the app around a launcher and a gate.

    With ``hub`` (scripts, tests, an app run as root): launches go to it, in this process, and the gate is its
    own. Without: launches go to ``launcher`` (default: the privileged helper, :class:`HelperClient` on
    ``settings.helper_socket``), and the gate is ``gate`` (default: one on ``settings``, which reads the server
    records). ``settings`` default from the environment.

    ``platforms``: who may send students in; default the settings' platforms file (read again when it changes).
    The LTI endpoints (``/lti/11/launch``, ``/lti/13/login``, ``/lti/13/launch``, ``/lti/13/jwks``) are mounted
    too: a verified LTI launch continues at the launch route with an admission token.
    With ``cull`` and a ``hub``, the app runs the host's culler in a thread (at most one process per host culls:
    see :class:`~nbhosting_core.culling.Culler`); with the helper, the helper culls.

    ``metrics_guard``: who may read ``/metrics`` (given the request, True to let it in); default the bearer token
    of ``settings.metrics_token_file`` (see :mod:`nbhosting_server.metrics`). With staff, a staff member who may
    manage the host (an admin's API token or session) may read them too.
    ``database`` (the app's, :func:`~nbhosting_server.appdb.app_database`): staff accounts, so the admin surface
    is mounted (``/admin/login``, ``/admin/logout``, ``/admin/``: see :mod:`nbhosting_server.admin`), with a
    :class:`~nbhosting_core.staff.StaffStore` on it (or ``staff``, e.g. a test's, whose engine is the database).
    Both are on ``app.state`` (``database``, ``staff``; None without) for the admin routers, and so is the JSON
    API (``/api/v1/``, see :mod:`nbhosting_server.api`), which reaches the host's servers through
    ``app.state.server_admin`` (the hub, or the helper's client) and the events through ``app.state.journal``.
    """
    if hub is not None:
        settings = hub.settings
        launcher, gate = hub, Gate.of(hub)
    else:
        settings = settings or Settings()
        launcher = launcher or HelperClient(
            settings.helper_socket, timeout=settings.helper_timeout + 5, max_payload=settings.workspace_quota + 2**26
        )
        gate = gate or Gate(settings)
    platforms = platforms or PlatformsFile(settings.effective_platforms_file)
    opened = OpenedLog(settings.opened_dir, user_prefix=settings.user_prefix)
    e = Endpoints(launcher, gate, platforms, opened)
    if staff is None and database is not None:
        staff = StaffStore(database, clock=gate.clock)
    figures = HostFigures(
        hub.events if hub is not None else EventJournal(settings.events_dir),
        hub.backend.list_running if hub is not None else Records(settings.servers_dir, settings.running_dir).running,
        database=staff.engine if staff is not None else None,  # counts of every stored event, or of today's journal
        clock=gate.clock,
    )
    guard = metrics_guard or token_guard(settings.metrics_token_file)
    metrics = Metrics(figures, staff_guard(guard) if staff is not None else guard, multiprocess=multiprocess_dir())
    routes: list[BaseRoute] = [
        Route("/", e.front),
        Route("/metrics", metrics.endpoint),
        Route("/_nbh/auth", e.auth),
        Route(TICKET_PATH, e.ticket),
        Route("/_nbh/tls-ask", e.tls_ask),
        Route("/_nbh/health", e.health),
        Route("/_nbh/unavailable", e.unavailable, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
    ]
    routes += [Route(f"/{prefix}/{{course}}/{{notebook:path}}/{{student}}", e.launch) for prefix in LAUNCH_PREFIXES]
    routes += LtiEndpoints(gate, platforms).routes()  # /lti/...: LTI 1.1 and 1.3 launches (see nbhosting_server.lti)
    routes += CoursePages(gate, platforms, opened).routes()  # /course/...: a student's table of contents
    work = hub.work if hub is not None else launcher if isinstance(launcher, HelperClient) else None
    if work is not None:  # /_nbh/student/... on servers' origins, /share on the site's (see nbhosting_server.student)
        routes += StudentEndpoints(work, gate).routes()
    if staff is not None:  # /admin/...: staff logins and the landing page (see nbhosting_server.admin); /api/v1/
        database = staff.engine
        routes += admin.routes()
        routes += api.routes()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        periodic: list[Culler[Any]] = []
        if cull and hub is not None:
            periodic.append(
                Culler(hub.cull, lock_path=settings.locks_dir / "culler.lock", interval=settings.cull_interval)
            )
        if database is not None:  # the host's journal read into the database, by one worker at a time
            periodic.append(events_reader(settings, database))
        for task in periodic:
            task.start()
        try:
            yield
        finally:
            for task in periodic:
                task.stop()
            metrics.worker_exit()

    def ancestors() -> str:
        return frame_ancestors(settings, e.platforms.current().origins())

    app = Starlette(
        routes=routes,
        exception_handlers={
            404: _not_found,
            405: _not_allowed,
            admin.AdminRefused: admin.refused_response,
            Exception: _server_error,
        },
        lifespan=lifespan,
        middleware=[
            Middleware(RequestMetrics, metrics=metrics.http, routes=routes),  # first: it times all the rest
            Middleware(FrameAncestors, sources=ancestors),
        ],
    )
    app.state.hub = hub
    app.state.launcher = launcher
    # what the admin pages and API see and act on: the hub in this process, or the helper's client
    app.state.server_admin = hub if hub is not None else launcher if isinstance(launcher, HelperClient) else None
    app.state.journal = hub.events if hub is not None else EventJournal(settings.events_dir)
    app.state.gate = gate
    app.state.metrics = metrics
    app.state.database = database
    app.state.staff = staff
    return app


def events_reader(settings: Settings, database: Engine) -> Culler[int]:
    """Reads the host's journal of events into ``database`` every ``events_ingest_interval`` seconds, in one worker
    of the host at a time (pages and the API read it too before answering: this keeps it current when nobody looks,
    before the journal's old files are removed)."""
    journal = EventJournal(settings.events_dir)

    def read() -> list[int]:
        return [ingest(database, journal)]

    return Culler(
        read, lock_path=settings.db_dir / "ingest.lock", interval=settings.events_ingest_interval, name="events reader"
    )


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` (`nbh serve`, the app's systemd unit): settings from the NBH_* environment.

    Unprivileged (the production way), launches go to the privileged helper, which also culls. Run as root, the
    app is the hub itself, culler included (the single-process way: no helper).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mask_access_log()
    settings = Settings()
    if os.geteuid() == 0:
        log.warning("the app runs as root, with the hub in its own process: run `nbh serve` to separate them")
        return create_app(settings, Hub(settings), cull=True, database=app_database(settings))
    log.info("the app runs as uid %d; launches go to the helper at %s", os.geteuid(), settings.helper_socket)
    return create_app(settings, database=app_database(settings))
