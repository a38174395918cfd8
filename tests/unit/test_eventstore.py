"""The app's copy of the events: the journal read into the database once and only once (several workers, torn
lines, long journals), and the figures a teacher and an operator read from it."""

from __future__ import annotations

import threading
from datetime import date

import nbformat
import pytest
from nbformat.v4 import new_notebook
from sqlalchemy import insert, select

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_core.coursestats import distribution, notebook_order
from nbhosting_core.db import open_database
from nbhosting_core.db.engine import sqlite_url
from nbhosting_core.db.schema import events as events_table
from nbhosting_core.db.schema import journal_cursor, staff
from nbhosting_core.events import EventJournal, EventKind
from nbhosting_core.eventstore import course_statistics, events, host_samples, ingest, students
from nbhosting_core.helper.service import host_sampler
from tests.unit.test_hub import Clock

DAY = 1_795_660_800.0  # 2026-11-26 02:40 UTC (the same moment as test_events.py)


@pytest.fixture
def clock():
    return Clock(DAY)


@pytest.fixture
def journal(tmp_path, clock):
    return EventJournal(tmp_path / "events", clock=clock)


@pytest.fixture
def engine(tmp_path):
    return open_database(sqlite_url(tmp_path / "db.sqlite"))


def opened(journal: EventJournal, student: str, notebook: str, action: str = "create", duration: float = 1.0) -> None:
    fields = {"course": "python", "student_id": student, "notebook": notebook, "action": action}
    journal.record(EventKind.OPEN, **fields, duration=duration)


def a_term(journal: EventJournal, clock: Clock) -> None:
    """Three days of a course: alice every day, bob twice, carol once, the teacher (staff) once; one failure."""
    for day, today in enumerate([["alice", "bob"], ["alice"], ["alice", "bob", "carol", "teacher-sid"]]):
        clock.now = DAY + day * 86400 + 9 * 3600
        for n, student in enumerate(today):
            clock.advance(60)
            opened(journal, student, f"w{day + 1}/intro.ipynb", duration=0.5 + n)
            journal.record(EventKind.READY, course="python", student_id=student, notebook="x", duration=2.0 + n)
        opened(journal, "alice", "w10/extra.ipynb", action="reuse", duration=0.05)
    journal.record(EventKind.FAILURE, course="python", student_id="bob", reason="start-timeout")
    journal.record(EventKind.OPEN, course="other", student_id="zoe", notebook="a.ipynb", action="create")


def test_a_journal_is_ingested_once_however_often_it_is_read(engine, journal, clock):
    a_term(journal, clock)
    lines = sum(1 for name in journal.files() for _ in journal.read(name))
    assert ingest(engine, journal) == lines
    assert ingest(engine, journal) == 0
    with engine.connect() as c:
        assert len(c.execute(select(events_table.c.id)).all()) == lines
        cursors = dict(c.execute(select(journal_cursor.c.source, journal_cursor.c.offset)).all())
    assert cursors == {name: (journal.folder / name).stat().st_size for name in journal.files()}


def test_two_workers_ingesting_at_once_store_each_event_once(engine, journal, clock):
    for n in range(400):
        clock.advance(500)
        opened(journal, f"s{n % 7}", f"n{n % 5}.ipynb")
    barrier = threading.Barrier(2)
    added: list[int] = []

    def worker() -> None:
        barrier.wait()
        added.append(ingest(engine, journal))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(added) == 400
    with engine.connect() as c:
        assert len(c.execute(select(events_table.c.source, events_table.c.offset).distinct()).all()) == 400
        assert len(c.execute(select(events_table.c.id)).all()) == 400


def test_a_line_still_being_written_is_ingested_once_it_ends(engine, journal, clock):
    opened(journal, "alice", "a.ipynb")
    path = journal.folder / journal.files()[0]
    whole = b'{"time": %f, "kind": "open", "course": "python", "student_id": "bob"}\n' % (DAY + 1)
    with open(path, "ab") as f:
        f.write(whole[:20])  # the writer's line, torn
    assert ingest(engine, journal) == 1
    with open(path, "ab") as f:
        f.write(whole[20:])
    assert ingest(engine, journal) == 1
    assert [e.student_id for e in events(engine).events] == ["bob", "alice"]


def test_a_long_journal_is_ingested_in_bounded_steps_and_garbage_is_passed_over(engine, journal, clock):
    for n in range(25):
        opened(journal, f"s{n}", "a.ipynb")
    with open(journal.folder / journal.files()[0], "ab") as f:
        f.write(b"not an event\n")
    assert [ingest(engine, journal, max_lines=10) for _ in range(4)] == [10, 10, 5, 0]
    assert len(events(engine, limit=100).events) == 25


def test_events_are_filtered_and_paged_newest_first(engine, journal, clock):
    a_term(journal, clock)
    ingest(engine, journal)
    first = events(engine, course="python", student_id="alice", kind=EventKind.OPEN, limit=4)
    assert len(first.events) == 4 and first.next_before_id is not None
    rest = events(engine, course="python", student_id="alice", kind=EventKind.OPEN, before_id=first.next_before_id)
    times = [e.time for e in first.events + rest.events]
    assert times == sorted(times, reverse=True) and len(times) == 6 and rest.next_before_id is None
    assert all(e.student_id == "alice" and e.kind is EventKind.OPEN for e in first.events + rest.events)
    on_day_two = events(engine, since=DAY + 86400, until=DAY + 2 * 86400)
    assert {e.student_id for e in on_day_two.events} == {"alice"}
    assert events(engine, kind=EventKind.FAILURE).events[0].reason == "start-timeout"


def test_a_courses_figures_per_day_without_its_staff(engine, journal, clock):
    a_term(journal, clock)
    ingest(engine, journal)
    with engine.begin() as c:
        c.execute(insert(staff).values(username="t", role="teacher", student_id="teacher-sid", created=0))
    stats = course_statistics(engine, "python", days=4, now=DAY + 2 * 86400 + 12 * 3600)
    assert (stats.first_day, stats.last_day) == (date(2026, 11, 25), date(2026, 11, 28))
    by_day = [(d.day.day, d.students, d.notebooks, d.opens, d.cumulative_students) for d in stats.days]
    assert by_day == [(25, 0, 0, 0, 0), (26, 2, 2, 3, 2), (27, 1, 2, 2, 2), (28, 3, 2, 4, 3)]
    assert stats.total_students == 3 and stats.excluded_students == 1
    assert stats.progress.students == ["alice", "bob", "carol"]  # most notebooks first
    assert stats.progress.notebooks == ["w1/intro.ipynb", "w2/intro.ipynb", "w3/intro.ipynb", "w10/extra.ipynb"]
    assert stats.progress.opened == [[1, 1, 1, 3], [1, 0, 1, 0], [0, 0, 1, 0]]
    assert [f.model_dump() for f in stats.failures] == [{"reason": "start-timeout", "count": 1}]
    assert stats.days[-1].failures == 1
    launches = {launch.action: launch.durations for launch in stats.launches}
    assert list(launches) == ["create", "reuse", "ready"]
    assert launches["create"].count == 6 and launches["reuse"].median == 0.05 and launches["ready"].count == 6
    assert stats.days[1].ready_durations.median == 2.5


def test_staff_named_by_the_caller_are_left_out_too(engine, journal, clock):
    a_term(journal, clock)
    ingest(engine, journal)
    stats = course_statistics(engine, "python", exclude_students=frozenset({"teacher-sid", "carol"}), now=DAY)
    assert stats.progress.students == ["alice", "bob"] and stats.excluded_students == 2
    assert len(stats.days) == 30 and stats.days[-1].day == date(2026, 11, 26)


def test_a_course_without_events_has_empty_figures(engine):
    stats = course_statistics(engine, "python", days=3, now=DAY)
    assert [d.opens for d in stats.days] == [0, 0, 0]
    assert stats.progress.students == [] and stats.launches == [] and stats.failures == []


def test_percentiles_and_notebook_order_are_plain_functions():
    d = distribution([5, 1, 3, 2, 4, 6, 7, 8, 9, 10])
    assert (d.count, d.median, d.p90, d.max) == (10, 5.5, 9, 10)
    assert distribution([]).median is None
    names = ["w10/a.ipynb", "w2/b.ipynb", "w2/a.ipynb", "W1/z.ipynb"]
    assert sorted(names, key=notebook_order) == ["W1/z.ipynb", "w2/a.ipynb", "w2/b.ipynb", "w10/a.ipynb"]


# ------------------------------------------------------------------------------------------------ samples


@pytest.fixture
def hub(tmp_path, clock):
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=100, sample_interval=60)
    return Hub(settings, backend=FakeBackend(), accounts=FakeAccounts(settings.students_dir), clock=clock)


def test_a_sample_counts_running_servers_kernels_memory_load_and_disk(hub, tmp_path):
    from nbhosting_core.models import Usage

    (hub.settings.courses_dir / "python").mkdir(parents=True)
    nbformat.write(new_notebook(), str(hub.settings.courses_dir / "python" / "a.ipynb"))
    for student in ("s1", "s2"):
        launch = hub.wait_ready(hub.open_notebook("python", "a.ipynb", student))
        hub.backend.set_usage(launch.container, Usage(memory_bytes=100 << 20))
    event = hub.sample()
    assert event.kind is EventKind.SAMPLE
    assert (event.data["running"], event.data["probed"], event.data["memory_bytes"]) == (2, 2, 200 << 20)
    assert isinstance(event.data["kernels"], int) and isinstance(event.data["load1"], float)
    used, total = event.data["disk_used"], event.data["disk_total"]
    assert isinstance(used, int) and isinstance(total, int) and 0 < used <= total
    engine = open_database(sqlite_url(tmp_path / "db.sqlite"))
    ingest(engine, hub.events)
    [sample] = host_samples(engine, DAY - 1, DAY + 1)
    assert (sample.running, sample.memory_bytes, sample.disk_total) == (2, 200 << 20, total)


def test_samples_over_a_long_window_are_thinned_evenly(engine, journal, clock):
    for n in range(1000):
        clock.advance(60)
        journal.record(EventKind.SAMPLE, data={"running": n})
    ingest(engine, journal)
    samples = host_samples(engine, DAY, DAY + 86400, max_points=100)
    assert len(samples) == 100 and samples[0].running == 0 and samples[-1].running == 999
    assert host_samples(engine, DAY + 86400, DAY + 2 * 86400) == []


def test_one_process_per_host_samples_and_an_interval_of_0_samples_nothing(hub, tmp_path):
    first, second = host_sampler(hub), host_sampler(hub)
    assert first is not None and second is not None
    try:
        assert len(first.run_once()) == 1 and second.run_once() == []
    finally:
        first.stop()
    off = hub.settings.model_copy(update={"sample_interval": 0})
    assert host_sampler(Hub(off, backend=FakeBackend(), accounts=FakeAccounts(off.students_dir))) is None


def test_students_are_listed_most_recently_seen_first_with_their_courses_and_opens(engine, journal, clock):
    a_term(journal, clock)
    ingest(engine, journal)
    page = students(engine)
    # the last day ends with four of them seen in the same second (then by id), carol a minute before
    assert [s.student_id for s in page.students] == ["alice", "bob", "teacher-sid", "zoe", "carol"] and page.total == 5
    alice = page.students[0]
    assert (alice.courses, alice.opens) == (["python"], 6)
    assert [s.student_id for s in students(engine, course="other").students] == ["zoe"]
    assert [s.student_id for s in students(engine, search="ar").students] == ["carol"]
    assert students(engine, search="%").students == []  # a search is text, never a pattern
    second = students(engine, limit=2, offset=2)
    assert [s.student_id for s in second.students] == ["teacher-sid", "zoe"] and second.total == 5


def test_the_apps_events_reader_copies_the_journal_into_the_database(tmp_path, engine):
    from nbhosting_server.app import events_reader

    s = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run")
    EventJournal(s.events_dir).record(EventKind.OPEN, course="python", student_id="alice", notebook="a.ipynb")
    reader = events_reader(s, engine)
    assert reader.run_once() == [1] and reader.run_once() == [0]
    assert [e.student_id for e in events(engine).events] == ["alice"]
    reader.stop()


def test_a_teachers_listing_counts_only_the_events_of_their_courses(engine, journal, clock):
    a_term(journal, clock)
    clock.now += 60
    journal.record(EventKind.OPEN, course="other", student_id="alice", notebook="x.ipynb", action="create")
    ingest(engine, journal)
    mine = students(engine, courses={"other"})
    assert [s.student_id for s in mine.students] == ["alice", "zoe"] and mine.total == 2
    assert mine.students[0].courses == ["other"] and mine.students[0].opens == 1  # not python's six
    assert students(engine, courses=set()).students == []
    assert {e.course for e in events(engine, courses={"other"}, limit=1000).events} == {"other"}
    assert events(engine, courses=set()).events == []
