"""`nbh events` and `nbh stats`: the journal ingested first, then answered as tables or as JSON."""

from __future__ import annotations

import json

import pytest

from nbhosting_core.events import EventJournal, EventKind
from nbhosting_core.settings import Settings
from nbhosting_server import cli
from tests.unit.test_hub import Clock

NOON = 1_795_651_200.0 + 12 * 3600  # 2026-11-26 12:00 UTC


@pytest.fixture
def settings(tmp_path):
    # no such user: the commands stay this process's user (as root, they would become the app's)
    s = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", app_user="nbh-no-such-user")
    s.events_dir.mkdir(parents=True)
    clock = Clock(NOON - 86400)
    journal = EventJournal(s.events_dir, clock=clock)
    for student in ("alice", "bob"):
        for notebook in ("w1/a.ipynb", "w2/b.ipynb"):
            clock.advance(60)
            where = {"course": "python", "student_id": student, "notebook": notebook}
            journal.record(EventKind.OPEN, **where, action="create", duration=0.4)
            journal.record(EventKind.READY, **where, duration=2.0)
        clock.advance(86400 / 2)
    journal.record(EventKind.FAILURE, course="python", student_id="bob", reason="start-timeout")
    return s


def run(settings: Settings, *argv: str) -> int:
    args = cli.parser().parse_args(list(argv))
    code: int = args.func(settings, args)
    return code


def test_events_as_json_are_paged_newest_first(settings, capsys):
    assert run(settings, "events", "--course", "python", "--kind", "open", "--limit", "3", "--json") == 0
    page = json.loads(capsys.readouterr().out)
    assert len(page["events"]) == 3 and page["next_before_id"] is not None
    times = [e["time"] for e in page["events"]]
    assert times == sorted(times, reverse=True)
    assert run(settings, "events", "--before", str(page["next_before_id"]), "--kind", "open", "--json") == 0
    assert len(json.loads(capsys.readouterr().out)["events"]) == 1


def test_events_as_a_table_filtered_by_student_and_time(settings, capsys):
    assert run(settings, "events", "--student", "bob", "--since", "2026-11-26T00:00") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["TIME", "(UTC)", "KIND"]
    assert all("bob" in line for line in out[1:]) and any("start-timeout" in line for line in out[1:])


def test_stats_as_json_and_as_a_table(settings, capsys, monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOON + 3600)
    assert run(settings, "stats", "python", "--days", "3", "--json") == 0
    stats = json.loads(capsys.readouterr().out)
    assert [d["students"] for d in stats["days"]] == [0, 1, 1]
    assert stats["total_students"] == 2 and stats["failures"] == [{"reason": "start-timeout", "count": 1}]
    assert run(settings, "stats", "python", "--days", "3") == 0
    out = capsys.readouterr().out
    assert "2026-11-26" in out and "start to answer" in out and "failures: start-timeout 1" in out


def test_a_bad_time_is_refused_by_the_parser(settings):
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["events", "--since", "yesterday"])


def test_students_as_json_and_as_a_table(settings, capsys):
    assert run(settings, "students", "--json") == 0
    page = json.loads(capsys.readouterr().out)
    assert [st["student_id"] for st in page["students"]] == ["bob", "alice"] and page["total"] == 2
    assert page["students"][1]["opens"] == 2 and page["students"][1]["courses"] == ["python"]
    assert run(settings, "students", "--search", "ali", "--limit", "1") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["STUDENT", "COURSES", "OPENS"] and out[1].split()[:3] == ["alice", "python", "2"]
    assert run(settings, "students", "--limit", "1") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(1 more: --offset 1)"
    assert run(settings, "students", "--course", "nope") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no student"
