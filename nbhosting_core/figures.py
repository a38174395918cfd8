"""The host's figures for monitoring: launches and their durations, starts, culls, running servers, active students.

Computed from shared state only, so that every process that reads it (each of the app's workers) gives the same
figures; nothing here knows Prometheus (the app exposes them: ``nbhosting_server.metrics``). Two sources:

- with the app's database (the events read from the journal into it, :mod:`nbhosting_core.eventstore`): counts
  are of every stored event, so they only grow (no reset at a day's change nor at a worker's start), and two
  workers on one database give the same counts. Each :class:`HostFigures` ingests the journal's new lines, then
  adds up with SQL the events stored since the last id it counted (``events.id`` grows in the order events are
  stored): the first call adds up the whole table, the next ones only the new rows. Sums are kept in integers
  (microseconds), so they are the same whatever ranges of ids a worker added them up by;
- without (the journal alone, :mod:`nbhosting_core.events`): counts are of the journal's current UTC day (its file
  ``<day>.jsonl``): they start again from zero at 00:00 UTC, as a counter does when a process restarts; each
  :class:`HostFigures` reads the day's file once, then only what was appended since, a bounded amount per call.

Students active within the last day come from the same source (the stored events of the last 24 h, or the
journal's files of today and yesterday), with the server records for those whose server runs now.
"""

from __future__ import annotations

import bisect
import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Engine, case, cast, func, literal, select
from sqlalchemy.exc import OperationalError

from .db.schema import events as events_table
from .errors import NbhostingError
from .events import Event, EventJournal, EventKind, journal_name
from .eventstore import INGEST_LINES, ingest
from .models import Action, CullReason, Server

log = logging.getLogger(__name__)

#: upper bounds (seconds) of the duration histograms' buckets (JupyterHub's spawn buckets); +Inf is implied
DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 180, 300, 600)
#: the periods active students are counted over, by label
ACTIVE_PERIODS: Mapping[str, float] = {"5m": 300.0, "1h": 3600.0, "24h": 86400.0}
#: the status of a launch that got a server
SUCCESS = "success"
#: the label value of anything outside a known set (a journal line of a newer version, a typo): bounded labels
OTHER = "other"
#: the label value of a failed launch's action (a failure does not say what it tried)
NO_ACTION = "none"
#: bytes of journal read per call at most (a day's file is read over several calls if larger)
READ_PER_CALL = 32 << 20
#: :func:`~nbhosting_core.eventstore.ingest` calls per refresh at most (each reads up to INGEST_LINES lines)
INGEST_CALLS = 3
#: students read at most by one query of who was seen (a day's distinct students, far fewer in practice)
MAX_SEEN = 100_000
#: sums of durations are kept in these units (integers: exact, whatever order they are added in)
PER_SECOND = 1_000_000


def _reasons() -> tuple[str, ...]:
    found: set[str] = set()
    todo: list[type[NbhostingError]] = [NbhostingError]
    while todo:
        cls = todo.pop()
        found.add(cls.reason)
        todo.extend(cls.__subclasses__())
    return tuple(sorted(found))


#: launch statuses: success, or the slug of the error that failed it (see :mod:`nbhosting_core.errors`)
LAUNCH_STATUSES: tuple[str, ...] = (SUCCESS, *_reasons(), OTHER)
#: what a launch did to get its server, or :data:`NO_ACTION` for a failure
LAUNCH_ACTIONS: tuple[str, ...] = (*(a.value for a in Action), NO_ACTION, OTHER)
#: why the culler stopped a server
CULL_REASONS: tuple[str, ...] = (CullReason.IDLE.value, CullReason.MAX_AGE.value, CullReason.OVER_QUOTA.value, OTHER)


def bounded(value: str | None, known: Iterable[str]) -> str:
    """``value`` if it is one of ``known``, else :data:`OTHER` (pure): label values never come from outside a set."""
    return value if value is not None and value in known else OTHER


@dataclass
class Histogram:
    """Observations of a duration in :data:`DURATION_BUCKETS` (per bucket, not cumulative), their sum and count."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        """Count ``value`` (a negative one as 0)."""
        value = max(0.0, value)
        self.buckets[bisect.bisect_left(DURATION_BUCKETS, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at most that), +Inf last: Prometheus's buckets."""
        out, running = [], 0
        for bound, n in zip((*DURATION_BUCKETS, float("inf")), self.buckets, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass
class Tally:
    """What the events of a day add up to (pure: :meth:`add` one event at a time)."""

    #: launches with a duration, by (status, action)
    launches: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    #: failed launches and starts (with or without a duration), by status
    failures: dict[str, int] = field(default_factory=dict)
    #: how long starts took until the server first answered
    ready: Histogram = field(default_factory=Histogram)
    #: servers culled, by reason
    culls: dict[str, int] = field(default_factory=dict)

    def add(self, event: Event) -> None:
        """Count ``event``."""
        if event.kind is EventKind.OPEN and event.duration is not None:
            action = bounded(event.action, LAUNCH_ACTIONS)
            self.launches.setdefault((SUCCESS, action), Histogram()).observe(event.duration)
        elif event.kind is EventKind.FAILURE:
            status = bounded(event.reason, LAUNCH_STATUSES)
            self.failures[status] = self.failures.get(status, 0) + 1
            if event.duration is not None:
                self.launches.setdefault((status, NO_ACTION), Histogram()).observe(event.duration)
        elif event.kind is EventKind.READY and event.duration is not None:
            self.ready.observe(event.duration)
        elif event.kind is EventKind.CULL:
            reason = bounded(event.reason, CULL_REASONS)
            self.culls[reason] = self.culls.get(reason, 0) + 1


#: the events that show a student had a server at that moment (opened, answering, stopped, restarted, culled)
SERVER_SEEN = frozenset({EventKind.OPEN, EventKind.READY, EventKind.STOP, EventKind.RESTART, EventKind.CULL})


#: the kinds of events :class:`Tally` counts
TALLIED = (EventKind.OPEN.value, EventKind.FAILURE.value, EventKind.READY.value, EventKind.CULL.value)


@dataclass
class StoredCounts:
    """What a range of stored events adds up to, in integers, by (kind, label): the label is the launch's action
    (open), the failure's status, the cull's reason, or "" (ready). Each value is ``[events, with a duration, sum of
    the durations in microseconds, then for each of DURATION_BUCKETS the durations at most that]``.

    Integers add up exactly: the counts of ids 1..n are the same whether a worker added them up at once or over many
    calls. :meth:`tally` gives them as a :class:`Tally` (the same as adding each event to one).
    """

    rows: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def add(self, other: StoredCounts) -> None:
        """Add ``other``'s counts to these."""
        for key, values in other.rows.items():
            mine = self.rows.setdefault(key, [0] * len(values))
            for i, value in enumerate(values):
                mine[i] += value

    def tally(self) -> Tally:
        """These counts as a :class:`Tally` (a new one)."""
        t = Tally()
        for (kind, label), (count, timed, micros, *cumulative) in sorted(self.rows.items()):
            observed = Histogram(
                buckets=[b - a for a, b in zip([0, *cumulative], [*cumulative, timed], strict=True)],
                total=micros / PER_SECOND,
                count=timed,
            )
            if kind == EventKind.OPEN.value and timed:
                t.launches[(SUCCESS, label)] = observed
            elif kind == EventKind.FAILURE.value:
                t.failures[label] = count
                if timed:
                    t.launches[(label, NO_ACTION)] = observed
            elif kind == EventKind.READY.value and timed:
                t.ready = observed
            elif kind == EventKind.CULL.value:
                t.culls[label] = count
        return t


def stored_counts(connection: Connection, after_id: int, upto_id: int) -> StoredCounts:
    """The counts of the stored events with ``after_id < id <= upto_id`` (one aggregate query: a few dozen rows
    whatever the range; label values bounded in the query, as :func:`bounded` does)."""
    e = events_table.c

    def known(column: Any, values: Iterable[str]) -> Any:
        return case((column.in_(list(values)), column), else_=literal(OTHER))

    label = case(
        (e.kind == EventKind.OPEN.value, known(e.action, LAUNCH_ACTIONS)),
        (e.kind == EventKind.FAILURE.value, known(e.reason, LAUNCH_STATUSES)),
        (e.kind == EventKind.CULL.value, known(e.reason, CULL_REASONS)),
        else_=literal(""),
    )
    rows = (
        # by id only: a range of the primary key (a kind's index would read every event of that kind)
        select(e.kind, label.label("label"), e.duration).where(e.id > after_id, e.id <= upto_id).subquery()
    )
    r = rows.c
    clamped = case((r.duration < 0, 0.0), else_=r.duration)
    query = select(
        r.kind,
        r.label,
        func.count(),
        func.count(r.duration),
        func.coalesce(func.sum(cast(func.round(clamped * PER_SECOND), BigInteger)), 0),
        *(func.sum(case((r.duration <= bound, 1), else_=0)) for bound in DURATION_BUCKETS),
    ).group_by(r.kind, r.label)
    counts = StoredCounts()
    for kind, name, *values in connection.execute(query):
        if kind in TALLIED:
            counts.rows[(str(kind), str(name))] = [int(v or 0) for v in values]
    return counts


def stored_last_seen(
    connection: Connection, *, upto_id: int, after_id: int | None = None, since: float | None = None
) -> dict[str, float]:
    """By student id, the time of their last stored event that showed a server (see :data:`SERVER_SEEN`), among the
    events with ``after_id < id <= upto_id`` and ``time >= since`` (at most :data:`MAX_SEEN` students)."""
    e = events_table.c
    seen_kinds = sorted(k.value for k in SERVER_SEEN)
    if after_id is not None:  # a range of ids: by the primary key, the kind tested on each row
        last = func.max(case((e.kind.in_(seen_kinds), e.time)))
        query = select(e.student_id, last).where(e.id > after_id).having(last.is_not(None))
    else:  # a period: by the index on (kind, time)
        query = select(e.student_id, func.max(e.time)).where(e.kind.in_(seen_kinds))
    query = query.where(e.student_id.is_not(None), e.id <= upto_id)
    if since is not None:
        query = query.where(e.time >= since)
    rows = connection.execute(query.group_by(e.student_id).limit(MAX_SEEN))
    return {str(student): float(when) for student, when in rows}


def active_students(
    last_seen: Mapping[str, float], running: Iterable[str], now: float, periods: Mapping[str, float] = ACTIVE_PERIODS
) -> dict[str, int]:
    """Distinct students with a server seen within each period before ``now`` (pure).

    ``last_seen``: by student id, the last event that showed a server of theirs (see :data:`SERVER_SEEN`);
    ``running``: the students whose server runs now (seen now).
    """
    running = set(running)
    counts = {}
    for label, seconds in periods.items():
        since = now - seconds
        counts[label] = len(running | {student for student, when in last_seen.items() if when >= since})
    return counts


@dataclass(frozen=True)
class Figures:
    """The host's figures at one moment (see :class:`HostFigures`)."""

    #: when they were computed (seconds since the epoch)
    time: float
    #: when the counts start: the first stored event's time (with a database; None while there is none), or 00:00
    #: UTC of the day (the journal alone)
    since: float | None
    tally: Tally
    running_servers: int
    active_students: dict[str, int]


def day_start(when: float) -> float:
    """00:00 UTC of the day of ``when`` (pure)."""
    day = datetime.fromtimestamp(when, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


class HostFigures:
    """Follows the events and reads the running servers; :meth:`current` gives the figures now.

    Args:
        journal: the hub's events journal (read only).
        running: the servers that run now; must be cheap (the records and /proc, never the engine).
        database: the app's database: the journal is ingested into it, and the counts are of every stored event
            (see the module's docstring); None: of the journal's current day.
        clock: seconds since the epoch.
        max_age: seconds a computed :class:`Figures` is given again without reading anything (several scrapes
            at once cost one read).
    """

    def __init__(
        self,
        journal: EventJournal,
        running: Callable[[], list[Server]],
        *,
        database: Engine | None = None,
        clock: Callable[[], float] = time.time,
        max_age: float = 2.0,
    ) -> None:
        self._journal = journal
        self._running = running
        self._database = database
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()
        # the journal alone
        self._day = ""
        self._tally = Tally()
        #: bytes read of each journal file followed: today's and yesterday's (for students seen within 24 h)
        self._offsets: dict[str, int] = {}
        # the database
        #: the stored events counted so far: those with an id up to this (0: none yet)
        self._counted_id = 0
        self._counts = StoredCounts()
        self._first_event: float | None = None
        self._seen_loaded = False
        # both
        self._last_seen: dict[str, float] = {}
        self._last: Figures | None = None

    def current(self) -> Figures:
        """The figures now (at most ``max_age`` seconds old)."""
        with self._lock:
            now = self._clock()
            if self._last is not None and 0 <= now - self._last.time < self._max_age:
                return self._last
            if self._database is not None:
                self._follow_database(self._database, now)
                tally, since = self._counts.tally(), self._first_event
            else:
                self._follow(now)
                tally, since = copy.deepcopy(self._tally), day_start(now)  # a snapshot: the next call counts on
            running = self._running()
            window = now - max(ACTIVE_PERIODS.values())
            self._last_seen = {s: t for s, t in self._last_seen.items() if t >= window}
            self._last = Figures(
                time=now,
                since=since,
                tally=tally,
                running_servers=len(running),
                active_students=active_students(self._last_seen, (s.student_id for s in running), now),
            )
            return self._last

    def _follow_database(self, engine: Engine, now: float) -> None:
        """Ingest the journal's new lines (a bounded amount), then count the events stored since the last call."""
        try:
            for _ in range(INGEST_CALLS):
                if ingest(engine, self._journal) < INGEST_LINES:
                    break
        except OperationalError as exc:  # SQLite busy beyond its timeout: count what is stored, ingest next time
            log.warning("figures: the journal could not be ingested now: %s", exc)
        e = events_table.c
        with engine.connect() as connection:
            top = int(connection.execute(select(func.max(e.id))).scalar_one_or_none() or 0)
            if top <= self._counted_id:
                return
            self._counts.add(stored_counts(connection, self._counted_id, top))
            if self._seen_loaded:
                seen = stored_last_seen(connection, after_id=self._counted_id, upto_id=top)
            else:  # the first time: the last day's events only, not the whole table
                seen = stored_last_seen(connection, upto_id=top, since=now - max(ACTIVE_PERIODS.values()))
                self._seen_loaded = True
            if self._first_event is None:
                self._first_event = connection.execute(select(e.time).order_by(e.id).limit(1)).scalar_one_or_none()
        self._counted_id = top
        for student, when in seen.items():
            self._last_seen[student] = max(when, self._last_seen.get(student, 0))

    def _follow(self, now: float) -> None:
        """Read what was appended to yesterday's and today's files; at a new day, count from zero."""
        today = journal_name(now)
        yesterday = journal_name(now - 86400)
        if today != self._day:
            self._day, self._tally = today, Tally()
            self._offsets = {name: self._offsets.get(name, 0) for name in (yesterday, today)}
        budget = READ_PER_CALL
        for name in (yesterday, today):
            offset = self._offsets[name]
            while budget > 0:
                read = 0
                for _start, end, event in self._journal.read(name, offset, limit=min(budget, 1 << 20)):
                    read, offset = read + end - offset, end
                    if event is None:
                        continue
                    if event.kind in SERVER_SEEN and event.student_id is not None:
                        self._last_seen[event.student_id] = max(event.time, self._last_seen.get(event.student_id, 0))
                    if name == today:
                        self._tally.add(event)
                self._offsets[name] = offset
                budget -= read
                if read == 0:
                    break
