"""The privileged helper's socket and protocol: what crosses from the app to root, and what never does.

A real helper (:class:`HelperServer` on a Unix socket, in a thread) in front of a real hub on the in-memory
backend: launches through it are the hub's, errors come back as the hub's exceptions, and whatever else a client
sends (malformed, out of range, hostile: fuzzed with hypothesis) is answered with an error, never reaches the
hub, never touches a student's files, and never stops the helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import (
    Busy,
    FakeAccounts,
    FakeBackend,
    Hub,
    InvalidInput,
    InvalidNotebook,
    Launch,
    LaunchState,
    NbhostingError,
    NotFound,
    RuntimeUnavailable,
    Settings,
)
from nbhosting_core.helper import HelperClient, HelperServer
from nbhosting_core.helper import server as helper_server
from nbhosting_core.helper.protocol import MAX_LINE, Response
from nbhosting_core.helper.server import bind_socket
from nbhosting_core.naming import user_name
from nbhosting_core.shares import page_name, shares_dir
from nbhosting_core.throttle import Requester


def make_settings(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"start_timeout": 30, "max_running": 100, **overrides}
    s = Settings(data_root=root / "data", run_dir=root / "run", **values)
    course = s.courses_dir / "python"
    (course / "w1").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("1 + 1")]), str(course / "w1" / "intro.ipynb"))
    (course / "broken.ipynb").write_text("{not a notebook")
    return s


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def hub(settings: Settings) -> Hub:
    return Hub(settings, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(settings.students_dir))


class Recorder:
    """A launcher that only records what reached it."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.delay = delay

    def open_notebook(
        self, course: str, notebook: str, student_id: str, *, requester: Requester | None = None
    ) -> Launch:
        self.calls.append(("open", course, notebook, student_id))
        time.sleep(self.delay)
        raise NotFound("recorded")

    def launch_status(self, course: str, notebook: str, student_id: str) -> Launch:
        self.calls.append(("status", course, notebook, student_id))
        raise NotFound("recorded")


class Running:
    """A helper serving ``launcher`` on a socket of its own, in a thread with its own event loop."""

    def __init__(self, launcher: Any, *, allowed: frozenset[int] | None = None, timeout: float = 5.0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nbh-helper-", dir="/tmp"))  # short: a socket path has 108 bytes
        self.path = self.dir / "helper.sock"
        allowed = allowed if allowed is not None else frozenset({os.geteuid()})
        self.server = HelperServer(launcher, allowed=allowed, workers=4, timeout=timeout)
        self.loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        sock = bind_socket(self.path, None)
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self.server.serve(sock, self._stop),), daemon=True
        )
        self.thread.start()
        self.client = HelperClient(self.path, timeout=10)
        deadline = time.monotonic() + 5
        while not self.path.exists():
            assert time.monotonic() < deadline, "the helper did not come up"
            time.sleep(0.01)

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send ``data`` as it is; what comes back until the helper hangs up or a line ends."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.path))
            with contextlib.suppress(BrokenPipeError):  # a refused peer may be answered, and hung up on, at once
                sock.sendall(data)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            return answer

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        pending = asyncio.all_tasks(self.loop)  # connections still open: ended as a stopped helper ends them
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(_ended(pending))
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


async def _ended(tasks: set[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def helper(hub: Hub):
    running = Running(hub)
    yield running
    running.close()


def refusal(answer: bytes) -> dict[str, Any]:
    response = Response.model_validate_json(answer)
    assert not response.ok and response.error is not None, answer
    return response.error.model_dump()


def request(op: str = "open", **fields: Any) -> bytes:
    body = {"v": 1, "op": op, "course": "python", "notebook": "w1/intro.ipynb", "student_id": "alice", **fields}
    return json.dumps(body).encode() + b"\n"


# ------------------------------------------------------------------------------------------ the app's launches


def test_a_launch_through_the_helper_is_the_launch_the_hub_makes(helper: Running, hub: Hub) -> None:
    launch = helper.client.open_notebook("python", "w1/intro.ipynb", "alice", requester=Requester("edx", "10.0.0.7"))
    assert launch.state is LaunchState.READY and launch.copied
    assert launch == hub.launch_status("python", "w1/intro.ipynb", "alice").model_copy(
        update={"action": launch.action, "copied": True}
    )
    assert helper.client.launch_status("python", "w1/intro.ipynb", "alice").key == launch.key
    again = helper.client.open_notebook("python", "w1/intro.ipynb", "alice")
    assert again.key == launch.key and not again.copied  # the student's copy is kept


def test_the_hubs_errors_come_back_as_the_same_exceptions(helper: Running, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as missing:
        helper.client.open_notebook("python", "nope.ipynb", "alice")
    assert "nope.ipynb" in missing.value.message or missing.value.message
    with pytest.raises(InvalidNotebook):
        helper.client.open_notebook("python", "broken.ipynb", "alice")
    with pytest.raises(NotFound):
        helper.client.launch_status("python", "w1/intro.ipynb", "nobody-launched")


def test_a_refusal_of_the_door_keeps_its_retry_after(tmp_path: Path) -> None:
    s = make_settings(tmp_path, max_running=1)
    hub = Hub(s, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(s.students_dir))
    running = Running(hub)
    try:
        running.client.open_notebook("python", "w1/intro.ipynb", "alice")
        with pytest.raises(Busy) as busy:
            running.client.open_notebook("python", "w1/intro.ipynb", "bob")
        assert busy.value.why == "cap" and busy.value.retry_after > 0
    finally:
        running.close()


def test_the_client_refuses_what_the_hub_would_before_sending_it(helper: Running) -> None:
    for course, notebook, student in (
        ("../etc", "a.ipynb", "a"),
        ("python", "/etc/passwd", "a"),
        ("python", "a", "a b"),
    ):
        with pytest.raises(InvalidInput):
            helper.client.open_notebook(course, notebook, student)


def test_a_launch_is_logged_with_its_peer_arguments_outcome_and_duration_and_a_ping_at_debug(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    server = HelperServer(hub, allowed=frozenset(), workers=1, timeout=5)
    caplog.set_level("DEBUG", logger="nbhosting_core.helper")
    assert answer(server, request("open")).ok and answer(server, b'{"v": 1, "op": "ping"}\n').ok
    assert not answer(server, request("status", student_id="bob")).ok
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "nbhosting_core.helper"]
    duration = r" in \d+\.\d{3}s$"
    launch = r"^helper: uid=(\d+) op=open course=python notebook=w1/intro\.ipynb student=alice -> ready key=[0-9a-f]{8}"
    assert any(level == "INFO" and re.match(launch + duration, m) for level, m in logged), logged
    status = r"^helper: uid=\d+ op=status course=python notebook=w1/intro\.ipynb student=bob -> not-found"
    assert any(level == "INFO" and re.match(status + duration, m) for level, m in logged), logged
    assert any(level == "DEBUG" and re.match(r"^helper: uid=\d+ op=ping -> ok" + duration, m) for level, m in logged)
    assert all(f"uid={os.geteuid()} " in m for _level, m in logged), logged


# ------------------------------------------------------------------------------------------ what never crosses


def test_hostile_arguments_are_refused_and_never_reach_the_hub() -> None:
    recorder = Recorder()
    running = Running(recorder)
    try:
        hostile = [
            request(course="../python"),
            request(course="python; rm -rf /"),
            request(notebook="../../etc/shadow"),
            request(notebook="/etc/shadow"),
            request(notebook="w1/.ssh/id_rsa"),
            request(notebook="w1/intro.ipynb\x00.txt"),
            request(student_id="alice/../bob"),
            request(student_id="x" * 10_000),
            request(op="exec", argv=["/bin/sh"]),
            request(op="open", path="/etc/shadow"),  # an unknown field
            request(requester={"platform": "edx", "address": "1.2.3.4", "extra": 1}),
            request(v=2),
            request(v=0, op="ping"),
            b'{"v": 1, "op": "open"}\n',
            b"[1, 2, 3]\n",
            b"null\n",
            b"\xff\xfe not utf-8\n",
            b'{"v": 1, "op": "open", "course": "python", "course": "../x"}\n',
        ]
        for line in hostile:
            error = refusal(running.raw(line))
            assert error["reason"] == "invalid-input", (line, error)
        assert recorder.calls == []
        running.client.ping()  # and the helper goes on
    finally:
        running.close()


def test_a_line_longer_than_the_limit_is_refused_and_the_helper_goes_on(helper: Running) -> None:
    answer = helper.raw(b'{"v": 1, "op": "ping", "pad": "' + b"x" * (2 * MAX_LINE) + b'"}\n')
    assert refusal(answer)["reason"] == "invalid-input"
    helper.client.ping()


def test_another_protocol_version_is_refused(helper: Running) -> None:
    assert refusal(helper.raw(b'{"v": 2, "op": "ping"}\n'))["reason"] == "invalid-input"
    assert Response.model_validate_json(helper.raw(b'{"v": 1, "op": "ping"}\n')).ok


def test_a_uid_that_is_not_the_apps_is_refused() -> None:
    recorder = Recorder()
    running = Running(recorder, allowed=frozenset({os.geteuid() + 1}))
    try:
        assert refusal(running.raw(request()))["reason"] == "forbidden"
        with pytest.raises(NbhostingError):
            running.client.open_notebook("python", "w1/intro.ipynb", "alice")
        assert recorder.calls == []
    finally:
        running.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a process as another user")
def test_a_process_of_another_user_is_refused_by_the_uid_its_kernel_gives() -> None:
    recorder = Recorder()
    running = Running(recorder, allowed=frozenset({0}))
    try:
        os.chmod(running.dir, 0o755)
        os.chmod(running.path, 0o666)  # reachable by anyone: the peer's uid alone decides
        # the helper answers a refused peer at once, before reading anything: read that answer, then try to ask
        script = (
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
            "print(s.recv(4096).decode(), flush=True);"
            's.sendall(b\'{"v":1,"op":"open","course":"python","notebook":"w1/intro.ipynb","student_id":"a"}\\n\')'
        )
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        done = subprocess.run(
            [*nobody, sys.executable, "-c", script, str(running.path)], capture_output=True, text=True, timeout=30
        )
        assert refusal(done.stdout.encode())["reason"] == "forbidden", done
        assert recorder.calls == []
    finally:
        running.close()


def test_a_silent_connection_is_closed(monkeypatch: pytest.MonkeyPatch, helper: Running) -> None:
    monkeypatch.setattr(helper_server, "IDLE_TIMEOUT", 0.2)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(helper.path))
        sock.sendall(b'{"v": 1, "op": "ping"}')  # no end of line: never a request
        assert sock.recv(100) == b""  # hung up, long before the 5 s
    helper.client.ping()


def test_a_slow_host_is_answered_at_the_deadline_and_holds_no_other_request() -> None:
    recorder = Recorder(delay=3.0)
    running = Running(recorder, timeout=0.5)
    try:
        outcome: dict[str, BaseException] = {}

        def slow() -> None:
            try:
                running.client.open_notebook("python", "w1/intro.ipynb", "alice")
            except NbhostingError as exc:
                outcome["slow"] = exc

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.1)
        running.client.ping()  # while the slow one runs: the event loop is free
        assert thread.is_alive()
        thread.join(5)
        assert isinstance(outcome.get("slow"), RuntimeUnavailable)  # at the deadline, not after the 3 s
    finally:
        running.close()


# ------------------------------------------------------------------------------------------ fuzzed


FUZZ = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def answer(server: HelperServer, line: bytes) -> Response:
    return asyncio.run(server.answer(line, os.geteuid()))


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_get_an_answer_and_never_reach_the_hub(line: bytes) -> None:
    recorder = Recorder()
    response = answer(HelperServer(recorder, allowed=frozenset(), workers=1, timeout=1), line)
    if recorder.calls:  # only a well-formed request of the protocol may get through
        assert line.lstrip().startswith(b"{")
    else:
        assert response.ok == (json_op(line) == "ping")


def json_op(line: bytes) -> str | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data.get("op") if isinstance(data, dict) and data.get("v") == 1 and set(data) == {"v", "op"} else None


texts = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["..", ".", "/", "../x", "/etc/passwd", "a/../../b", "~root", "$(id)", "`id`", "a\x00b", " "]),
    st.from_regex(r"[A-Za-z0-9_.\-/]{1,40}", fullmatch=True),
)
values = st.one_of(texts, st.integers(), st.none(), st.booleans(), st.lists(st.integers(), max_size=3))


def mostly(valid: st.SearchStrategy[Any], fuzzed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` two times in three, else ``fuzzed``: with five fields, about a request in three is valid and
    launches (``st.one_of`` would flatten ``fuzzed``'s own branches into its choice and draw ``valid`` only once in
    eight: no request in 150 was valid)."""
    return st.sampled_from([True, True, False]).flatmap(lambda ok: valid if ok else fuzzed)


#: the fuzzers' students: alice and bob have launched before the request, carol has not
STUDENTS = ("alice", "bob", "carol")


def test_fuzzed_requests_never_touch_another_students_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Valid values are mixed in each field, so some requests launch: their answers and files are checked too."""
    outcomes: Counter[str] = Counter()

    @FUZZ
    @given(
        op=mostly(st.sampled_from(["open", "status"]), st.sampled_from(["ping", "exec", "run", "", None])),
        course=mostly(st.just("python"), values),
        notebook=mostly(st.just("w1/intro.ipynb"), values),
        student=mostly(st.sampled_from(STUDENTS), values),
        extra=mostly(
            st.just({}), st.dictionaries(st.sampled_from(["path", "argv", "cmd", "uid", "v"]), values, max_size=2)
        ),
    )
    def fuzz(op: Any, course: Any, notebook: Any, student: Any, extra: Any) -> None:
        s = make_settings(tmp_path_factory.mktemp("fuzz"))
        hub = Hub(s, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(s.students_dir))
        launched = {sid: hub.open_notebook("python", "w1/intro.ipynb", sid) for sid in ("alice", "bob")}
        body = {"v": 1, "op": op, "course": course, "notebook": notebook, "student_id": student, **extra}
        line = json.dumps(body).encode() + b"\n"
        others = [sid for sid in STUDENTS if sid != student]
        before = {sid: student_state(hub, sid) for sid in others}
        journal = list(fake_backend(hub).journal)
        response = answer(HelperServer(hub, allowed=frozenset(), workers=1, timeout=5), line)
        for sid in others:
            assert student_state(hub, sid) == before[sid], sid  # hashes and listing: not a byte, not a name
        new = fake_backend(hub).journal[len(journal) :]
        assert fake_backend(hub).journal[: len(journal)] == journal
        own = user_of(student, s.user_prefix)
        assert all(own is not None and own in name for _verb, name in new), new  # only its own server, if any
        if response.ok and response.launch is not None:
            launch = response.launch
            assert op in ("open", "status") and launch.student_id == student and launch.course == course
            assert launch.user == own
            outcomes[f"{op} {launch.state.value}"] += 1
            if launch.copied:
                outcomes["new account"] += 1  # carol's first launch: an account and a copy made beside the others
            event(f"launch: {op}")
        else:
            outcomes["refused" if response.error is not None else "pong"] += 1
            event(f"refused: {response.error.reason if response.error else 'pong'}")
        text = response.model_dump_json()
        for sid in others:  # never a word of another student: their account, server, key or id
            other = launched.get(sid)
            if other is not None:
                assert other.user not in text and other.key not in text and other.container not in text
            if sid not in line.decode(errors="replace"):
                assert sid not in text

    fuzz()
    # the success branch ran (if the strategies stop producing valid requests, this fails rather than pass vacuously)
    assert outcomes["open ready"] >= 1 and outcomes["status ready"] >= 1 and outcomes["new account"] >= 1, outcomes
    assert outcomes["refused"] >= 1, outcomes


def user_of(student: Any, prefix: str) -> str | None:
    """The account's name of a valid student id; None for anything else."""
    try:
        return user_name(student, prefix) if isinstance(student, str) else None
    except InvalidInput:
        return None


def fake_backend(hub: Hub) -> FakeBackend:
    assert isinstance(hub.backend, FakeBackend)
    return hub.backend


def student_state(hub: Hub, student_id: str) -> dict[str, Any]:
    """What a student owns on the host: their home's every file (hashed), their shares and pages; {} if none."""
    account = hub.accounts.find(student_id)
    if account is None:
        return {}
    shares = shares_dir(hub.settings)
    owners = shares / "owners" / f"{account.user}.json"
    state: dict[str, Any] = {"home": snapshot(account.home), "owners": file_digest(owners)}
    tokens = [share["token"] for share in json.loads(owners.read_bytes())] if owners.exists() else []
    state["pages"] = {token: file_digest(shares / "pages" / page_name(token)) for token in tokens}
    return state


def file_digest(path: Path) -> str | None:
    """The sha256 of a file's bytes, or None if there is none."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every file, folder and link under ``root``, and ``root`` itself: its kind, owner, mode and mtime, and a file's
    size and sha256 (a link's target). Never the atime, which reading changes."""
    found: dict[str, tuple[Any, ...]] = {}
    if not root.exists():
        return found
    paths = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        paths += [Path(dirpath) / name for name in dirnames + filenames]
    for path in paths:
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            content: Any = (info.st_size, file_digest(path))
        elif stat.S_ISLNK(info.st_mode):
            content = os.readlink(path)
        else:
            content = None
        key = str(path.relative_to(root))
        found[key] = (
            stat.S_IFMT(info.st_mode),
            info.st_uid,
            info.st_gid,
            stat.S_IMODE(info.st_mode),
            info.st_mtime_ns,
            content,
        )
    return found
