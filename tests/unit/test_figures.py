"""The host's figures from the journal or the database, and the running servers: what Prometheus is shown."""

import json
import random
from datetime import UTC, datetime

from nbhosting_core.db import open_database
from nbhosting_core.db.engine import sqlite_url
from nbhosting_core.events import Event, EventJournal, EventKind
from nbhosting_core.figures import (
    DURATION_BUCKETS,
    NO_ACTION,
    OTHER,
    Histogram,
    HostFigures,
    StoredCounts,
    Tally,
    active_students,
    bounded,
    day_start,
    stored_counts,
)
from nbhosting_core.models import Server, ServerState

NOON = datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp()


def event(kind, when=NOON, **fields):
    return Event(time=when, kind=kind, **fields)


def server(student):
    return Server(
        name=f"s-{student}",
        course="demo",
        student_id=student,
        user="u",
        uid=1,
        key="k" * 40,
        image="i",
        state=ServerState.RUNNING,
        started_at=NOON,
    )


def test_a_histogram_counts_each_value_in_the_first_bucket_that_holds_it():
    h = Histogram()
    for value in (0.2, 0.5, 3, 700, -1):
        h.observe(value)
    cumulative = dict(h.cumulative())
    assert cumulative[0.5] == 3 and cumulative[5] == 4 and cumulative[600] == 4 and cumulative[float("inf")] == 5
    assert h.count == 5 and h.total == 0.2 + 0.5 + 3 + 700
    assert [b for b, _ in h.cumulative()] == [*DURATION_BUCKETS, float("inf")]


def test_a_tally_counts_launches_by_status_and_action_starts_and_culls():
    t = Tally()
    t.add(event(EventKind.OPEN, action="create", duration=4.0))
    t.add(event(EventKind.OPEN, action="reuse", duration=0.1))
    t.add(event(EventKind.OPEN, action="reuse"))  # no duration: not a launch's timing
    t.add(event(EventKind.FAILURE, reason="busy", duration=0.01))
    t.add(event(EventKind.FAILURE, reason="start-failed"))  # died while starting: counted, no duration
    t.add(event(EventKind.READY, duration=7.5))
    t.add(event(EventKind.CULL, reason="idle"))
    t.add(event(EventKind.CULL, reason="idle"))
    t.add(event(EventKind.SAMPLE, data={"running": 3}))
    assert {k: h.count for k, h in t.launches.items()} == {
        ("success", "create"): 1,
        ("success", "reuse"): 1,
        ("busy", NO_ACTION): 1,
    }
    assert t.failures == {"busy": 1, "start-failed": 1}
    assert t.ready.count == 1 and t.ready.total == 7.5
    assert t.culls == {"idle": 2}


def test_label_values_never_come_from_outside_a_known_set():
    t = Tally()
    t.add(event(EventKind.OPEN, action="alice-secret-key", duration=1))
    t.add(event(EventKind.FAILURE, reason="x" * 200, duration=1))
    t.add(event(EventKind.CULL, reason="whatever"))
    assert set(t.launches) == {("success", OTHER), (OTHER, NO_ACTION)}
    assert t.culls == {OTHER: 1}
    assert bounded(None, ["a"]) == OTHER and bounded("a", ["a"]) == "a"


def test_active_students_are_those_with_a_server_running_or_seen_within_each_period():
    seen = {"a": NOON - 60, "b": NOON - 1800, "c": NOON - 7200, "d": NOON - 90000}
    assert active_students(seen, ["e", "a"], NOON) == {"5m": 2, "1h": 3, "24h": 4}


def write(journal: EventJournal, *events: Event) -> None:
    for e in events:
        path = journal.folder / (datetime.fromtimestamp(e.time, UTC).strftime("%Y-%m-%d") + ".jsonl")
        journal.folder.mkdir(exist_ok=True)
        with path.open("a") as f:
            f.write(e.model_dump_json(exclude_none=True) + "\n")


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_host_figures_follow_the_journal_count_from_the_day_start_and_read_only_what_was_appended(tmp_path):
    journal = EventJournal(tmp_path / "events")
    clock = Clock(NOON)
    running = [server("alice")]
    figures = HostFigures(journal, lambda: running, clock=clock, max_age=0)
    write(
        journal,
        event(EventKind.OPEN, NOON - 86400, student_id="old", action="create", duration=1),  # yesterday
        event(EventKind.OPEN, NOON - 100, student_id="bob", action="create", duration=3),
        event(EventKind.CULL, NOON - 50, student_id="carol", reason="idle"),
    )
    (journal.folder / "2026-03-04.jsonl").open("a").write("not json\n")
    first = figures.current()
    assert first.since == day_start(NOON) == datetime(2026, 3, 4, tzinfo=UTC).timestamp()
    assert {k: h.count for k, h in first.tally.launches.items()} == {("success", "create"): 1}
    assert first.tally.culls == {"idle": 1}
    assert first.running_servers == 1
    assert first.active_students == {"5m": 3, "1h": 3, "24h": 4}  # alice runs; bob, carol seen; old yesterday
    write(journal, event(EventKind.OPEN, NOON + 1, student_id="bob", action="reuse", duration=0.1))
    clock.now += 2
    second = figures.current()
    assert {k: h.count for k, h in second.tally.launches.items()} == {("success", "create"): 1, ("success", "reuse"): 1}
    assert {k: h.count for k, h in first.tally.launches.items()} == {("success", "create"): 1}  # a snapshot
    clock.now = NOON + 86400  # the next day: counts start again, students seen still count within 24 h
    third = figures.current()
    assert third.tally.launches == {} and third.tally.culls == {}
    assert third.active_students == {"5m": 1, "1h": 1, "24h": 2}  # alice runs; bob within 24 h, carol not


def test_host_figures_are_the_same_in_every_process_that_reads_the_journal(tmp_path):
    journal = EventJournal(tmp_path / "events")
    write(
        journal, *(event(EventKind.OPEN, NOON - i, student_id=f"s{i}", action="start", duration=i) for i in range(50))
    )
    one = HostFigures(journal, list, clock=Clock(NOON)).current()
    two = HostFigures(journal, list, clock=Clock(NOON)).current()
    assert one == two and one.tally.launches[("success", "start")].count == 50


def test_host_figures_give_the_same_snapshot_within_max_age(tmp_path):
    calls = []
    clock = Clock(NOON)
    figures = HostFigures(EventJournal(tmp_path / "events"), lambda: calls.append(1) or [], clock=clock, max_age=2)
    figures.current()
    clock.now += 1
    figures.current()
    assert len(calls) == 1
    clock.now += 2
    figures.current()
    assert len(calls) == 2


def test_a_journal_line_of_an_unknown_shape_is_skipped(tmp_path):
    journal = EventJournal(tmp_path / "events")
    journal.folder.mkdir()
    (journal.folder / "2026-03-04.jsonl").write_text(json.dumps({"kind": "open"}) + "\n{\n")
    figures = HostFigures(journal, list, clock=Clock(NOON)).current()
    assert figures.tally == Tally()


# ------------------------------------------------------------------------------------------------ with a database


def varied_events(n, start=NOON, seed=1):
    """``n`` events of every kind, known and unknown labels, durations absent, negative, on a bucket's bound."""
    rng = random.Random(seed)
    kinds = [EventKind.OPEN] * 4 + [
        EventKind.FAILURE,
        EventKind.READY,
        EventKind.CULL,
        EventKind.SAMPLE,
        EventKind.STOP,
    ]
    out = []
    for i in range(n):
        kind = rng.choice(kinds)
        duration = rng.choice([None, rng.expovariate(0.3), -1.0, 0.5, 600.0, 601.0])
        out.append(
            event(
                kind,
                start + i,
                student_id=f"s{rng.randrange(40)}",
                action=rng.choice(["create", "start", "reuse", "replace", "zz-made-up", None]),
                reason=rng.choice(["idle", "max-age", "busy", "not-found", "start-timeout", "zz-made-up", None]),
                duration=duration if kind is not EventKind.CULL else None,
            )
        )
    return out


def stored(tmp_path, name="db.sqlite"):
    return open_database(sqlite_url(tmp_path / name))


def same_tallies(a: Tally, b: Tally) -> None:
    """Equal, the sums of durations to the microsecond (the database keeps them in microseconds)."""
    assert a.failures == b.failures and a.culls == b.culls
    assert set(a.launches) == set(b.launches)
    for key in a.launches:
        assert (a.launches[key].buckets, a.launches[key].count) == (b.launches[key].buckets, b.launches[key].count)
        assert abs(a.launches[key].total - b.launches[key].total) < 1e-4
    assert (a.ready.buckets, a.ready.count) == (b.ready.buckets, b.ready.count)
    assert abs(a.ready.total - b.ready.total) < 1e-4


def test_the_databases_counts_are_a_tallys_of_the_same_events(tmp_path):
    journal = EventJournal(tmp_path / "events")
    events = varied_events(600)
    write(journal, *events)
    figures = HostFigures(journal, list, database=stored(tmp_path), clock=Clock(NOON + 600), max_age=0).current()
    expected = Tally()
    for e in events:
        expected.add(e)
    same_tallies(figures.tally, expected)
    assert figures.since == NOON  # the first stored event
    assert OTHER in figures.tally.culls and (OTHER, NO_ACTION) in figures.tally.launches  # bounded in SQL too


def test_counts_added_up_over_any_ranges_of_ids_are_the_same_exactly(tmp_path):
    journal = EventJournal(tmp_path / "events")
    write(journal, *varied_events(300))
    engine = stored(tmp_path)
    HostFigures(journal, list, database=engine, max_age=0).current()  # ingests them all
    with engine.connect() as connection:
        whole = stored_counts(connection, 0, 10_000)
        pieces = StoredCounts()
        bounds = [0, 1, 7, 100, 101, 250, 10_000]
        for low, high in zip(bounds, bounds[1:], strict=False):
            pieces.add(stored_counts(connection, low, high))
    assert pieces == whole and pieces.tally() == whole.tally()  # sums too: integers, not floats


def test_with_a_database_counts_survive_the_day_change_and_only_grow(tmp_path):
    journal = EventJournal(tmp_path / "events")
    clock = Clock(NOON)
    figures = HostFigures(journal, lambda: [server("alice")], database=stored(tmp_path), clock=clock, max_age=0)
    write(
        journal,
        event(EventKind.OPEN, NOON - 100, student_id="bob", action="create", duration=3),
        event(EventKind.CULL, NOON - 50, student_id="carol", reason="idle"),
    )
    first = figures.current()
    assert first.tally.launches[("success", "create")].count == 1 and first.tally.culls == {"idle": 1}
    assert first.active_students == {"5m": 3, "1h": 3, "24h": 3}
    clock.now = NOON + 86400  # the next day: nothing is forgotten
    write(journal, event(EventKind.OPEN, clock.now - 1, student_id="dan", action="create", duration=2))
    second = figures.current()
    assert second.tally.launches[("success", "create")].count == 2 and second.tally.culls == {"idle": 1}
    assert second.tally.launches[("success", "create")].total == 5.0
    assert second.since == first.since == NOON - 100  # the counters' start does not move
    assert second.active_students == {"5m": 2, "1h": 2, "24h": 2}  # alice runs, dan now; bob, carol over 24 h ago
    clock.now += 86400 * 30  # a month later, the journal's files pruned: the stored events still count
    for name in journal.files():
        (journal.folder / name).unlink()
    assert figures.current().tally == second.tally


def test_two_workers_on_one_database_give_the_same_figures_whenever_they_started(tmp_path):
    journal = EventJournal(tmp_path / "events")
    clock = Clock(NOON + 1000)
    early = HostFigures(journal, list, database=stored(tmp_path), clock=clock, max_age=0)
    events = varied_events(500)
    for i in range(0, 500, 50):  # the early worker counts as the events come
        write(journal, *events[i : i + 50])
        early.current()
        clock.now += 1
    late = HostFigures(journal, list, database=stored(tmp_path), clock=clock, max_age=0)  # its own engine
    one, two = early.current(), late.current()
    assert one.tally == two.tally and one.since == two.since and one.active_students == two.active_students
    write(journal, *varied_events(50, start=NOON + 2000, seed=2))
    clock.now += 1
    assert late.current().tally == early.current().tally


def test_a_fresh_worker_reads_the_last_days_students_from_the_database_not_the_journal(tmp_path):
    journal = EventJournal(tmp_path / "events")
    write(
        journal,
        event(EventKind.OPEN, NOON - 90000, student_id="old", action="create", duration=1),
        event(EventKind.READY, NOON - 60, student_id="bob", duration=1),
        event(EventKind.FAILURE, NOON - 60, student_id="eve", reason="busy"),  # no server: not active
    )
    engine = stored(tmp_path)
    HostFigures(journal, list, database=engine, max_age=0).current()  # ingested
    for name in journal.files():
        (journal.folder / name).unlink()
    figures = HostFigures(journal, list, database=engine, clock=Clock(NOON), max_age=0).current()
    assert figures.active_students == {"5m": 1, "1h": 1, "24h": 1}
    assert figures.tally.launches[("success", "create")].count == 1
