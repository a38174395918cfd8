"""The host's figures for monitoring: launches and their durations, starts, culls, running servers, active students.

Computed from shared state only, the events journal (:mod:`nbhosting_core.events`, written by the hub, whichever
process runs it) and the server records, so that every process that reads them (each of the app's workers) gives
the same figures; nothing here knows Prometheus (the app exposes them: ``nbhosting_server.metrics``).

Counts are of the journal's current UTC day (its file ``<day>.jsonl``): they start again from zero at 00:00 UTC, as
a counter does when a process restarts. Each :class:`HostFigures` reads the day's file once, then only what was
appended since, a bounded amount per call.
"""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import NbhostingError
from .events import Event, EventJournal, EventKind, journal_name
from .models import Action, CullReason, Server

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
    #: the start of the day they count from (00:00 UTC)
    since: float
    tally: Tally
    running_servers: int
    active_students: dict[str, int]


def day_start(when: float) -> float:
    """00:00 UTC of the day of ``when`` (pure)."""
    day = datetime.fromtimestamp(when, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


class HostFigures:
    """Follows the journal and reads the running servers; :meth:`current` gives the figures now.

    Args:
        journal: the hub's events journal (read only).
        running: the servers that run now; must be cheap (the records and /proc, never the engine).
        clock: seconds since the epoch.
        max_age: seconds a computed :class:`Figures` is given again without reading anything (several scrapes
            at once cost one read).
    """

    def __init__(
        self,
        journal: EventJournal,
        running: Callable[[], list[Server]],
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = 2.0,
    ) -> None:
        self._journal = journal
        self._running = running
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()
        self._day = ""
        self._tally = Tally()
        #: bytes read of each journal file followed: today's and yesterday's (for students seen within 24 h)
        self._offsets: dict[str, int] = {}
        self._last_seen: dict[str, float] = {}
        self._last: Figures | None = None

    def current(self) -> Figures:
        """The figures now (at most ``max_age`` seconds old)."""
        with self._lock:
            now = self._clock()
            if self._last is not None and 0 <= now - self._last.time < self._max_age:
                return self._last
            self._follow(now)
            running = self._running()
            since = now - max(ACTIVE_PERIODS.values())
            self._last_seen = {s: t for s, t in self._last_seen.items() if t >= since}
            self._last = Figures(
                time=now,
                since=day_start(now),
                tally=copy.deepcopy(self._tally),  # a snapshot: the next call goes on counting
                running_servers=len(running),
                active_students=active_students(self._last_seen, (s.student_id for s in running), now),
            )
            return self._last

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
