"""The API's OpenAPI 3.1 document, made from :data:`~.table.OPERATIONS` and the models' JSON schemas (pure).

Served (to anybody) at ``/api/v1/openapi.json``; a copy is committed beside this module (``openapi.json``), and a
test fails when the two differ. To write the copy again after changing the API::

    python -m nbhosting_server.api.openapi > nbhosting_server/api/openapi.json
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..admin.auth import SECURE_COOKIE
from .models import COURSE_SCHEMA, STUDENT_ID_SCHEMA, ApiError
from .table import OPERATIONS, PREFIX, Operation, Scope

#: the committed copy of the document
COMMITTED = Path(__file__).with_name("openapi.json")
REGENERATE = "python -m nbhosting_server.api.openapi > nbhosting_server/api/openapi.json"
REF = "#/components/schemas/{model}"
ERRORS = {
    400: "Invalid input: a course name, student id, query parameter or body refused (says which and why).",
    401: "No staff session nor valid API token.",
    403: "Not allowed for this principal (or a session's write without its CSRF token, or from another site).",
    404: "No such course, or no server of that student in that course.",
    413: "The body is too large.",
    415: "The body is not JSON.",
    503: "The host, its servers or the database cannot be reached now, or the host is busy (Retry-After).",
    504: "The server did not start again in time.",
}
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "course": {"description": "A course's name.", "schema": COURSE_SCHEMA},
    "student_id": {
        "description": "A student id (the platform's name, ':', its id), percent-encoded: it may hold '?', '#', '%'.",
        "schema": STUDENT_ID_SCHEMA,
    },
}


def statuses(op: Operation) -> list[int]:
    """Every status ``op`` may answer but 200 (those all operations may, and its own)."""
    codes = {400, *op.errors}
    if op.scope is not Scope.PUBLIC:
        codes |= {401, 403}
    if op.body is not None:
        codes |= {413, 415}
    if op.scope not in (Scope.PUBLIC, Scope.PRINCIPAL):
        codes.add(503)
    return sorted(codes)


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`~.table.OPERATIONS`."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ApiError, "serialization")]
    for op in OPERATIONS:
        wanted.append((op.query, "validation"))
        if op.body is not None:
            wanted.append((op.body, "validation"))
        if op.answer is not None:
            wanted.append((op.answer, "serialization"))
    refs, top = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        query = schemas[refs[(op.query, "validation")]["$ref"].rsplit("/", 1)[1]]
        parameters = [{"name": name, "in": "path", "required": True, **PATH_PARAMS[name]} for name in op.path_params]
        for name, schema in query.get("properties", {}).items():
            parameter = {"name": name, "in": "query", "required": name in query.get("required", ()), "schema": schema}
            if "description" in schema:
                parameter["description"] = schema["description"]
            parameters.append(parameter)
        answer = refs[(op.answer, "serialization")] if op.answer is not None else {"type": "object"}
        operation: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "description": _who(op),
            "x-nbhosting-scope": op.scope.value,
            "security": [] if op.scope is Scope.PUBLIC else [{"bearer": []}, {"session": []}],
            "responses": {
                "200": {"description": op.summary, "content": {"application/json": {"schema": answer}}},
                **{
                    str(code): {"description": ERRORS[code], "content": {"application/json": {"schema": _error()}}}
                    for code in statuses(op)
                },
            },
        }
        if op.permission is not None:
            operation["x-nbhosting-permission"] = op.permission.value
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            body = refs[(op.body, "validation")]
            operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = operation
    for op in OPERATIONS:  # the query models are parameters, not bodies
        schemas.pop(refs[(op.query, "validation")]["$ref"].rsplit("/", 1)[1], None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nbhosting admin API",
            "version": "1",
            "description": "Courses, students, servers, events and statistics of an nbhosting host, for its staff. "
            "Every call but this document's needs a staff session (and, to write, its X-CSRF-Token) or an API "
            "token (Authorization: Bearer nbh_..., made with `nbh token create`).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token: nbh_..."},
                "session": {"type": "apiKey", "in": "cookie", "name": SECURE_COOKIE},
            },
        },
    }


def _error() -> dict[str, str]:
    return {"$ref": REF.format(model=ApiError.__name__)}


def _who(op: Operation) -> str:
    permission = op.permission.value if op.permission is not None else ""
    return {
        Scope.PUBLIC: "Anybody.",
        Scope.PRINCIPAL: "Any staff member.",
        Scope.HOST: f"Permission {permission} on the whole host (admins).",
        Scope.COURSE: f"Permission {permission} on the path's course.",
        Scope.LISTING: f"Permission {permission} on the query's course when given, else on at least one course: "
        "the answer holds only the courses the caller may see.",
        Scope.STUDENT: f"Permission {permission} on the query's course when given, else on at least one course; a "
        "teacher sees only a student seen in their courses, and only those courses' workspaces and servers.",
    }[op.scope]


def text() -> str:
    """The document as committed: indented, keys sorted, one newline at the end."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(text())
