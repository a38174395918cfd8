"""From an :class:`~.table.Operation` to a Starlette endpoint: who, which input, which answer, in that order.

1. a body that is a form is refused (415) before anything reads it;
2. the principal (401; a session's write also needs its CSRF token and the site's origin: 403);
3. the path's course and student id (:mod:`nbhosting_core.naming`) and the query (its model): 400;
4. the permission, on the course the operation names (:class:`~.table.Scope`): 403;
5. the body, at most :data:`MAX_BODY` bytes (413), JSON of the operation's body model (400);
6. the handler, in a thread; nbhosting's errors become ``{"error": reason, "message"}`` with the status of
   :mod:`nbhosting_server.errors` (and Retry-After when it says when to try again).

Every call is logged once: the operation, who, the course and student, the status, how long it took.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from nbhosting_core.errors import InvalidInput, NbhostingError
from nbhosting_core.naming import validate_course, validate_student_id
from nbhosting_core.roles import Permission, Principal, allowed
from nbhosting_core.staff import StaffStore

from ..admin import AdminRefused, authenticated, refused_response, require, require_anywhere
from ..errors import http_status, retry_after
from .handlers import Call, Services
from .table import Operation, Scope

log = logging.getLogger(__name__)
#: a body is at most this many bytes (the API's bodies are empty objects)
MAX_BODY = 4096
#: a query string is at most this many bytes
MAX_QUERY = 4096
#: how many errors of a query a refusal lists
SHOWN_ERRORS = 5
NO_STORE = {"Cache-Control": "no-store"}


def endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of ``op``."""

    async def handle(request: Request) -> Response:
        started = time.monotonic()
        call: Call | None = None
        try:
            call = await _call(op, request)
            answer = await run_in_threadpool(op.handler, call)
            body = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
            response: Response = JSONResponse(body, headers=NO_STORE)
        except AdminRefused as exc:
            response = await refused_response(request, exc)
        except NbhostingError as exc:
            response = error_response(exc)
        principal: Principal | None = getattr(request.state, "principal", None)
        log.info(
            "api %s by %s (%s) course=%s student=%.40s: %d in %.3fs",
            op.name,
            principal.username if principal else "nobody",
            principal.via if principal else "-",
            call.course if call else request.path_params.get("course", "-")[:64],
            call.student_id if call else request.path_params.get("student_id", "-"),
            response.status_code,
            time.monotonic() - started,
        )
        return response

    handle.__name__ = op.name
    handle.__doc__ = f"{op.method} {op.path}: {op.summary}."
    return handle


def error_response(exc: NbhostingError) -> JSONResponse:
    """An nbhosting error as the API answers it (status from :mod:`nbhosting_server.errors`)."""
    status, _ = http_status(exc)
    wait = retry_after(exc)
    body: dict[str, Any] = {"error": exc.reason, "message": exc.message}
    headers = dict(NO_STORE)
    if wait is not None:
        body["retry_after"] = wait
        headers["Retry-After"] = str(wait)
    if status >= 500:
        log.warning("api: %s [%s] %s", exc.message, exc.reason, exc.log_detail)
    return JSONResponse(body, status_code=status, headers=headers)


def services(request: Request) -> Services:
    """What the handlers reach, from the app's state (see ``create_app``)."""
    state = request.app.state
    staff = getattr(state, "staff", None)
    return Services(
        server_admin=getattr(state, "server_admin", None),
        engine=staff.engine if isinstance(staff, StaffStore) else None,
        journal=getattr(state, "journal", None),
        clock=state.gate.clock,
    )


async def _call(op: Operation, request: Request) -> Call:
    if _is_form(request.headers.get("content-type", "").lower()):  # refused before a session's check reads it
        raise AdminRefused(415, "The API reads JSON bodies only.")
    principal = None if op.scope is Scope.PUBLIC else await authenticated(request)
    course = _path_value(request, "course", validate_course)
    student_id = _path_value(request, "student_id", validate_student_id)
    query = parse_query(op.query, request)
    visible = await _permit(op, request, principal, course if course is not None else getattr(query, "course", None))
    body = await _body(op, request) if op.body is not None else None
    assert principal is not None or op.scope is Scope.PUBLIC
    return Call(
        principal=principal,  # type: ignore[arg-type]  # only the PUBLIC operation has none, and reads none
        course=course,
        student_id=student_id,
        query=query,
        body=body,
        visible=visible,
        services=services(request),
    )


def _is_form(content_type: str) -> bool:
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/"))


def _path_value(request: Request, name: str, validate: Callable[[str], str]) -> str | None:
    value = request.path_params.get(name)
    return None if value is None else validate(value)


def parse_query(model: type[BaseModel], request: Request) -> Any:
    """The request's query parameters as ``model`` (each at most once, none unknown).

    Raises:
        InvalidInput: too long, a parameter given twice, or refused by the model (saying which and why).
    """
    raw = request.scope.get("query_string", b"")
    if len(raw) > MAX_QUERY:
        raise InvalidInput(f"The query is longer than {MAX_QUERY} bytes.")
    items = request.query_params.multi_items()
    names = [name for name, _ in items]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidInput(f"Parameters given more than once: {', '.join(n[:40] for n in twice[:5])}.")
    try:
        return model.model_validate(dict(items))
    except ValidationError as exc:
        raise InvalidInput(_explain(exc), log_detail=f"{len(exc.errors())} errors") from exc


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:SHOWN_ERRORS]:
        where = ".".join(str(p)[:40] for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg'][:200]}")
    return "Invalid input: " + "; ".join(parts) + "."


async def _permit(
    op: Operation, request: Request, principal: Principal | None, course: str | None
) -> frozenset[str] | None:
    """Ask the operation's permission (AdminRefused 403); the courses a listing may show (None: every one)."""
    if op.scope in (Scope.PUBLIC, Scope.PRINCIPAL) or principal is None:
        return None
    permission = op.permission
    assert isinstance(permission, Permission)
    if op.scope is Scope.HOST:
        await require(request, permission, None)
        return None
    if op.scope is Scope.COURSE or course is not None:
        await require(request, permission, course)
        return None if allowed(principal, permission) else frozenset({course}) if course else None
    await require_anywhere(request, permission)
    if allowed(principal, permission):
        return None
    return frozenset(c for c in principal.courses if allowed(principal, permission, c))


async def _body(op: Operation, request: Request) -> BaseModel:
    assert op.body is not None
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise AdminRefused(413, f"A body is at most {MAX_BODY} bytes.")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise AdminRefused(413, f"A body is at most {MAX_BODY} bytes.")
    if not data.strip():
        return op.body()
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("The body is not JSON.") from exc
    try:
        return op.body.model_validate(value)
    except ValidationError as exc:
        raise InvalidInput(_explain(exc)) from exc
