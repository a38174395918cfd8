"""What admins do to students' servers (:mod:`nbhosting_core.serveradmin`): list, show, stop, restart, logs, on a hub
with the in-memory backend, and the same through a real helper socket: the same answers and exceptions; a server is
named by (course, student id) alone, and a request for one student never touches another's server; whatever else a
client sends is refused before the hub (hostile lines, and fuzzed with hypothesis)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from nbhosting_core import (
    Action,
    Busy,
    FakeAccounts,
    FakeBackend,
    HelperClient,
    Hub,
    InvalidInput,
    NotFound,
    RuntimeUnavailable,
    ServerAdmin,
    ServerState,
    ServerView,
)
from nbhosting_core.coursemodels import Course, PullResult
from nbhosting_core.helper import HelperServer
from nbhosting_core.helper.protocol import Response
from nbhosting_core.serveradmin import MAX_LOG_BYTES, MAX_LOG_LINES, log_tail, redact_credentials, validate_log_lines
from tests.unit.test_helper import STUDENTS, Running, make_settings, mostly, refusal, student_state


class Images:
    """The hub's course images, as a test sets them: what new servers of each course get."""

    def __init__(self) -> None:
        self.current: dict[str, str | Path] = {}

    def image_for(self, course: str) -> str | Path | None:
        return self.current.get(course)

    def mark_used(self, image: str | Path) -> None:
        """A start on ``image``: nothing to keep from the prune here."""


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    s = make_settings(tmp_path)
    (s.courses_dir / "other").mkdir()
    hub = Hub(s, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(s.students_dir))
    hub.images = Images()  # type: ignore[assignment]
    return hub


@pytest.fixture
def helper(hub: Hub):
    running = Running(hub)
    running.server.admin = hub
    yield running
    running.close()


def backend(hub: Hub) -> FakeBackend:
    assert isinstance(hub.backend, FakeBackend)
    return hub.backend


def launched(hub: Hub, student: str, course: str = "python"):
    return hub.open_notebook(course, "w1/intro.ipynb", student)


# ------------------------------------------------------------------------------------------ the interface


def test_the_hub_and_the_helpers_client_have_the_interfaces_signatures() -> None:
    for name in (
        "list_courses",
        "course_view",
        "student_view",
        "list_servers",
        "server_view",
        "stop_server",
        "restart_server",
        "server_logs",
    ):
        wanted = inspect.signature(getattr(ServerAdmin, name))
        assert inspect.signature(getattr(Hub, name)) == wanted, name
        assert inspect.signature(getattr(HelperClient, name)) == wanted, name


# ------------------------------------------------------------------------------------------ on the hub


def test_list_says_each_servers_image_and_whether_it_is_old_and_filters_by_course(hub: Hub) -> None:
    launched(hub, "alice")
    launched(hub, "bob")
    views = hub.list_servers()
    assert {v.server.student_id for v in views} == {"alice", "bob"}
    assert all(v.image_label == "fake-image" and v.old_image is None for v in views)  # no course image: unknown
    hub.images.current["python"] = "/images/course-python-2-0123456789ab/rootfs"  # type: ignore[attr-defined]
    assert all(v.old_image is True for v in hub.list_servers(course="python"))
    assert hub.list_servers(course="other") == []
    with pytest.raises(InvalidInput):
        hub.list_servers(course="../python")


def test_details_bring_activity_and_usage(hub: Hub) -> None:
    launch = launched(hub, "alice")
    plain = hub.list_servers()[0]
    assert plain.activity is None and plain.usage is None
    detailed = hub.list_servers(details=True)[0]
    assert detailed.activity is not None and detailed.usage is not None
    view = hub.server_view("python", "alice")
    assert view.server.key == launch.key and view.activity is not None and view.age_seconds is not None


def test_a_student_without_a_server_is_not_found(hub: Hub) -> None:
    launched(hub, "alice")
    for call in (hub.server_view, hub.stop_server, hub.restart_server, hub.server_logs):
        with pytest.raises(NotFound):
            call("python", "bob")
        with pytest.raises(NotFound):
            call("other", "alice")


def test_stop_keeps_the_server_and_its_key_and_the_next_launch_starts_it(hub: Hub) -> None:
    launch = launched(hub, "alice")
    stopped = hub.stop_server("python", "alice")
    assert stopped.state is ServerState.STOPPED and stopped.key == launch.key
    assert hub.stop_server("python", "alice").state is ServerState.STOPPED  # again: nothing to do
    again = launched(hub, "alice")
    assert again.action is Action.START and again.key == launch.key


def test_restart_on_the_same_image_keeps_the_key_and_copies_nothing(hub: Hub) -> None:
    launch = launched(hub, "alice")
    copy = hub.accounts.find("alice").home / "python" / "w1" / "intro.ipynb"
    copy.write_text('{"mine": true}')
    restarted = hub.restart_server("python", "alice")
    assert restarted.state is ServerState.RUNNING and restarted.key == launch.key
    assert [verb for verb, name in backend(hub).journal if name == restarted.name][-2:] == ["stop", "start"]
    assert copy.read_text() == '{"mine": true}'  # no notebook copied over the student's
    assert hub.activity.last_seen(restarted.key) is not None  # the culler sees it as just used


def test_restart_moves_a_server_on_an_old_image_to_its_courses_newest(hub: Hub) -> None:
    launch = launched(hub, "alice")
    hub.images.current["python"] = "course-python-2"  # type: ignore[attr-defined]
    assert hub.server_view("python", "alice").old_image is True
    restarted = hub.restart_server("python", "alice")
    assert restarted.image == "course-python-2" and restarted.key != launch.key
    assert hub.server_view("python", "alice").old_image is False
    assert hub.activity.last_seen(launch.key) is None  # the old key is forgotten


def test_restart_of_a_stopped_server_meets_the_cap_and_does_nothing_when_refused(tmp_path: Path) -> None:
    s = make_settings(tmp_path, max_running=1)
    hub = Hub(s, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(s.students_dir))
    launched(hub, "alice")
    hub.stop_server("python", "alice")
    launched(hub, "bob")  # takes the one place
    journal = list(backend(hub).journal)
    with pytest.raises(Busy):
        hub.restart_server("python", "alice")
    assert backend(hub).journal == journal
    assert hub.server_view("python", "alice").server.state is ServerState.STOPPED


def test_a_restart_that_fails_leaves_the_server_stopped_and_releases_its_student(hub: Hub) -> None:
    launched(hub, "alice")
    backend(hub).unavailable()
    with pytest.raises(RuntimeUnavailable):
        hub.restart_server("python", "alice")
    assert hub.server_view("python", "alice").server.state is ServerState.STOPPED
    assert hub.accounts.find("alice").user not in backend(hub).held()


def test_logs_are_the_servers_own_bounded_tail(hub: Hub) -> None:
    launch = launched(hub, "alice")
    name = hub.server_view("python", "alice").server.name
    assert launch.key[:8] in hub.server_logs("python", "alice")  # what it printed as it started
    backend(hub).emit(name, "\n".join(f"line {i}" for i in range(5000)))
    assert hub.server_logs("python", "alice", lines=3) == "line 4997\nline 4998\nline 4999\n"
    assert hub.server_logs("python", "alice").count("\n") == 200
    everything = hub.server_logs("python", "alice", lines=MAX_LOG_LINES)
    assert everything.count("\n") == MAX_LOG_LINES
    hub.stop_server("python", "alice")
    kept = hub.server_logs("python", "alice", lines=MAX_LOG_LINES)  # a stopped server keeps its log
    assert kept.endswith("stopped\n") and "line 4999\n" in kept
    for lines in (0, -1, MAX_LOG_LINES + 1, True):
        with pytest.raises(InvalidInput):
            hub.server_logs("python", "alice", lines=lines)


def test_logs_never_carry_a_terminals_control_sequences_nor_more_than_the_cap(hub: Hub) -> None:
    launched(hub, "alice")
    name = hub.server_view("python", "alice").server.name
    backend(hub).emit(name, "\x1b]0;pwned\x07\x1b[2J" + "x" * 4000)
    backend(hub).emit(name, "\n".join("y" * 1000 for _ in range(1000)))
    text = hub.server_logs("python", "alice", lines=MAX_LOG_LINES)
    assert len(text.encode()) <= MAX_LOG_BYTES and text.startswith("y") and text.endswith("y\n")
    assert not any(c in text for c in "\x1b\x07\r")


def test_log_tail_keeps_the_end_from_a_whole_line_and_replaces_what_is_not_text() -> None:
    assert log_tail([b"ab\n", b"\xffc\r\n"]) == "ab\n\ufffdc\ufffd\n"
    lines = [b"first line\n", b"second\n", b"third\n"]
    assert log_tail(lines, max_bytes=14) == "second\nthird\n"  # the last 14 bytes start on a line
    assert log_tail(lines, max_bytes=12) == "third\n"  # "cond" is half a line: dropped
    big = log_tail((b"z" * 99 + b"\n" for _ in range(100_000)), max_bytes=1000)
    assert big == ("z" * 99 + "\n") * 10


@given(st.lists(st.binary(max_size=3000), max_size=40), st.integers(min_value=16, max_value=4096))
def test_log_tail_is_bounded_and_text_whatever_the_bytes(chunks: list[bytes], cap: int) -> None:
    text = log_tail(chunks, max_bytes=cap)
    assert len(text.encode()) <= cap
    assert all(c in "\t\n" or (ord(c) >= 0x20 and not 0x7F <= ord(c) < 0xA0) for c in text)


def test_validate_log_lines() -> None:
    assert validate_log_lines(1) == 1 and validate_log_lines(MAX_LOG_LINES) == MAX_LOG_LINES
    for bad in (0, MAX_LOG_LINES + 1, "5", 2.0, None, False):
        with pytest.raises(InvalidInput):
            validate_log_lines(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ one student, not another


def test_acting_on_one_student_never_touches_anothers_server(hub: Hub) -> None:
    launched(hub, "alice")
    bob = launched(hub, "bob")
    launched(hub, "alice", "python")
    bob_name = hub.server_view("python", "bob").server.name
    before = [(v, n) for v, n in backend(hub).journal if n == bob_name]
    hub.stop_server("python", "alice")
    hub.restart_server("python", "alice")
    hub.server_logs("python", "alice")
    hub.stop_server("python", "alice")
    assert [(v, n) for v, n in backend(hub).journal if n == bob_name] == before
    view = hub.server_view("python", "bob")
    assert view.server.state is ServerState.RUNNING and view.server.key == bob.key


# ------------------------------------------------------------------------------------------ through the helper


def test_through_the_helper_the_answers_are_the_hubs(helper: Running, hub: Hub) -> None:
    launched(hub, "alice")
    launched(hub, "bob")
    client = helper.client

    def timeless(views: list[ServerView]) -> list[ServerView]:
        return [v.model_copy(update={"idle_seconds": None, "age_seconds": None}) for v in views]

    assert timeless(client.list_servers()) == timeless(hub.list_servers())
    assert client.list_servers(course="python", details=True)[0].usage is not None
    assert client.server_view("python", "alice").server == hub.server_view("python", "alice").server
    assert client.server_logs("python", "alice", lines=1) == hub.server_logs("python", "alice", lines=1)
    stopped = client.stop_server("python", "alice")
    assert stopped.state is ServerState.STOPPED
    restarted = client.restart_server("python", "alice")
    assert restarted.state is ServerState.RUNNING and restarted.key == stopped.key
    with pytest.raises(NotFound):
        client.server_view("python", "nobody")
    with pytest.raises(InvalidInput):
        client.server_logs("python", "alice", lines=0)
    with pytest.raises(InvalidInput):
        client.list_servers(course="../x")
    client.ping()


def test_a_long_list_comes_as_a_payload(helper: Running, hub: Hub) -> None:
    for i in range(1500):  # more than an answer's line holds: ~700 bytes each
        launched(hub, f"student-{i}")
        hub.stop_server("python", f"student-{i}")  # stopped servers are listed too (and the cap is 100)
    views = helper.client.list_servers(details=True)
    assert len(views) == 1500 and {v.server.state for v in views} == {ServerState.STOPPED}
    helper.client.ping()


def test_a_logs_answer_fits_the_clients_line_whatever_the_server_printed(helper: Running, hub: Hub) -> None:
    launched(hub, "alice")
    name = hub.server_view("python", "alice").server.name
    backend(hub).emit(name, "\n".join('"\\\x00' * 700 for _ in range(MAX_LOG_LINES)))
    text = helper.client.server_logs("python", "alice", lines=MAX_LOG_LINES)
    assert 0 < len(text.encode()) <= MAX_LOG_BYTES


def test_a_helper_without_admin_refuses_it(hub: Hub) -> None:
    running = Running(hub)
    try:
        with pytest.raises(RuntimeUnavailable):
            running.client.list_servers()
    finally:
        running.close()


def line(op: str, **fields: Any) -> bytes:
    return json.dumps({"v": 1, "op": op, **fields}).encode() + b"\n"


HOSTILE = [
    line("server", course="python", student_id="alice/../bob"),
    line("server", course="../python", student_id="alice"),
    line("server", course="python", student_id="alice", name="nbt-x-python"),  # never a container's name
    line("server", name="nbt-0123-python"),
    line("stop-server", course="python"),
    line("stop-server", course="python", student_id="alice", path="/etc"),
    line("restart-server", course="python;reboot", student_id="alice"),
    line("restart-server", course="python", student_id=["alice", "bob"]),
    line("stop-server", course="python", student_id="alice", by="ada\nroot"),  # a staff name is a name
    line("restart-server", course="python", student_id="alice", by="x" * 65),
    line("course", course="../python"),
    line("student", student_id="alice", course="/etc"),
    line("server-logs", course="python", student_id="alice", lines=0),
    line("server-logs", course="python", student_id="alice", lines=MAX_LOG_LINES + 1),
    line("server-logs", course="python", student_id="alice", lines="10"),
    line("server-logs", course="python", student_id="alice", lines=True),
    line("server-logs", course="python", student_id="alice", lines=2.5),
    line("server-logs", course="python", student_id="alice", follow=True),
    line("servers", course="/etc"),
    line("servers", details="yes"),
    line("servers", argv=["podman", "ps"]),
    line("server-logs", v=2, course="python", student_id="alice"),
]


@pytest.mark.parametrize("request_line", HOSTILE)
def test_hostile_admin_requests_are_refused_before_the_hub(helper: Running, hub: Hub, request_line: bytes) -> None:
    launched(hub, "alice")
    journal = list(backend(hub).journal)
    assert refusal(helper.raw(request_line))["reason"] == "invalid-input"
    assert backend(hub).journal == journal


FUZZ = hsettings(max_examples=150, deadline=None)
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["..", "/", "../x", "python", "bob", "alice", "alice/../bob", "nbt-x", "*", "%", "\x00"]),
)
numbers = st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), texts)
#: each operation's fields (all the others are refused) and valid values for them
FIELDS = {
    "servers": ("course", "details"),
    "server": ("course", "student_id"),
    "stop-server": ("course", "student_id", "by"),
    "restart-server": ("course", "student_id", "by"),
    "server-logs": ("course", "student_id", "lines"),
}
VALID = {
    "course": st.just("python"),
    "student_id": st.sampled_from(STUDENTS),
    "details": st.booleans(),
    "by": st.sampled_from(["ada", "tom"]),
    "lines": st.integers(1, MAX_LOG_LINES),
}


@st.composite
def admin_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """An operation and its fields: mostly the ones it takes, each mostly valid."""
    op = draw(st.sampled_from(sorted(FIELDS)))
    shape = draw(mostly(st.just(FIELDS[op]), st.lists(st.sampled_from(sorted(VALID)), unique=True, max_size=4)))
    return op, {name: draw(mostly(VALID[name], numbers)) for name in shape}


def test_fuzzed_admin_requests_never_touch_another_students_server_nor_files(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Valid values are mixed in each field, so every operation succeeds for some requests: their answers and what
    they did are checked too. alice and bob have running servers, carol none."""
    done: Counter[str] = Counter()

    @FUZZ
    @given(admin_requests())
    def fuzz(request: tuple[str, dict[str, Any]]) -> None:
        op, fields = request
        student = fields.get("student_id")
        s = make_settings(tmp_path_factory.mktemp("fuzz"))
        hub = Hub(s, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(s.students_dir))
        servers = {sid: hub.server_view("python", sid).server for sid in ("alice", "bob") if launched(hub, sid)}
        others = [sid for sid in STUDENTS if sid != student]
        before = {sid: student_state(hub, sid) for sid in others}
        journal = list(backend(hub).journal)
        raw = line(op, **fields)
        server = HelperServer(hub, allowed=frozenset(), workers=1, timeout=5, admin=hub)
        response, payload = asyncio.run(server.answer_with_payload(raw, os.geteuid()))
        data = b""
        if payload is not None:
            with payload:
                data = payload.read()
        for sid in others:
            assert student_state(hub, sid) == before[sid], sid  # hashes and listing: not a byte, not a name
            if sid in servers:
                assert hub.server_view("python", sid).server.state is ServerState.RUNNING
                assert not any(name == servers[sid].name for _verb, name in backend(hub).journal[len(journal) :])
        if op != "servers":  # the list is every student's, by design; the rest is one student's
            text = response.model_dump_json()
            for sid in others:
                if sid in servers:
                    assert servers[sid].key not in text and servers[sid].name not in text
        if response.ok:
            done[op] += 1
            event(f"done: {op}")
            if op in ("stop-server", "restart-server"):
                assert response.server is not None and response.server.student_id == student
            if op == "servers":
                assert data.count(b"\n") == len(servers) or fields.get("course") != "python"
        else:
            done["refused"] += 1
            event(f"refused: {response.error.reason if response.error else '?'}")

    fuzz()
    # the success branch ran for every operation (it fails if the strategies stop producing valid requests)
    assert done["refused"] >= 1 and len(set(done) & set(FIELDS)) >= 4, done


def test_every_admin_request_is_logged_with_its_peer_arguments_outcome_and_duration(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    launched(hub, "alice")
    server = HelperServer(hub, allowed=frozenset(), workers=1, timeout=5, admin=hub)
    caplog.set_level("INFO", logger="nbhosting_core")
    for raw in (
        line("server-logs", course="python", student_id="alice", lines=5),
        line("restart-server", course="python", student_id="alice", by="tom"),
        line("servers", details=True),
        line("stop-server", course="python", student_id="bob"),
    ):
        assert isinstance(asyncio.run(server.answer(raw, 1234)), Response)
    helper_lines = [r.getMessage() for r in caplog.records if r.name == "nbhosting_core.helper"]
    assert any(
        "uid=1234 op=server-logs course=python student=alice lines=5 -> " in m and " characters in " in m
        for m in helper_lines
    )
    assert any(
        "uid=1234 op=restart-server course=python student=alice by=tom -> running key=" in m for m in helper_lines
    )
    assert any("uid=1234 op=servers course=- details=True -> 1 servers in " in m for m in helper_lines)
    assert any("uid=1234 op=stop-server course=python student=bob by=- -> not-found in " in m for m in helper_lines)
    hub_lines = [r.getMessage() for r in caplog.records if r.name == "nbhosting_core.hub"]
    assert any(m.startswith("restart user=") and "action=start" in m and "by=tom" in m for m in hub_lines)
    assert any(m.startswith("logs user=") and "lines=5" in m for m in hub_lines)


# ------------------------------------------------------------------------------------------ courses


def with_remote(hub: Hub, remote: str, log: str) -> None:
    """Give course "python" the metadata of a clone from ``remote`` whose last pull printed ``log``."""
    pull = PullResult(course="python", at=1.0, seconds=0.5, ok=True, commit=None, log=log)
    meta = Course(name="python", remote=remote, branch="main", last_pull=pull)
    folder = hub.settings.course_meta_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "python.json").write_text(meta.model_dump_json())


def test_courses_are_listed_and_shown_without_the_credentials_of_their_remote(helper: Running, hub: Hub) -> None:
    with_remote(
        hub, "https://deploy:s3cret@git.example.org/team/python.git", "From https://deploy:s3cret@git.example.org"
    )
    for admin in (hub, helper.client):
        listed = {view.course.name: view for view in admin.list_courses()}
        assert set(listed) == {"other", "python"}
        assert listed["python"].course.remote == "https://git.example.org/team/python.git"
        assert listed["python"].course.last_pull is not None and listed["python"].course.last_pull.log == ""
        shown = admin.course_view("python")
        assert shown.course.last_pull is not None and shown.course.last_pull.log == "From https://git.example.org"
        assert "s3cret" not in shown.model_dump_json() + "".join(v.model_dump_json() for v in listed.values())
        with pytest.raises(NotFound):
            admin.course_view("nosuchcourse")
        with pytest.raises(InvalidInput):
            admin.course_view("../etc")


def test_a_course_is_shown_with_the_end_of_its_images_last_build_log_read_by_root(helper: Running, hub: Hub) -> None:
    logs = hub.settings.effective_images_dir / "logs" / "course-python"
    logs.mkdir(parents=True)
    (logs / "20261101T000000Z-1.log").write_text("STEP 1/2\n" + "x" * 100_000 + "\nError: STEP 2 failed\n")
    os.chmod(logs, 0o700)
    for admin in (hub, helper.client):
        build = admin.course_view("python").last_build
        assert build is not None and build.outcome == "failed or unfinished" and build.truncated
        assert build.log == "Error: STEP 2 failed\n"  # its end, from a whole line, bounded
        assert all(view.last_build is None for view in admin.list_courses())  # only in one course's view
    assert hub.course_view("other").last_build is None


def test_redact_credentials_leaves_urls_without_them_as_they_are() -> None:
    assert redact_credentials("ssh://git:tok@h/x and https://u@h/y") == "ssh://h/x and https://h/y"
    assert redact_credentials("git@github.com:team/x.git https://h/z") == "git@github.com:team/x.git https://h/z"


# ------------------------------------------------------------------------------------------ a student


def test_a_students_view_summarizes_their_workspaces_and_lists_their_servers_only(helper: Running, hub: Hub) -> None:
    launched(hub, "alice")
    launched(hub, "bob")
    alice = hub.accounts.find("alice")
    assert alice is not None
    workspace = hub.workspaces.workspace(alice, "python")
    (workspace / "w1" / "notes.txt").write_text("x" * 1000)
    (workspace / ".ipynb_checkpoints").mkdir()
    (workspace / ".ipynb_checkpoints" / "intro-checkpoint.ipynb").write_text("{}")
    outside = hub.settings.data_root / "root-only.ipynb"
    outside.write_text("y" * 5000)
    os.symlink(outside, workspace / "planted.ipynb")  # a student's link: never followed, never counted
    os.symlink(hub.settings.data_root, workspace / "planted-dir")
    for admin in (hub, helper.client):
        view = admin.student_view("alice")
        assert view.user == alice.user and [w.course for w in view.workspaces] == ["python"]
        (summary,) = view.workspaces
        assert summary.notebooks == ["w1/intro.ipynb"] and summary.notebook_count == 1
        assert summary.files == 2 and 1000 < summary.bytes < 5000
        assert [v.server.student_id for v in view.servers] == ["alice"]
        assert admin.student_view("alice", course="other").workspaces == []
        nobody = admin.student_view("nobody")
        assert (nobody.user, nobody.workspaces, nobody.servers) == (None, [], [])
        with pytest.raises(InvalidInput):
            admin.student_view("alice", course="../python")
