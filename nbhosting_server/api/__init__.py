"""The admin JSON API under ``/api/v1/``: courses, students, servers (list, show, stop, restart, logs), events,
statistics, the host's samples; its OpenAPI document at ``/api/v1/openapi.json`` (public).

Every operation is one row of :data:`~.table.OPERATIONS` (method, path, summary, who may call it, query, body and
answer models, error answers); :func:`routes` mounts them and :mod:`.openapi` describes them from the same table.
A call acts for a staff member's session or API token (:mod:`nbhosting_server.admin`); answers and refusals are
JSON, a refusal ``{"error": slug, "message": sentence}``. ``create_app`` mounts the API when the app has a
database; the host's servers are reached through ``app.state.server_admin`` (the hub, or the helper's client).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router

from nbhosting_core.errors import NotFound

from .dispatch import endpoint, error_response
from .handlers import Call, Services, Unavailable
from .table import OPERATIONS, PREFIX, Operation, Scope


def routes() -> list[BaseRoute]:
    """``/api/v1``, with one route per operation of :data:`OPERATIONS` under it.

    Mounted as one router that never redirects a trailing slash: ``/servers/demo/x%2F`` is student ``x/``
    (refused), never a redirect to student ``x``; whatever is under ``/api/v1/`` and no operation's is a JSON 404.
    """
    operations = [Route(op.path, endpoint(op), methods=[op.method], name=op.name) for op in OPERATIONS]
    api = Router(operations, redirect_slashes=False)
    # ``/api/v1`` itself (what ``/api/v1/courses/..`` becomes in a client) is no operation: a JSON 404 too, never
    # the site's redirect to ``/api/v1/``
    root = Route(PREFIX, _nothing_here, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], name="api-root")
    return [Mount(PREFIX, app=api, name="api"), root]


async def _nothing_here(request: Request) -> Response:
    return error_response(NotFound("There is nothing at this address."))


__all__ = [
    "Call",
    "OPERATIONS",
    "Operation",
    "PREFIX",
    "Scope",
    "Services",
    "Unavailable",
    "endpoint",
    "error_response",
    "routes",
]
