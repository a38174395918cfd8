"""The admin JSON API (/api/v1): answers, refusals, roles on every operation, and its OpenAPI document."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import jsonschema
import nbformat
import pytest
from nbformat.v4 import new_notebook
from starlette.routing import Mount, Route

from nbhosting_core.errors import Busy, NotFound, StartTimeout
from nbhosting_core.roles import Role
from nbhosting_server.api import OPERATIONS, PREFIX, Operation, Scope
from nbhosting_server.api.openapi import COMMITTED, REGENERATE, document, text
from tests.admin_app import AdminApp

#: a student id that needs percent-encoding in a path
ODD = "edx:a?b#c%d&e=f+g"


def quoted(student_id: str) -> str:
    return urllib.parse.quote(student_id, safe="")


def url_of(op: Operation, course: str = "demo", student_id: str = ODD) -> str:
    return PREFIX + op.path.replace("{course}", course).replace("{student_id}", quoted(student_id))


@pytest.fixture
def api(admin_app: AdminApp) -> AdminApp:
    """The admin app with a second course, ``other``; ODD has a server in demo and in other, bob in other only."""
    other = admin_app.settings.courses_dir / "other"
    other.mkdir()
    nbformat.write(new_notebook(), str(other / "b.ipynb"))
    admin_app.hub.open_notebook("demo", "a.ipynb", ODD)
    admin_app.hub.open_notebook("other", "b.ipynb", ODD)
    admin_app.hub.open_notebook("other", "b.ipynb", "edx:bob")
    return admin_app


# ------------------------------------------------------------------------------------------------ answers


def test_an_admin_sees_every_course_server_student_and_event(api):
    ada = api.bearer("ada")
    assert [c["course"]["name"] for c in ada.get(f"{PREFIX}/courses").json()["courses"]] == ["demo", "other"]
    servers = ada.get(f"{PREFIX}/servers").json()["servers"]
    assert sorted((s["server"]["course"], s["server"]["student_id"]) for s in servers) == [
        ("demo", ODD),
        ("other", ODD),
        ("other", "edx:bob"),
    ]
    assert ada.get(f"{PREFIX}/servers?course=other").json()["servers"][0]["server"]["course"] == "other"
    assert {s["student_id"] for s in ada.get(f"{PREFIX}/students").json()["students"]} == {ODD, "edx:bob"}
    assert len(ada.get(f"{PREFIX}/events?kind=open").json()["events"]) == 3
    me = ada.get(f"{PREFIX}/me").json()
    assert (me["username"], me["role"], me["via"]) == ("ada", "admin", "token") and "manage-host" in me[
        "host_permissions"
    ]


def test_a_teacher_lists_only_their_courses_servers_students_and_events(api):
    tom = api.session("tom")
    assert [c["course"]["name"] for c in tom.get(f"{PREFIX}/courses").json()["courses"]] == ["demo"]
    assert [s["server"]["course"] for s in tom.get(f"{PREFIX}/servers").json()["servers"]] == ["demo"]
    students = tom.get(f"{PREFIX}/students").json()
    assert [(s["student_id"], s["courses"]) for s in students["students"]] == [(ODD, ["demo"])]
    assert {e["course"] for e in tom.get(f"{PREFIX}/events").json()["events"]} == {"demo"}
    assert tom.get(f"{PREFIX}/events?course=other").status_code == 403
    assert tom.get(f"{PREFIX}/servers?course=other").status_code == 403
    assert tom.get(f"{PREFIX}/me").json()["host_permissions"] == []


def test_a_teacher_sees_a_student_of_their_course_in_their_course_only(api):
    tom = api.session("tom")
    view = tom.get(f"{PREFIX}/students/{quoted(ODD)}").json()
    assert [w["course"] for w in view["workspaces"]] == ["demo"]
    assert [s["server"]["course"] for s in view["servers"]] == ["demo"]
    refused = tom.get(f"{PREFIX}/students/edx:bob")  # seen in other only
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    full = api.bearer("ada").get(f"{PREFIX}/students/{quoted(ODD)}").json()
    assert sorted(w["course"] for w in full["workspaces"]) == ["demo", "other"]


def test_a_student_id_that_needs_encoding_names_its_server_and_a_slash_in_it_names_nothing(api):
    ada = api.bearer("ada")
    shown = ada.get(f"{PREFIX}/servers/demo/{quoted(ODD)}")
    assert shown.status_code == 200 and shown.json()["server"]["student_id"] == ODD
    logs = ada.get(f"{PREFIX}/servers/demo/{quoted(ODD)}/logs?lines=5").json()
    assert logs["student_id"] == ODD and logs["lines"] == 5 and "started" in logs["text"]
    slash = ada.get(f"{PREFIX}/servers/demo/edx%2Fa")  # decoded, the path has one more segment: no route
    assert slash.status_code == 404 and slash.json()["error"] == "not-found"
    trailing = ada.get(f"{PREFIX}/servers/demo/{quoted(ODD)}%2F")  # never redirected to the server of ODD
    assert trailing.status_code == 404 and trailing.json()["error"] == "not-found"
    backslash = ada.get(f"{PREFIX}/servers/demo/edx%5Ca")
    assert backslash.status_code == 400 and backslash.json()["error"] == "invalid-input"
    missing = ada.get(f"{PREFIX}/servers/demo/edx:nobody")
    assert missing.status_code == 404 and missing.json()["error"] == "not-found"


def test_stop_and_restart_act_on_the_server_and_are_recorded(api):
    ada = api.bearer("ada")
    stopped = ada.post(f"{PREFIX}/servers/demo/{quoted(ODD)}/stop")
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    restarted = ada.post(f"{PREFIX}/servers/demo/{quoted(ODD)}/restart", json={})
    assert restarted.status_code == 200 and restarted.json()["state"] == "running"
    acted = {e["kind"]: e["actor"] for e in ada.get(f"{PREFIX}/events?course=demo").json()["events"]}
    assert acted["stop"] == "ada" and acted["restart"] == "ada"  # recorded under the staff member's name


@pytest.mark.parametrize(
    "query",
    [
        "lines=0",
        "lines=2001",
        "lines=abc",
        "lines=5&lines=6",
        "line=5",
        "lines=",
        "lines=" + "9" * 5000,
    ],
)
def test_a_bad_query_is_a_400_that_says_why(api, query):
    answer = api.bearer("ada").get(f"{PREFIX}/servers/demo/{quoted(ODD)}/logs?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid-input" and answer.json()["message"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("since=2027-01-01T00:00:00Z&until=2027-01-02", 200),
        ("since=1800000000&until=1800000001.5", 200),
        ("since=nan", 400),
        ("since=inf", 400),
        ("since=-1", 200),
        ("since=1429-10-29t19:52:35.12%2B08:14", 200),
        ("since=2016-12-31T23:59:60Z", 200),
        ("since=1e12", 400),
        ("since=yesterday", 400),
        ("limit=0", 400),
        ("limit=1001", 400),
        ("before_id=0", 400),
        ("kind=nope", 400),
        ("student_id=a/b", 400),
        ("course=a..b", 400),
    ],
)
def test_events_read_moments_as_iso_or_epoch_and_bound_the_rest(api, query, status):
    assert api.bearer("ada").get(f"{PREFIX}/events?{query}").status_code == status


def test_host_samples_of_an_empty_window_are_none(api):
    ada = api.bearer("ada")
    assert ada.get(f"{PREFIX}/host/samples?since=2000&until=1000").json()["samples"] == []
    assert ada.get(f"{PREFIX}/host/samples?since=1000&until=2000").json()["samples"] == []


def test_bodies_are_small_json_objects_and_forms_are_refused_before_anything_reads_them(api):
    ada = api.bearer("ada")
    stop = f"{PREFIX}/servers/demo/{quoted(ODD)}/stop"
    assert ada.post(stop, content=b"x" * 5000, headers={"content-type": "application/json"}).status_code == 413
    assert ada.post(stop, data={"csrf": "x"}).status_code == 415
    assert ada.post(stop, content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
    assert ada.post(stop, json={"force": True}).status_code == 400
    assert ada.post(stop, json=[]).status_code == 400
    running = [s for s in api.hub.backend.list_servers() if s.state.value == "running"]
    assert len(running) == 3  # none of those stopped anything


class Failing:
    """A ServerAdmin whose every call raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str):
        def fail(*args, **kwargs):
            raise self.error

        return fail


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (NotFound("No such course."), 404, "not-found"),
        (Busy("Too many servers.", retry_after=12.5, why="cap"), 503, "busy"),
        (StartTimeout("Too slow."), 504, "start-timeout"),
    ],
)
def test_nbhosting_errors_are_json_with_their_status_and_retry_after(api, error, status, slug):
    api.app.state.server_admin = Failing(error)
    answer = api.bearer("ada").post(f"{PREFIX}/servers/demo/x/restart")
    assert answer.status_code == status and answer.json()["error"] == slug
    assert answer.json()["message"] == error.message
    if isinstance(error, Busy):
        assert answer.headers["retry-after"] == "13" and answer.json()["retry_after"] == 13


def test_an_app_without_a_way_to_the_servers_answers_503(api):
    api.app.state.server_admin = None
    answer = api.bearer("ada").get(f"{PREFIX}/servers")
    assert answer.status_code == 503 and answer.json()["error"] == "unavailable"


def test_unknown_addresses_and_methods_under_the_api_are_json(api):
    ada = api.bearer("ada")
    assert ada.get(f"{PREFIX}/nothing").json()["error"] == "not-found"
    wrong = ada.delete(f"{PREFIX}/servers")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method-not-allowed"


# ------------------------------------------------------------------------------------------------ roles


#: the status each way in gets, by the operation's scope (course: demo; the student: seen in demo)
EXPECTED = {
    Scope.PUBLIC: {"admin": 200, "teacher": 200, "other-teacher": 200, "lowered-token": 200, "nobody": 200},
    Scope.PRINCIPAL: {"admin": 200, "teacher": 200, "other-teacher": 200, "lowered-token": 200, "nobody": 401},
    Scope.HOST: {"admin": 200, "teacher": 403, "other-teacher": 403, "lowered-token": 403, "nobody": 401},
    Scope.COURSE: {"admin": 200, "teacher": 200, "other-teacher": 403, "lowered-token": 403, "nobody": 401},
    Scope.LISTING: {"admin": 200, "teacher": 200, "other-teacher": 200, "lowered-token": 403, "nobody": 401},
    Scope.STUDENT: {"admin": 200, "teacher": 200, "other-teacher": 403, "lowered-token": 403, "nobody": 401},
}


def test_every_operation_as_every_role(api):
    """Walks OPERATIONS: a new operation is walked as soon as it is in the table."""
    walker = "lti:w?#%"  # seen in demo only
    api.hub.open_notebook("demo", "a.ipynb", walker)
    clients = {
        "admin": api.bearer("ada"),
        "teacher": api.session("tom"),
        "other-teacher": api.session("ned"),
        "lowered-token": api.bearer("ada", role=Role.TEACHER),  # an admin's token made a teacher's: no course
        "nobody": api.client,
    }
    seen = []
    for op in OPERATIONS:
        for who, client in clients.items():
            headers = getattr(client, "write_headers", {}) if op.method != "GET" else {}
            answer = client.request(op.method, url_of(op, student_id=walker), headers=headers)
            seen.append((op.name, who, answer.status_code))
            assert answer.status_code == EXPECTED[op.scope][who], (op.name, who, answer.text)
            assert answer.headers["content-type"] == "application/json"
            if answer.status_code != 200:
                assert set(answer.json()) == {"error", "message"}
    assert len(seen) == len(OPERATIONS) * len(clients)


def test_a_session_write_needs_its_csrf_token_and_a_bearer_write_none(api):
    stop = f"{PREFIX}/servers/demo/{quoted(ODD)}/stop"
    tom = api.session("tom")
    assert tom.post(stop).status_code == 403
    assert tom.post(stop, headers={"Origin": "https://evil.example", "X-CSRF-Token": tom.csrf}).status_code == 403
    assert all(s.state.value == "running" for s in api.hub.backend.list_servers())
    assert tom.post(stop, headers=tom.write_headers).status_code == 200
    assert api.bearer("tom").post(f"{PREFIX}/servers/demo/{quoted(ODD)}/restart").status_code == 200


# ------------------------------------------------------------------------------------------------ OpenAPI


def test_the_committed_openapi_document_is_the_one_the_code_makes():
    assert COMMITTED.read_text() == text(), f"the API changed: write its document again with\n    {REGENERATE}"


def test_the_openapi_document_is_served_to_anybody(api):
    answer = api.client.get(f"{PREFIX}/openapi.json")
    assert answer.status_code == 200 and answer.json() == json.loads(text())
    assert answer.json()["openapi"] == "3.1.0"


def test_every_mounted_api_route_is_in_the_document_and_every_documented_one_is_mounted(api):
    mounts = [route for route in api.app.routes if isinstance(route, Mount) and route.path.startswith("/api")]
    assert [m.path for m in mounts] == [PREFIX]
    # beside the mount, only its root's JSON 404 (``/api/v1`` itself is no operation)
    assert [r.name for r in api.app.routes if isinstance(r, Route) and r.path.startswith("/api")] == ["api-root"]
    mounted = {
        (PREFIX + route.path, method)
        for route in mounts[0].routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method.upper()) for path, item in document()["paths"].items() for method in item}
    assert mounted == documented and len(mounted) == len(OPERATIONS)


def test_every_reference_in_the_document_resolves():
    doc = document()
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    names = {f"#/components/schemas/{name}" for name in doc["components"]["schemas"]}
    assert refs <= names, refs - names


def test_the_readme_lists_every_operation_with_its_permission():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for op in OPERATIONS:
        line = next((row for row in readme.splitlines() if row.startswith(f"| `{op.method} {PREFIX}{op.path}")), None)
        assert line is not None, f"README's Admin API lacks {op.method} {op.path}"
        assert op.permission is None or f"| {op.permission.value} |" in line, line


def test_the_api_packages_surface_is_what_all_says_and_sorted():
    from nbhosting_server import api as package

    assert package.__all__ == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name).__doc__ or name in ("OPERATIONS", "PREFIX"), name


def test_every_answer_and_refusal_matches_its_documented_schema(api):
    doc = document()

    def check(value, schema):
        jsonschema.validate(value, {**schema, "components": doc["components"]}, cls=jsonschema.Draft202012Validator)

    ada, nobody = api.bearer("ada"), api.client
    for op in OPERATIONS:
        responses = doc["paths"][PREFIX + op.path][op.method.lower()]["responses"]
        answer = ada.request(op.method, url_of(op))
        assert answer.status_code == 200, (op.name, answer.text)
        check(answer.json(), responses["200"]["content"]["application/json"]["schema"])
        if op.scope is not Scope.PUBLIC:
            refused = nobody.request(op.method, url_of(op))
            check(refused.json(), responses[str(refused.status_code)]["content"]["application/json"]["schema"])


@pytest.mark.parametrize("path", [f"{PREFIX}/courses/..", f"{PREFIX}/courses/../..", f"{PREFIX}/students/.."])
def test_a_path_a_client_shortens_to_the_apis_root_is_a_json_404(api, path):
    # hypothesis found these: a client resolves the dots, to /api/v1 (once redirected) or /api (once an HTML page)
    answer = api.bearer("ada").get(path, follow_redirects=False)
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/json", answer.text[:200]
    assert answer.json()["error"] == "not-found"
