"""`nbh ls --course`, `nbh restart COURSE STUDENT` and `nbh logs COURSE STUDENT`: an admin's view of and action on a
student's server, on a hub with the in-memory backend (the commands' hub is swapped for it)."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_server import cli


@pytest.fixture
def hub(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Hub:
    s = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=100)
    for course in ("python", "other"):
        (s.courses_dir / course).mkdir(parents=True)
        nbformat.write(new_notebook(cells=[new_code_cell("1")]), str(s.courses_dir / course / "a.ipynb"))
    hub = Hub(s, backend=FakeBackend(), accounts=FakeAccounts(s.students_dir))
    monkeypatch.setattr(cli, "_hub", lambda settings: hub)
    return hub


def nbh(hub: Hub, *argv: str) -> int:
    args = cli.parser().parse_args(list(argv))
    code: int = args.func(hub.settings, args)
    return code


def test_restart_prints_the_server_and_json_says_it_all(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    launch = hub.open_notebook("python", "a.ipynb", "alice")
    assert nbh(hub, "restart", "python", "alice") == 0
    assert f"key {launch.key[:8]}" in capsys.readouterr().out
    assert nbh(hub, "restart", "python", "alice", "--json") == 0
    server = json.loads(capsys.readouterr().out)
    assert server["state"] == "running" and server["key"] == launch.key and server["student_id"] == "alice"


def test_logs_print_the_tail_and_json_wraps_it(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    hub.open_notebook("python", "a.ipynb", "alice")
    name = hub.server_view("python", "alice").server.name
    assert isinstance(hub.backend, FakeBackend)
    hub.backend.emit(name, "one\ntwo\n\x1b[2Jthree")
    assert nbh(hub, "logs", "python", "alice", "--lines", "2") == 0
    assert capsys.readouterr().out == "two\n\ufffd[2Jthree\n"
    assert nbh(hub, "logs", "python", "alice", "--lines", "1", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "course": "python",
        "student_id": "alice",
        "lines": 1,
        "logs": "\ufffd[2Jthree\n",
    }


def test_ls_of_one_course(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    hub.open_notebook("python", "a.ipynb", "alice")
    hub.open_notebook("other", "a.ipynb", "alice")
    assert nbh(hub, "ls", "--course", "other", "--json") == 0
    [view] = json.loads(capsys.readouterr().out)
    assert view["server"]["course"] == "other" and view["image_label"] == "fake-image"


def test_errors_are_one_line_and_exit_1(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["logs", "python", "nobody"]) == 1
    assert "no server in this course" in capsys.readouterr().err
    assert cli.main(["logs", "python", "alice", "--lines", "5000"]) == 1
    assert "1 to 2000 lines" in capsys.readouterr().err
    assert cli.main(["restart", "../etc", "alice"]) == 1
