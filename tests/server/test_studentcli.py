"""`nbh student ...`: an admin resets, lists, restores, downloads and shares for a student (hub on fakes)."""

from __future__ import annotations

import argparse
import json
import zipfile

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_server import cli, studentcli


def run(hub: Hub, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    studentcli.register(parser.add_subparsers(dest="command", required=True), lambda settings: hub)
    args = parser.parse_args(["student", *argv])
    code: int = args.func(hub.settings, args)
    return code


def test_an_admin_resets_restores_downloads_and_shares_for_a_student(tmp_path, capsys):
    s = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=100)
    (s.courses_dir / "python").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("course")]), str(s.courses_dir / "python" / "a.ipynb"))
    hub = Hub(s, backend=FakeBackend(), accounts=FakeAccounts(s.students_dir))
    hub.open_notebook("python", "a.ipynb", "alice")
    assert run(hub, "reset", "python", "a.ipynb", "alice") == 0
    assert "their version is backup" in capsys.readouterr().out
    assert run(hub, "backups", "python", "alice", "--json") == 0
    [backup] = json.loads(capsys.readouterr().out)
    assert run(hub, "restore", "python", "a.ipynb", "alice", backup["id"]) == 0
    assert run(hub, "download-workspace", "python", "alice", "-o", str(tmp_path / "w.zip")) == 0
    assert zipfile.ZipFile(tmp_path / "w.zip").namelist() == ["python/a.ipynb"]
    capsys.readouterr()
    assert run(hub, "share", "python", "a.ipynb", "alice") == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://localhost:8443/share?s=")
    assert run(hub, "unshare", "python", "a.ipynb", "alice") == 0
    assert "link revoked" in capsys.readouterr().out


def test_nbh_has_the_student_commands():
    args = cli.parser().parse_args(["student", "shares", "python", "alice"])
    assert args.student_command == "shares"


def test_show_prints_a_students_workspaces_servers_and_latest_events(tmp_path, capsys):
    # app_user: no such user, so the command stays this process's user (as root it would become the app's)
    s = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=100, app_user="nbh-no-such-user")
    for course in ("python", "other"):
        (s.courses_dir / course).mkdir(parents=True)
        nbformat.write(new_notebook(), str(s.courses_dir / course / "a.ipynb"))
    hub = Hub(s, backend=FakeBackend(), accounts=FakeAccounts(s.students_dir))
    hub.open_notebook("python", "a.ipynb", "edx:al?ce")
    hub.open_notebook("other", "a.ipynb", "edx:al?ce")
    assert run(hub, "show", "edx:al?ce", "--course", "python", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [w["course"] for w in shown["workspaces"]] == ["python"]
    assert [v["server"]["course"] for v in shown["servers"]] == ["python"]
    assert "open" in [e["kind"] for e in shown["events"]] and {e["course"] for e in shown["events"]} == {"python"}
    assert run(hub, "show", "edx:al?ce") == 0
    out = capsys.readouterr().out
    assert out.startswith("student edx:al?ce: user nbh-") and "WORKSPACE" in out and "SERVER" in out
    assert "TIME (UTC)" in out and out.count("  open  ") == 2  # one in each course
    assert run(hub, "show", "edx:nobody", "--events", "0") == 0
    assert "no account on this host" in capsys.readouterr().out
