"""The host's journal of events: what the hub records for each open, start, failure, stop and cull, and how the
app reads it back (a line at a time, from where it stopped, never half a line)."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import FakeAccounts, FakeBackend, Hub, InvalidInput, NotFound, Settings, StartTimeout
from nbhosting_core.events import Event, EventJournal, EventKind, is_journal_name, journal_name
from tests.unit.test_hub import Clock

DAY = 1_795_660_800.0  # 2026-11-26 02:40 UTC


def events_of(journal: EventJournal) -> list[Event]:
    return [event for name in journal.files() for _, _, event in journal.read(name) if event is not None]


@pytest.fixture
def journal(tmp_path):
    return EventJournal(tmp_path / "events", clock=Clock(DAY + 3600))


def test_an_event_is_one_line_in_the_file_of_its_utc_day(journal):
    journal.record(EventKind.OPEN, course="python", student_id="s1", notebook="w1/a.ipynb", action="create")
    assert journal.files() == ["2026-11-26.jsonl"]
    line = (journal.folder / "2026-11-26.jsonl").read_text()
    assert line.count("\n") == 1
    assert json.loads(line) == {
        "time": DAY + 3600,
        "kind": "open",
        "course": "python",
        "student_id": "s1",
        "notebook": "w1/a.ipynb",
        "action": "create",
    }


def test_reading_resumes_from_an_offset_and_never_returns_a_line_still_being_written(journal):
    for n in range(3):
        journal.record(EventKind.OPEN, course="python", student_id=f"s{n}")
    path = journal.folder / journal.files()[0]
    with open(path, "ab") as f:
        f.write(b'{"time": 1, "kind": "op')  # a writer's line, not yet ended
    read = list(journal.read(path.name))
    assert [e.student_id for _, _, e in read if e] == ["s0", "s1", "s2"]
    _, after_second, _ = read[1]
    assert [e.student_id for _, _, e in journal.read(path.name, after_second) if e] == ["s2"]
    assert read[-1][1] < path.stat().st_size  # the cursor stops before the torn line


def test_a_line_that_is_not_an_event_is_passed_over_not_fatal(journal):
    journal.record(EventKind.STOP, course="python", student_id="s1")
    path = journal.folder / journal.files()[0]
    with open(path, "ab") as f:
        f.write(b"not json\n" + b'{"kind": "no-such-kind", "time": 2}\n' + b"x" * 9000 + b"\n")
    journal.record(EventKind.STOP, course="python", student_id="s2")
    read = list(journal.read(path.name))
    assert [e.student_id if e else None for _, _, e in read] == ["s1", None, None, None, "s2"]
    assert read[-1][1] == path.stat().st_size


def test_only_journal_files_are_read(journal):
    journal.record(EventKind.STOP, course="python", student_id="s1")
    (journal.folder / "notes.txt").write_text("x\n")
    assert journal.files() == ["2026-11-26.jsonl"]
    with pytest.raises(ValueError):
        list(journal.read("../secret"))
    assert is_journal_name(journal_name(DAY)) and not is_journal_name("2026-13-40.jsonl")


def test_a_symlink_planted_as_a_journal_file_is_never_written_through(journal, tmp_path):
    target = tmp_path / "target"
    target.write_text("")
    journal.folder.mkdir()
    os.symlink(target, journal.folder / journal_name(DAY + 3600))
    assert journal.record(EventKind.STOP, course="python") is None  # refused, logged, the caller goes on
    assert target.read_text() == ""


def test_a_journal_that_cannot_be_written_never_fails_the_caller(tmp_path):
    (tmp_path / "file").write_text("")
    journal = EventJournal(tmp_path / "file" / "events")
    assert journal.record(EventKind.OPEN, course="python") is None


# ------------------------------------------------------------------------------ what the hub records


@pytest.fixture
def clock():
    return Clock(DAY)


@pytest.fixture
def settings(tmp_path):
    s = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", start_timeout=30, max_running=100)
    (s.courses_dir / "python").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("1 + 1")]), str(s.courses_dir / "python" / "loops.ipynb"))
    return s


@pytest.fixture
def backend(clock):
    return FakeBackend(ready_after=2.0, clock=clock)


@pytest.fixture
def hub(settings, backend, clock):
    return Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), clock=clock)


def kinds(hub: Hub) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind.value, e.action, e.reason) for e in events_of(hub.events)]


def test_a_launch_records_its_open_then_the_moment_its_server_is_first_ready(hub, clock):
    launch = hub.open_notebook("python", "loops.ipynb", "s1")
    clock.advance(2.5)
    hub.launch_status("python", "loops.ipynb", "s1")
    hub.launch_status("python", "loops.ipynb", "s1")  # the progress page polls again: recorded once
    hub.open_notebook("python", "loops.ipynb", "s1")  # the next click reuses it
    assert kinds(hub) == [("open", "create", None), ("ready", None, None), ("open", "reuse", None)]
    opened, ready, _ = events_of(hub.events)
    assert (opened.course, opened.student_id, opened.notebook, opened.actor) == ("python", "s1", "loops.ipynb", "admin")
    assert opened.data["state"] == "starting" and opened.data["copied"] == 1
    assert ready.duration == pytest.approx(2.5) and launch.key


def test_a_refused_launch_is_recorded_with_its_reason_and_only_the_valid_parts(hub):
    with pytest.raises(NotFound):
        hub.open_notebook("python", "missing.ipynb", "s1")
    with pytest.raises(InvalidInput):
        hub.open_notebook("python", "../../etc/passwd", "s1")
    failures = events_of(hub.events)
    assert [(e.kind.value, e.reason, e.notebook) for e in failures] == [
        ("failure", "not-found", "missing.ipynb"),
        ("failure", "invalid-input", None),  # a hostile path is never recorded
    ]
    assert all(e.course == "python" and e.student_id == "s1" for e in failures)


def test_a_start_that_times_out_is_recorded_as_a_failure(hub, backend, clock):
    backend.ready_after = 1000
    hub.open_notebook("python", "loops.ipynb", "s1")
    clock.advance(31)
    with pytest.raises(StartTimeout):
        hub.launch_status("python", "loops.ipynb", "s1")
    assert kinds(hub)[-1] == ("failure", None, "start-timeout")


def test_an_admins_stop_and_the_cullers_stop_are_recorded_with_who_and_why(hub, clock):
    first = hub.open_notebook("python", "loops.ipynb", "s1")
    hub.open_notebook("python", "loops.ipynb", "s2")
    hub.stop(first.container)
    clock.advance(3 * 24 * 3600)
    hub.cull()
    stop, cull = (e for e in events_of(hub.events) if e.kind in (EventKind.STOP, EventKind.CULL))
    assert (stop.kind, stop.student_id, stop.actor, stop.reason) == (EventKind.STOP, "s1", "admin", "admin")
    assert (cull.kind, cull.student_id, cull.actor, cull.reason) == (EventKind.CULL, "s2", "culler", "idle")
    assert cull.data["idle"] == pytest.approx(3 * 24 * 3600, abs=5)


def test_an_admins_restart_and_removal_are_recorded(hub, clock):
    launch = hub.open_notebook("python", "loops.ipynb", "s1")
    clock.advance(3)
    hub.restart_server("python", "s1")
    hub.remove(launch.container)
    restart, removed = (e for e in events_of(hub.events) if e.kind in (EventKind.RESTART, EventKind.STOP))
    assert (restart.student_id, restart.actor, restart.action) == ("s1", "admin", "start")
    assert (removed.student_id, removed.reason) == ("s1", "removed")


def test_a_staff_members_stop_and_restart_are_recorded_under_their_name(hub, clock):
    hub.open_notebook("python", "loops.ipynb", "s1")
    hub.stop_server("python", "s1", by="tom")
    hub.restart_server("python", "s1", by="ada@example.org")
    with pytest.raises(InvalidInput):
        hub.stop_server("python", "s1", by="tom; rm -rf /")
    acted = [(e.kind.value, e.actor) for e in events_of(hub.events) if e.kind in (EventKind.RESTART, EventKind.STOP)]
    assert acted == [("stop", "tom"), ("restart", "ada@example.org")]


def test_old_journal_files_are_pruned_and_recent_ones_kept(tmp_path):
    clock = Clock(DAY)
    journal = EventJournal(tmp_path / "events", clock=clock)
    for day in range(5):
        clock.now = DAY - day * 86400
        journal.record(EventKind.SAMPLE, data={"running": day})
    clock.now = DAY
    assert journal.prune(0) == []  # 0: kept forever
    assert journal.prune(2) == ["2026-11-22.jsonl", "2026-11-23.jsonl"]
    assert journal.files() == ["2026-11-24.jsonl", "2026-11-25.jsonl", "2026-11-26.jsonl"]
