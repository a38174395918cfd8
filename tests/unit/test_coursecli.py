"""`nbh course …`: the admin's commands on courses, run as `nbh` runs them (argv in, text or JSON out)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
import urllib.parse

import pytest

from nbhosting_server import cli
from nbhosting_server.coursecli import add_course_commands
from tests.gitrepos import course_repo


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("NBH_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("NBH_RUN_DIR", str(tmp_path / "run"))
    return course_repo(tmp_path / "upstream")


def nbh(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["course", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_and_show_say_where_a_course_comes_from(env, capsys, tmp_path):
    code, out, err = nbh(capsys, "create", "python", str(env.path))
    assert code == 0 and out.startswith(f"created python from {env.path} (main, ")
    assert "[python] Cloning into" in err  # git's progress, on stderr
    code, out, _ = nbh(capsys, "list")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["NAME", "STATE", "COMMIT"]
    assert out.splitlines()[1].split()[:2] == ["python", "active"]
    code, out, _ = nbh(capsys, "show", "python")
    assert "remote      " + str(env.path) in out and "ui lab" in out and "read-only data" in out
    code, out, _ = nbh(capsys, "show", "python", "--json")
    data = json.loads(out)
    assert data["course"]["remote"] == str(env.path) and data["config"]["ui"] == "lab" and data["local"] is False


def test_show_prints_the_last_pulls_outcome_and_the_end_of_its_log_even_when_it_worked(env, capsys):
    nbh(capsys, "create", "python", str(env.path))
    env.write("w3/new.ipynb", "{}").commit("week 3")
    assert nbh(capsys, "pull", "python")[0] == 0
    code, out, _ = nbh(capsys, "show", "python")
    report = out[out.index("last pull   ok") :]
    assert code == 0 and "  | " in report and ("From " in report or "HEAD is now at" in report), out
    assert len([line for line in report.splitlines() if line.startswith("  | ")]) <= 16


def test_build_log_prints_the_end_of_the_last_builds_log_or_a_versions(env, capsys, tmp_path):
    assert nbh(capsys, "build-log", "python")[1] == "course python: never built (nbh course build python)\n"
    assert json.loads(nbh(capsys, "build-log", "python", "--json")[1]) is None
    logs = tmp_path / "data" / "images" / "logs" / "course-python"
    logs.mkdir(parents=True)
    (logs / "20261101T000000Z-7.log").write_text("STEP 1/2: FROM base\nError: no such file\n")
    code, out, err = nbh(capsys, "build-log", "python")
    assert code == 0 and out == "STEP 1/2: FROM base\nError: no such file\n"
    assert "last build: failed or unfinished" in err and "20261101T000000Z-7.log" in err
    data = json.loads(nbh(capsys, "build-log", "python", "--json")[1])
    assert data["outcome"] == "failed or unfinished" and data["log"].endswith("Error: no such file\n")
    code, _, err = nbh(capsys, "build-log", "python", "--version", "3")
    assert code == 1 and "no image version 3" in err


def test_a_broken_configuration_is_shown_with_its_line(env, capsys):
    env.write(".nbhosting/course.toml", 'ui = "lab"\n\nreadonly = "data"\n').commit("a typo")
    nbh(capsys, "create", "python", str(env.path))
    code, out, _ = nbh(capsys, "show", "python")
    assert code == 0 and "config      REFUSED" in out and "line 3: readonly" in out


def test_a_failed_pull_exits_1_with_gits_words_and_is_shown_afterwards(env, capsys):
    nbh(capsys, "create", "python", str(env.path))
    shutil.rmtree(env.path)
    code, out, _ = nbh(capsys, "pull", "python")
    assert code == 1 and "FAILED (the course keeps serving its checkout)" in out
    assert "does not appear to be a git repository" in out
    code, out, _ = nbh(capsys, "pull", "--all", "--json")
    assert code == 1 and [r["ok"] for r in json.loads(out)] == [False]
    code, out, _ = nbh(capsys, "show", "python")
    assert "last pull   FAILED" in out


def test_pull_needs_one_course_or_all(env, capsys):
    assert nbh(capsys, "pull")[0] == 2
    assert nbh(capsys, "pull", "python", "--all")[0] == 2


def test_archive_hides_a_course_and_unarchive_brings_it_back(env, capsys):
    nbh(capsys, "create", "python", str(env.path))
    assert nbh(capsys, "archive", "python")[0] == 0
    assert nbh(capsys, "list", "--json")[1].strip() == "[]"
    assert json.loads(nbh(capsys, "list", "--all", "--json")[1])[0]["course"]["state"] == "archived"
    code, _, err = nbh(capsys, "pull", "python")
    assert code == 1 and "archived" in err
    assert nbh(capsys, "unarchive", "python")[0] == 0
    assert json.loads(nbh(capsys, "list", "--json")[1])[0]["course"]["name"] == "python"


def test_delete_is_a_dry_run_until_yes(env, capsys, tmp_path):
    nbh(capsys, "create", "python", str(env.path))
    code, out, _ = nbh(capsys, "delete", "python")
    assert code == 0 and "would remove" in out and "a dry run" in out
    assert (tmp_path / "data" / "courses" / "python").is_dir()
    code, out, _ = nbh(capsys, "delete", "python", "--yes", "--json")
    assert code == 0 and json.loads(out)["done"] is True
    assert not (tmp_path / "data" / "courses" / "python").exists()
    code, _, err = nbh(capsys, "show", "python")
    assert code == 1 and "no course named 'python'" in err


def test_delete_plans_students_backups_with_their_work_and_removes_them_with_students(env, capsys, tmp_path):
    nbh(capsys, "create", "python", str(env.path))
    backups = tmp_path / "data" / "students" / "nbh-alice" / ".nbhosting" / "backups" / "python"
    backups.mkdir(parents=True)
    code, out, _ = nbh(capsys, "delete", "python")
    assert code == 0 and f"keeps        {backups}" in out and "backups and shared pages" in out
    code, out, _ = nbh(capsys, "delete", "python", "--students", "--yes")
    assert code == 0 and f"removed      {backups}" in out and not backups.exists()


def test_refusals_are_one_line_never_a_traceback(env, capsys):
    code, _, err = nbh(capsys, "create", "python", "http://example.org/x.git")
    assert code == 1 and err.startswith("nbh course: Refused git remote") and "Traceback" not in err


def test_the_course_group_can_be_extended():
    parser = argparse.ArgumentParser()
    commands = add_course_commands(parser.add_subparsers(dest="command"))
    commands.add_parser("build").add_argument("name")
    args = parser.parse_args(["course", "build", "python"])
    assert args.course_command == "build" and args.name == "python"


def test_link_prints_a_course_page_link_the_app_lets_in(env, capsys, tmp_path):
    from nbhosting_core import Settings
    from nbhosting_core.coursepages import admit_course_page
    from nbhosting_core.platforms import PlatformsFile
    from tests.server.platform import PLATFORMS

    settings = Settings()
    settings.data_root.mkdir(parents=True, exist_ok=True)
    settings.effective_platforms_file.write_text(PLATFORMS)
    code, out, _ = nbh(capsys, "link", "python", "alice", "--platform", "test")
    assert code == 0
    parts = urllib.parse.urlsplit(out.strip())
    assert parts.path == "/course/python/alice"
    query = dict(urllib.parse.parse_qsl(parts.query))
    platforms = PlatformsFile(settings.effective_platforms_file).check()
    admission, _, _ = admit_course_page(platforms, "python", "alice", query, now=time.time(), max_ttl=24 * 3600)
    assert admission.student_id == "test:alice"
    assert nbh(capsys, "link", "python", "alice", "--platform", "nope")[0] == 1
