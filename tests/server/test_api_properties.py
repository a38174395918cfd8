"""Property-based: every API operation, fed malformed and hostile paths, query strings, bodies and content types by
an admin, answers JSON, 2xx for valid input or 4xx with a message, never a 5xx; and a refused request changes
nothing (the servers, the staff and their tokens, the students' files).

In process (Starlette's TestClient, no socket), on the fake backend; about 60 examples an operation.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbhosting_server.api import OPERATIONS, PREFIX, Operation
from tests.admin_app import AdminApp, make_admin_app

STUDENT = "edx:x?y#%z"
EXAMPLES = int(os.environ.get("NBH_API_EXAMPLES", "60"))

#: text an attacker or a broken script sends: controls, separators, traversal, encodings, huge and odd numbers
HOSTILE = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="ascii"), max_size=400),
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "../..",
            "a..b",
            "demo/../other",
            "%2e%2e",
            "%00",
            "\x00",
            "\\",
            "/",
            "demo\n",
            " demo",
            "demo ",
            "-1",
            "0",
            "1e309",
            "nan",
            "inf",
            "-inf",
            "9" * 40,
            "1" * 3000,
            "true",
            "yes",
            "null",
            "[]",
            "{}",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-23:59",
            "2027-02-30",
            "\u202edemo",
            "démo",
            "x" * 65,
            "x" * 301,
            STUDENT,
            "demo",
        ]
    ),
    st.integers().map(str),
    st.floats().map(repr),
)


def _known_names(op: Operation) -> list[str]:
    return [*op.query.model_fields, "course", "student_id", "lines", "limit", "since"]


@st.composite
def requests(draw: Any, op: Operation) -> dict[str, Any]:
    """A request for ``op``: its path filled with hostile (or valid) values, a hostile query, body and headers."""
    path = PREFIX + op.path
    for name in op.path_params:
        value = draw(st.one_of(st.just("demo" if name == "course" else STUDENT), HOSTILE))
        encoded = draw(st.sampled_from([urllib.parse.quote(value, safe=""), urllib.parse.quote(value, safe="/%")]))
        path = path.replace("{" + name + "}", encoded or "%20")
    names = st.one_of(st.sampled_from(_known_names(op)), st.text(max_size=20))
    pairs = draw(st.lists(st.tuples(names, HOSTILE), max_size=6))
    query = urllib.parse.urlencode(pairs)
    if draw(st.booleans()):
        query = draw(st.sampled_from([query + "&&&", query + "=%", "%zz=1", query + "&" + "a=b" * 2000]))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=10,
    )
    body = draw(
        st.one_of(
            st.just(b""),
            st.binary(max_size=200),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.just(b"{}" + b" " * 5000),
            st.just(b"{" * 3000),
        )
    )
    content_type = draw(
        st.sampled_from(
            [None, "application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"]
        )
    )
    method = draw(st.sampled_from([op.method, op.method, op.method, "GET", "POST", "PUT", "DELETE", "PATCH"]))
    headers = {"content-type": content_type} if content_type else {}
    return {"method": method, "url": path + (f"?{query}" if query else ""), "content": body, "headers": headers}


def snapshot(api: AdminApp) -> Any:
    """What a refused request must leave as it was."""
    servers = sorted((s.name, s.state.value, s.key, s.image, s.started_at) for s in api.hub.backend.list_servers())
    members = [m.model_dump() for m in api.store.members()]
    tokens = [t.model_dump(exclude={"last_used"}) for t in api.store.tokens()]
    files = sorted(
        (str(p.relative_to(api.settings.students_dir)), p.stat().st_size)
        for p in Path(api.settings.students_dir).rglob("*")
    )
    return servers, members, tokens, files


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> AdminApp:
    made = make_admin_app(tmp_path_factory.mktemp("api-properties"))
    made.hub.open_notebook("demo", "a.ipynb", STUDENT)
    return made


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_input_is_a_4xx_with_a_message_and_changes_nothing(api: AdminApp, op: Operation, data: Any) -> None:
    ada = api.bearer("ada") if not hasattr(api, "ada") else api.ada  # type: ignore[attr-defined]
    api.ada = ada  # type: ignore[attr-defined]
    request = data.draw(requests(op))
    before = snapshot(api)
    answer = ada.request(**request)
    assert answer.status_code < 500, (request, answer.status_code, answer.text[:500])
    if not (answer.url.path == "/api" or answer.url.path.startswith("/api/")):
        # the client resolved the dots out of /api (``/api/v1/servers/../../../logs`` is ``/logs``): the site's
        # own 404 page answers, no API call was made
        assert answer.status_code == 404 and snapshot(api) == before, request
        return
    assert answer.headers["content-type"] == "application/json", (request, answer.text[:200])
    body = answer.json()
    if answer.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"], body
        assert isinstance(body.get("message"), str) and body["message"], body
        assert snapshot(api) == before, request
    else:
        assert answer.status_code == 200, request
