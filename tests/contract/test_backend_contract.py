"""The NotebookBackend contract, run against every backend: the in-memory fake, and rootless podman (as root).

If the fake passes these and podman passes them too, tests that use the fake say something true of podman.
Each test uses its own students, so that any one of them can run alone.
"""

from __future__ import annotations

import threading
import uuid

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import Action, ServerState
from nbhosting_core.naming import is_key
from nbhosting_core.serveradmin import MAX_LOG_BYTES, MAX_LOG_LINES
from nbhosting_core.trust import CopyTrust


def student(tag: str) -> str:
    return f"contract-{tag}-{uuid.uuid4().hex[:8]}"


def launch(env, tag: str, course: str = "c1"):
    account = env.accounts.ensure(student(tag))
    ensured = env.backend.ensure_running(account, course, env.workspace(account, course))
    return account, ensured


def test_a_first_ensure_creates_a_running_server_that_becomes_ready(env):
    account, ensured = launch(env, "create")
    server = ensured.server
    assert ensured.action is Action.CREATE
    assert server.state is ServerState.RUNNING and is_key(server.key) and server.started_at is not None
    assert (server.course, server.student_id, server.user, server.uid) == (
        "c1",
        account.student_id,
        account.user,
        account.uid,
    )
    env.wait_ready(server)
    activity = env.backend.activity(server)
    assert activity is not None and activity.last_activity is not None and activity.busy_kernels == 0


def test_ensure_again_reuses_the_same_server(env):
    account, first = launch(env, "reuse")
    again = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"))
    assert again.action is Action.REUSE and again.server.key == first.server.key


def test_concurrent_ensures_give_exactly_one_server(env):
    account = env.accounts.ensure(student("burst"))
    workspace = env.workspace(account, "c1")
    results, errors = [], []

    def one() -> None:
        try:
            results.append(env.backend.ensure_running(account, "c1", workspace))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.server.key for r in results}) == 1
    assert sum(r.action is Action.CREATE for r in results) == 1
    assert [s.name for s in env.backend.list_servers() if s.user == account.user] == [results[0].server.name]


def test_a_stopped_server_starts_again_with_the_same_key(env):
    account, first = launch(env, "stop")
    env.wait_ready(first.server)
    env.backend.stop(first.server)
    stopped = env.backend.get(account, "c1")
    assert stopped is not None and stopped.state is ServerState.STOPPED
    assert not env.backend.is_ready(first.server)
    assert next(s for s in env.backend.list_servers() if s.name == first.server.name).state is ServerState.STOPPED
    again = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"))
    assert again.action is Action.START and again.server.key == first.server.key
    env.wait_ready(again.server)


def test_a_removed_server_is_gone_everywhere(env):
    account, first = launch(env, "remove")
    env.backend.remove(first.server)
    assert env.backend.get(account, "c1") is None
    assert env.backend.find(first.server.key) is None
    assert first.server.name not in [s.name for s in env.backend.list_servers()]
    again = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"))
    assert again.action is Action.CREATE and again.server.key != first.server.key


def test_stop_of_a_stopped_server_does_nothing(env):
    account, first = launch(env, "stop-twice")
    env.backend.stop(first.server)
    env.backend.stop(first.server)
    stopped = env.backend.get(account, "c1")
    assert stopped is not None and stopped.state is ServerState.STOPPED and stopped.key == first.server.key


def test_stop_and_remove_of_what_is_not_there_do_nothing(env):
    account, first = launch(env, "noop")
    env.backend.remove(first.server)
    env.backend.stop(first.server)
    env.backend.remove(first.server)
    assert env.backend.get(account, "c1") is None


def test_list_covers_every_student_and_course_and_find_goes_by_key(env):
    a1, s1 = launch(env, "list-a")
    _, s2 = launch(env, "list-b")
    s3 = env.backend.ensure_running(a1, "c2", env.workspace(a1, "c2"))
    names = {s.name for s in env.backend.list_servers()}
    assert {s1.server.name, s2.server.name, s3.server.name} <= names
    assert s1.server.name != s3.server.name and s1.server.key != s3.server.key
    found = env.backend.find(s3.server.key)
    assert found is not None and found.name == s3.server.name and found.state is ServerState.RUNNING
    assert env.backend.find("f" * 40) is None


def test_list_running_is_what_runs_of_the_list(env):
    _, running = launch(env, "running-a")
    _, stopped = launch(env, "running-b")
    env.backend.stop(stopped.server)
    names = {s.name for s in env.backend.list_running()}
    assert running.server.name in names and stopped.server.name not in names
    assert all(s.state is ServerState.RUNNING for s in env.backend.list_running())
    assert names == {s.name for s in env.backend.list_servers() if s.state is ServerState.RUNNING}


def test_a_server_whose_jupyter_died_is_seen_stopped_and_starts_again(env):
    account, first = launch(env, "crash")
    env.wait_ready(first.server)
    env.kill(first.server)
    assert env.wait_stopped(account, "c1").state is not ServerState.RUNNING
    again = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"))
    assert again.action is Action.START and again.server.key == first.server.key
    env.wait_ready(again.server)


def test_a_new_image_replaces_stopped_servers_but_never_cuts_a_running_one(env):
    try:
        account, first = launch(env, "image")
        env.set_image("new")
        kept = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"))
        assert kept.action is Action.REUSE and kept.server.key == first.server.key
        env.backend.stop(first.server)
        replaced = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"))
        assert replaced.action is Action.REPLACE and replaced.server.key != first.server.key
        assert replaced.server.image != first.server.image
    finally:
        env.set_image("old")


def test_the_image_asked_for_is_what_a_new_server_runs_and_a_stopped_one_on_another_is_replaced(env):
    account = env.accounts.ensure(student("asked"))
    first = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"), env.image("new"))
    assert first.action is Action.CREATE and first.server.image == env.image("new")
    kept = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"), env.image("old"))
    assert kept.action is Action.REUSE and kept.server.image == env.image("new")  # a running server keeps its image
    env.backend.stop(first.server)
    replaced = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"), env.image("old"))
    assert replaced.action is Action.REPLACE and replaced.server.image == env.image("old")
    env.backend.stop(replaced.server)
    again = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"), env.image("old"))
    assert again.action is Action.START and again.server.key == replaced.server.key


def test_usage_and_logs_answer_for_any_server(env):
    _, ensured = launch(env, "usage")
    env.wait_ready(ensured.server)
    usage = env.backend.usage(ensured.server)
    assert usage.memory_bytes is None or usage.memory_bytes > 0
    assert isinstance(env.backend.logs(ensured.server), str)


def test_reconcile_leaves_a_consistent_host_alone(env):
    _, ensured = launch(env, "reconcile")
    env.wait_ready(ensured.server)
    report = env.backend.reconcile()
    assert ensured.server.name not in report.removed and ensured.server.name not in report.adopted
    assert env.backend.is_ready(ensured.server)


def test_a_released_student_starts_again_from_nothing(env):
    account, first = launch(env, "release")
    env.wait_ready(first.server)
    assert account.user in env.backend.held()
    assert env.backend.release(account.user) is False  # a server of theirs runs: nothing is freed
    env.backend.stop(first.server)
    assert env.backend.release(account.user) is True
    assert account.user not in env.backend.held()
    again = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"))
    assert again.action is Action.START and again.server.key == first.server.key
    env.wait_ready(again.server)
    assert account.user in env.backend.held()


def test_a_kernel_is_started_for_a_notebook_once_and_only_in_a_ready_server(env):
    account, ensured = launch(env, "kernel")
    server = ensured.server
    env.wait_ready(server)
    assert env.backend.start_kernel(server, "intro.ipynb", None) is True
    assert env.backend.start_kernel(server, "intro.ipynb", None) is False  # it has its session: none more
    assert env.backend.start_kernel(server, "other.ipynb", None) is True
    activity = env.backend.activity(server)
    assert activity is not None and activity.kernels == 2
    env.backend.stop(server)
    assert env.backend.start_kernel(server, "intro.ipynb", None) is False  # nothing answers


def test_logs_are_the_servers_output_by_tail_kept_through_stop_and_start_and_gone_with_it(env):
    account, ensured = launch(env, "logs")
    server = ensured.server
    env.wait_ready(server)
    printed = env.backend.logs(server, tail=MAX_LOG_LINES)
    assert printed.strip() and printed.endswith("\n")  # what it printed as it started, whole lines
    assert len(env.backend.logs(server, tail=1).splitlines()) == 1
    assert len(env.backend.logs(server, tail=MAX_LOG_LINES).encode()) <= MAX_LOG_BYTES
    first = printed.splitlines()[0]
    env.backend.stop(server)
    stopped = env.backend.get(account, "c1")
    assert stopped is not None and first in env.backend.logs(stopped, tail=MAX_LOG_LINES)  # a stopped server's log
    again = env.backend.ensure_running(account, "c1", env.workspace(account, "c1"))
    assert again.action is Action.START
    env.wait_ready(again.server)
    assert first in env.backend.logs(again.server, tail=MAX_LOG_LINES)  # started again: the same log goes on
    env.backend.remove(again.server)
    assert env.backend.logs(again.server, tail=MAX_LOG_LINES) == ""


def test_a_copy_is_vouched_for_to_a_running_server_once_and_to_a_stopped_one_never(env):
    backend = env.backend
    assert isinstance(backend, CopyTrust)
    account, ensured = launch(env, "trust")
    copy = nbformat.writes(new_notebook(cells=[new_code_cell(f"'{uuid.uuid4().hex}'")])).encode()  # in no course
    assert backend.trust_copy(account, "c1", "w1/a.ipynb", copy) is True
    assert backend.trust_copy(account, "c1", "w1/a.ipynb", copy) is False  # listed already
    backend.stop(ensured.server)
    other = nbformat.writes(new_notebook(cells=[new_code_cell("'another'")])).encode()
    assert backend.trust_copy(account, "c1", "w1/b.ipynb", other) is False  # its next start lists the course
