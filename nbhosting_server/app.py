"""The Starlette app: launch routes, Caddy's forward-auth check, health, friendly errors."""

from __future__ import annotations

import http.cookies
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from nbhosting_core import Hub, Launch, LaunchState, NbhostingError, Settings
from nbhosting_core.access import COOKIE_NAME

from . import pages
from .errors import http_status, retryable

log = logging.getLogger("nbhosting")
LAUNCH_PREFIXES = ("notebookLazyCopy", "ipythonExercice")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _wants_json(request: Request) -> bool:
    return request.query_params.get("wait") == "1" or "application/json" in request.headers.get("accept", "")


def _set_access_cookie(response: Response, hub: Hub, launch: Launch) -> None:
    name, value, path, max_age = hub.access_cookie(launch)
    # SameSite=None + Secure + Partitioned: the cookie survives inside a course page's iframe.
    # (Written by hand: http.cookies learns "Partitioned" only in Python 3.14.)
    response.headers.append(
        "set-cookie",
        f"{name}={value}; Max-Age={max_age}; Path={path}; Secure; HttpOnly; SameSite=None; Partitioned",
    )


def _cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a Cookie header (several paths may each set one)."""
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            values.append(http.cookies._unquote(value))
    return values


class Endpoints:
    """The app's request handlers, bound to one :class:`Hub`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def launch(self, request: Request) -> Response:
        """GET /notebookLazyCopy/<course>/<notebook>/<student> (and the legacy /ipythonExercice/)."""
        p = request.path_params
        course, notebook, student = p["course"], p["notebook"], p["student"]
        as_json = _wants_json(request)
        try:
            launch = await run_in_threadpool(self.hub.open_notebook, course, notebook, student, wait=as_json)
        except NbhostingError as exc:
            return self._error(request, exc, as_json)
        if as_json:
            response: Response = JSONResponse({"state": launch.state.value, "url": launch.url,
                                               "user": launch.user, "container": launch.container})
        elif launch.state is LaunchState.READY:
            response = RedirectResponse(launch.url, status_code=302, headers={"Cache-Control": "no-store"})
        else:
            response = pages.progress_page(request.url.path, launch.notebook, launch.course,
                                           self.hub.settings.start_timeout)
        _set_access_cookie(response, self.hub, launch)
        return response

    def _error(self, request: Request, exc: NbhostingError, as_json: bool) -> Response:
        status, title = http_status(exc)
        level = logging.ERROR if status >= 500 else logging.INFO
        log.log(level, "launch %s failed: %s [%s]", request.url.path, exc, exc.reason)
        if as_json:
            return JSONResponse({"state": "failed", "reason": exc.reason, "message": exc.message},
                                status_code=status)
        return pages.error_page(status, title, exc.message,
                                retry_url=request.url.path if retryable(status) else None)

    async def auth(self, request: Request) -> Response:
        """GET /_nbh/auth: Caddy's forward_auth; 200 + the Jupyter Authorization header, or a refusal."""
        uri = request.headers.get("x-forwarded-uri", "")
        method = request.headers.get("x-forwarded-method", "GET").upper()
        if method not in SAFE_METHODS and request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            # the access cookie is SameSite=None (for iframes): refuse writes forged by other sites
            log.info("refused cross-site %s %s", method, uri[:200])
            return pages.error_page(403, "Request refused", "Changes to a notebook can only come from the notebook.")
        decision = self.hub.authorize(uri, _cookie_values(request.headers.get("cookie", ""), COOKIE_NAME))
        if decision.allowed:
            return Response(status_code=200, headers={"Authorization": decision.authorization})
        log.info("refused %s %s: %s", request.headers.get("x-forwarded-method", "?"), uri[:200], decision.reason)
        messages = {
            "no-cookie": ("Open this notebook from your course",
                          "This browser has no access to this notebook server. Open the notebook again "
                          "from your course page."),
            "bad-cookie": ("Not your notebook", "This notebook server belongs to someone else, or your "
                           "access has expired. Open the notebook again from your course page."),
            "gone": ("This notebook session has ended", "Open the notebook again from your course page "
                     "to start a new session; your work is kept."),
        }
        title, message = messages.get(decision.reason, ("Not found", "There is nothing here."))
        return pages.error_page(decision.status, title, message)

    async def unavailable(self, request: Request) -> Response:
        """/_nbh/unavailable: what Caddy shows when a notebook server does not answer (502/503/504)."""
        return pages.error_page(502, "Your notebook server is not answering",
                                "It may have been stopped. Open the notebook again from your course page: "
                                "your work is kept.")

    async def health(self, request: Request) -> Response:
        """GET /_nbh/health: liveness of the app."""
        return JSONResponse({"status": "ok"})

    async def front(self, request: Request) -> Response:
        """GET /: what this server is."""
        return pages.front_page()


async def _not_found(request: Request, exc: Any) -> Response:
    return pages.error_page(404, "Not found", "There is nothing at this address.")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return pages.error_page(500, "Something went wrong on the server",
                            "This is our fault, not yours. Please try again in a moment.", retry_url=request.url.path)


def create_app(settings: Settings | None = None, hub: Hub | None = None) -> Starlette:
    """Build the app around ``hub`` (default: a :class:`Hub` on ``settings``, default from the env)."""
    if hub is None:
        hub = Hub(settings or Settings())
    e = Endpoints(hub)
    routes = [Route("/", e.front), Route("/_nbh/auth", e.auth), Route("/_nbh/health", e.health),
              Route("/_nbh/unavailable", e.unavailable, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])]
    routes += [Route(f"/{prefix}/{{course}}/{{notebook:path}}/{{student}}", e.launch)
               for prefix in LAUNCH_PREFIXES]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, Exception: _server_error})
    app.state.hub = hub
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory``: settings from the NBH_* environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(Settings())
