"""The helper's operations on students' notebooks: through a real helper socket to a hub on the in-memory backend,
the same answers and exceptions as the hub's; a download's bytes after the line; hostile requests refused."""

from __future__ import annotations

import asyncio
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import FakeAccounts, FakeBackend, Hub, InvalidInput, NotFound, RuntimeUnavailable
from nbhosting_core.helper import HelperServer
from nbhosting_core.helper.protocol import MAX_ANSWER, Response
from nbhosting_core.shares import read_page
from tests.unit.test_helper import Running, make_settings, refusal, snapshot


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    s = make_settings(tmp_path)
    return Hub(s, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(s.students_dir))


@pytest.fixture
def helper(hub: Hub):
    running = Running(hub)
    running.server.work = hub.work
    yield running
    running.close()


def line(op: str, **fields: Any) -> bytes:
    return json.dumps({"v": 1, "op": op, **fields}).encode() + b"\n"


def test_the_notebooks_through_the_helper_are_the_hubs(helper: Running, hub: Hub) -> None:
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    (hub.accounts.find("alice").home / "python" / "w1" / "mine.ipynb").write_text("{}")
    listed = helper.client.notebooks("python", "alice")
    assert [n.notebook for n in listed.notebooks] == ["w1/intro.ipynb", "w1/mine.ipynb"]
    assert listed == hub.work.notebooks("python", "alice")
    with pytest.raises(NotFound):
        helper.client.notebooks("python", "nobody")


def test_a_list_of_the_longest_paths_stays_within_an_answer(helper: Running, hub: Hub) -> None:
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    folder = hub.accounts.find("alice").home / "python"
    for n in range(14):  # 250-byte folders of 4-byte characters: paths of ~980 characters, ~3.8 KiB as JSON
        folder = folder / ("\U0001f600" * 62 + f"{n:02d}")
    folder.mkdir(parents=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for n in range(300):
            os.close(os.open(f"{n:03d}" + "\U0001f600" * 61 + ".ipynb", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    listed = helper.client.notebooks("python", "alice")
    assert listed.truncated and 100 < len(listed.notebooks) < 300
    assert len(Response(ok=True, notebooks=listed).model_dump_json().encode()) < MAX_ANSWER


def test_reset_backups_and_restore_through_the_helper_are_the_hubs(helper: Running, hub: Hub) -> None:
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    copy = hub.accounts.find("alice").home / "python" / "w1" / "intro.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("mine")]), str(copy))
    reset = helper.client.reset("python", "w1/intro.ipynb", "alice")
    assert reset.backup is not None and reset.copied
    assert helper.client.backups("python", None, "alice") == [reset.backup]
    restored = helper.client.restore("python", "w1/intro.ipynb", "alice", reset.backup.id)
    assert restored.backup is not None and "mine" in copy.read_text()
    assert len(helper.client.backups("python", "w1/intro.ipynb", "alice")) == 2


def test_downloads_come_as_bytes_after_the_answer(helper: Running, hub: Hub) -> None:
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    (hub.accounts.find("alice").home / "python" / "big.bin").write_bytes(os.urandom(3 * 2**20))  # over a spool
    notebook = helper.client.download_notebook("python", "w1/intro.ipynb", "alice")
    assert notebook.filename == "intro.ipynb" and json.loads(notebook.stream.read())["cells"]
    workspace = helper.client.download_workspace("python", "alice")
    data = workspace.stream.read()
    assert len(data) == workspace.size
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["python/big.bin", "python/w1/intro.ipynb"]
    helper.client.ping()  # the connection's stream stayed in step


def test_a_payload_over_the_clients_cap_is_refused(helper: Running, hub: Hub) -> None:
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    helper.client.max_payload = 10
    with pytest.raises(RuntimeUnavailable):
        helper.client.download_notebook("python", "w1/intro.ipynb", "alice")


def test_share_and_unshare_through_the_helper(helper: Running, hub: Hub) -> None:
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    share = helper.client.share("python", "w1/intro.ipynb", "alice")
    assert read_page(hub.settings, share.token) is not None
    assert helper.client.shares("python", "alice") == [share] == helper.client.shares(None, "alice")
    assert helper.client.unshare("python", "w1/intro.ipynb", "alice") == share
    assert helper.client.unshare("python", "w1/intro.ipynb", "alice") is None
    assert read_page(hub.settings, share.token) is None


def test_the_hubs_errors_come_back_as_the_same_exceptions(helper: Running, hub: Hub) -> None:
    with pytest.raises(NotFound):
        helper.client.reset("python", "w1/intro.ipynb", "nobody")
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    with pytest.raises(NotFound):
        helper.client.restore("python", "w1/intro.ipynb", "alice", "20200101T000000Z")
    with pytest.raises(InvalidInput):
        helper.client.restore("python", "w1/intro.ipynb", "alice", "../../x")


def test_a_helper_without_students_work_refuses_it(hub: Hub) -> None:
    running = Running(hub)  # work not given
    try:
        with pytest.raises(RuntimeUnavailable):
            running.client.backups("python", None, "alice")
    finally:
        running.close()


HOSTILE = [
    line("notebooks", course="../students", student_id="alice"),
    line("notebooks", course="python", student_id="alice/../bob"),
    line("notebooks", course="python", student_id="alice", path="/etc"),
    line("notebooks", course="python", student_id="alice", notebook="../../etc/shadow"),
    line("notebooks", course="python"),
    line("reset", course="python", notebook="../../etc/shadow", student_id="alice"),
    line("restore", course="python", notebook="w1/intro.ipynb", student_id="alice", backup="../../../etc/shadow"),
    line("restore", course="python", notebook="w1/intro.ipynb", student_id="alice", backup="20200101T000000Z/../x"),
    line("backups", course="python", notebook="/etc/passwd", student_id="alice"),
    line("download", course="python", notebook="w1/.hidden.ipynb", student_id="alice"),
    line("download-workspace", course="../students", student_id="alice"),
    line("download-workspace", course="python", student_id="alice", path="/etc"),
    line("share", course="python", notebook="w1/intro.ipynb", student_id="alice/../bob"),
    line("shares", course="python", student_id="alice", token="x"),
    line("unshare", course="python", student_id="alice"),
]


@pytest.mark.parametrize("request_line", HOSTILE)
def test_hostile_students_requests_are_refused_before_the_hub(helper: Running, request_line: bytes) -> None:
    assert refusal(helper.raw(request_line))["reason"] == "invalid-input"


FUZZ = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["..", "/", "../x", "/etc/shadow", "w1/intro.ipynb", "20200101T000000Z", "bob", "alice"]),
)


@FUZZ
@given(
    op=st.sampled_from(
        ["notebooks", "reset", "backups", "restore", "download", "download-workspace", "share", "unshare", "shares"]
    ),
    course=st.one_of(texts, st.just("python")),
    notebook=st.one_of(texts, st.none()),
    student=st.one_of(texts, st.just("alice")),
    backup=st.one_of(texts, st.none()),
)
def test_fuzzed_students_requests_never_touch_another_students_files(
    tmp_path_factory: pytest.TempPathFactory, op: str, course: Any, notebook: Any, student: Any, backup: Any
) -> None:
    s = make_settings(tmp_path_factory.mktemp("fuzz"))
    hub = Hub(s, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(s.students_dir))
    bob = hub.open_notebook("python", "w1/intro.ipynb", "bob")
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    before = snapshot(s.data_root, exclude=None)
    body = {"course": course, "notebook": notebook, "student_id": student, "backup": backup}
    raw = line(op, **{k: v for k, v in body.items() if v is not None})
    server = HelperServer(hub, allowed=frozenset(), workers=1, timeout=5, work=hub.work)
    response = asyncio.run(server.answer(raw, os.geteuid()))
    after = snapshot(s.data_root, exclude=None)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert isinstance(response, Response)
    if student != "bob":
        assert not any(bob.user in p for p in changed), changed
