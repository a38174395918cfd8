"""The app's copy of the host's events: read from the journal into the database, and asked for figures.

The hub (root) appends events to its journal (:mod:`nbhosting_core.events`); the app (unprivileged) copies them into
its database with :func:`ingest`, from where it last stopped in each journal file. A line and the file's cursor are
written in one transaction, and a line's (file, offset) is unique: several app workers may ingest at once, a crash
between two lines loses nothing, and no event is stored twice. A line still being written is left for the next call.

Queries answer pydantic models, for the API, the pages and the CLI alike:

- :func:`events`: the events, newest first, filtered and paginated;
- :func:`course_statistics`: one course's students and notebooks per UTC day, its progress map, launch durations
  and failures, the staff's own student ids excluded (see :mod:`nbhosting_core.coursestats`);
- :func:`host_samples`: the host's figures over time (running servers, kernels, memory, load, disk);
- :func:`students`: the students seen in the events (of a course, or matching a search), most recent first.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Engine, Select, and_, case, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite

from .coursestats import CourseStatistics, DayActivity, Distribution, ProgressMap, course_statistics
from .db.schema import events as events_table
from .db.schema import journal_cursor
from .events import Event, EventJournal, EventKind

log = logging.getLogger(__name__)

__all__ = [
    "CourseStatistics",
    "DayActivity",
    "Distribution",
    "EventPage",
    "HostSample",
    "ProgressMap",
    "StoredEvent",
    "course_statistics",
    "events",
    "host_samples",
    "ingest",
    "StudentPage",
    "StudentSummary",
    "students",
]

#: lines one :func:`ingest` call reads at most (a page that ingests first never waits long)
INGEST_LINES = 10_000
#: bytes read from one journal file at once
INGEST_BYTES = 4 << 20
#: the most events one :func:`events` call returns
MAX_EVENTS = 1000
#: samples read at most by :func:`host_samples` (a month at the default interval is 8,640)
MAX_SAMPLES = 50_000


# ------------------------------------------------------------------------------------------------ ingest


def ingest(engine: Engine, journal: EventJournal, *, max_lines: int = INGEST_LINES) -> int:
    """Copy the journal's new lines into the database, up to ``max_lines``; the number of events added.

    Reads each journal file (oldest first) from its cursor. Idempotent and safe with several workers at once:
    a line already stored (same file and offset) is skipped, and each file's cursor only moves forward, in the
    same transaction as its lines. A line not yet ended stays for the next call; a line that is not an event is
    passed over. Call it again while it returns ``max_lines``-sized batches to catch up on a long journal.

    Events get their ids in the order they are stored, and a reader never sees a smaller id appear after a larger
    one (SQLite writes one transaction at a time; on PostgreSQL, ingests lock the table against each other).
    """
    started = time.monotonic()
    insert = _insert_for(engine)
    with engine.connect() as connection:
        cursors = dict(connection.execute(select(journal_cursor.c.source, journal_cursor.c.offset)).all())
    added = lines = 0
    for name in journal.files():
        if lines >= max_lines:
            break
        offset = cursors.get(name, 0)
        if _size(journal, name) == offset:
            continue
        rows: list[dict[str, Any]] = []
        end = offset
        for at, next_offset, event in journal.read(name, offset, limit=INGEST_BYTES):
            if lines >= max_lines:
                break
            lines += 1
            end = next_offset
            if event is not None:
                rows.append(_row(name, at, event))
        if end == offset:
            continue
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # one ingest at a time, ids drawn and committed in the same order: a reader that has counted up
                # to an id never sees a smaller one appear later (nbhosting_core.figures counts by id); SQLite's
                # writers are one at a time already. Readers are not held (SELECT takes a weaker lock).
                connection.execute(text("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"))
            if rows:
                added += connection.execute(insert(events_table).on_conflict_do_nothing(), rows).rowcount
            advance = insert(journal_cursor).values(source=name, offset=end)
            connection.execute(
                advance.on_conflict_do_update(
                    index_elements=[journal_cursor.c.source],
                    set_={"offset": advance.excluded.offset},
                    where=journal_cursor.c.offset < advance.excluded.offset,
                )
            )
    if lines:
        log.info("ingest: %d lines read, %d events added in %.3fs", lines, added, time.monotonic() - started)
    return added


def _insert_for(engine: Engine) -> Callable[..., Any]:
    """The dialect's INSERT that knows ON CONFLICT (SQLite and PostgreSQL)."""
    if engine.dialect.name == "sqlite":
        return sqlite.insert
    if engine.dialect.name == "postgresql":
        return postgresql.insert
    raise ValueError(f"events are stored in SQLite or PostgreSQL, not {engine.dialect.name}")


def _size(journal: EventJournal, name: str) -> int | None:
    try:
        return os.stat(journal.folder / name, follow_symlinks=False).st_size
    except FileNotFoundError:
        return None


def _row(source: str, offset: int, event: Event) -> dict[str, Any]:
    return {
        "source": source,
        "offset": offset,
        "time": event.time,
        "kind": event.kind.value,
        "course": event.course,
        "student_id": event.student_id,
        "notebook": event.notebook,
        "action": event.action,
        "reason": event.reason,
        "duration": event.duration,
        "actor": event.actor,
        "data": json.dumps(event.data) if event.data else None,
    }


# ------------------------------------------------------------------------------------------------ events


class StoredEvent(Event):
    """An event as stored: the event, and its id in the database (for pagination)."""

    id: int


class EventPage(BaseModel):
    """One page of events, newest first; ``next_before_id``: pass it as ``before_id`` for the next page."""

    model_config = ConfigDict(frozen=True)

    events: list[StoredEvent]
    next_before_id: int | None = Field(None, description="None: this is the last page.")


def events(
    engine: Engine,
    *,
    course: str | None = None,
    courses: Collection[str] | None = None,
    student_id: str | None = None,
    kind: EventKind | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> EventPage:
    """The stored events that match every filter given, newest first (by time, then id).

    Args:
        courses: of these courses only (a teacher's listing); events of no course are left out then.
        since, until: seconds since the epoch (``since`` included, ``until`` excluded).
        limit: at most this many (capped at :data:`MAX_EVENTS`).
        before_id: the events after this one in the order (the previous page's ``next_before_id``).
    """
    limit = max(1, min(limit, MAX_EVENTS))
    e = events_table.c
    query: Select[Any] = select(events_table)
    for column, value in ((e.course, course), (e.student_id, student_id), (e.kind, kind.value if kind else None)):
        if value is not None:
            query = query.where(column == value)
    if courses is not None:
        query = query.where(e.course.in_(sorted(courses)))
    query = _window(query, since, until)
    if before_id is not None:
        then = select(e.time).where(e.id == before_id).scalar_subquery()
        query = query.where(or_(e.time < then, and_(e.time == then, e.id < before_id)))
    query = query.order_by(e.time.desc(), e.id.desc()).limit(limit + 1)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    page = [_stored(row) for row in rows[:limit]]
    return EventPage(events=page, next_before_id=page[-1].id if len(rows) > limit else None)


def _window(query: Select[Any], since: float | None, until: float | None) -> Select[Any]:
    if since is not None:
        query = query.where(events_table.c.time >= since)
    if until is not None:
        query = query.where(events_table.c.time < until)
    return query


def _stored(row: Any) -> StoredEvent:
    fields = {k: v for k, v in row.items() if k not in ("source", "offset", "data") and v is not None}
    return StoredEvent(**fields, data=json.loads(row["data"]) if row["data"] else {})


# ------------------------------------------------------------------------------------------------ students


class StudentSummary(BaseModel):
    """A student as the events know them: their courses, when first and last seen, how many opens."""

    model_config = ConfigDict(frozen=True)

    student_id: str
    courses: list[str]
    first_seen: float
    last_seen: float
    opens: int


class StudentPage(BaseModel):
    """One page of students, most recently seen first; ``total``: how many match."""

    model_config = ConfigDict(frozen=True)

    students: list[StudentSummary]
    total: int


def students(
    engine: Engine,
    *,
    course: str | None = None,
    courses: Collection[str] | None = None,
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> StudentPage:
    """The students seen in the events (of ``course``, with an id containing ``search``), most recently seen first.

    Args:
        courses: seen in these courses only (a teacher's listing): their figures and their ``courses`` count
            those courses' events only.
        limit: at most this many (capped at :data:`MAX_EVENTS`); offset: skip that many first.
    """
    limit = max(1, min(limit, MAX_EVENTS))
    e = events_table.c
    where: list[ColumnElement[bool]] = [e.student_id.is_not(None)]
    if course is not None:
        where.append(e.course == course)
    if courses is not None:
        where.append(e.course.in_(sorted(courses)))
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(e.student_id.like(f"%{escaped}%", escape="\\"))
    last = func.max(e.time).label("last_seen")
    query = (
        select(
            e.student_id,
            func.min(e.time).label("first_seen"),
            last,
            func.sum(case((e.kind == EventKind.OPEN.value, 1), else_=0)).label("opens"),
        )
        .where(*where)
        .group_by(e.student_id)
        .order_by(last.desc(), e.student_id)
        .limit(limit)
        .offset(max(0, offset))
    )
    total_query = select(func.count(func.distinct(e.student_id))).where(*where)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        total = connection.execute(total_query).scalar_one()
        ids = [row.student_id for row in rows]
        pairs = connection.execute(
            select(e.student_id, e.course)
            .where(
                e.student_id.in_(ids),
                e.course.is_not(None),
                *([e.course.in_(sorted(courses))] if courses is not None else []),
            )
            .distinct()
        ).all()
    seen_in: dict[str, set[str]] = {}
    for student_id, name in pairs:
        seen_in.setdefault(student_id, set()).add(name)
    page = [
        StudentSummary(
            student_id=row.student_id,
            courses=sorted(seen_in.get(row.student_id, ())),
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            opens=int(row.opens or 0),
        )
        for row in rows
    ]
    return StudentPage(students=page, total=int(total))


# ------------------------------------------------------------------------------------------------ host samples


class HostSample(BaseModel):
    """The host's figures at one moment (see ``Hub.sample``); None where the sample did not say."""

    model_config = ConfigDict(frozen=True)

    time: float
    running: int | None = Field(None, description="Students' servers running.")
    kernels: int | None = Field(None, description="Kernels in the servers that answered.")
    busy_kernels: int | None = None
    memory_bytes: int | None = Field(None, description="Memory used by the students' servers (sum).")
    memory_total: int | None = Field(None, description="The host's memory.")
    load1: float | None = Field(None, description="The host's load average over a minute.")
    disk_used: int | None = Field(None, description="Bytes used on DATA_ROOT's file system.")
    disk_total: int | None = None


def host_samples(engine: Engine, since: float, until: float, *, max_points: int = 500) -> list[HostSample]:
    """The host's samples between ``since`` (included) and ``until`` (excluded), oldest first.

    At most ``max_points`` (evenly thinned when there are more), from at most :data:`MAX_SAMPLES` stored.
    """
    e = events_table.c
    query = _window(select(e.time, e.data).where(e.kind == EventKind.SAMPLE.value), since, until)
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(e.time).limit(MAX_SAMPLES)).all()
    samples = [_sample(t, data) for t, data in _thin(rows, max_points)]
    return samples


def _thin(rows: Sequence[Any], most: int) -> Sequence[Any]:
    """At most ``most`` (at least 2) of ``rows``, evenly spaced, the first and the last kept."""
    most = max(2, most)
    if len(rows) <= most:
        return rows
    step = (len(rows) - 1) / (most - 1)
    return [rows[round(i * step)] for i in range(most)]


def _sample(when: float, data: str | None) -> HostSample:
    figures = json.loads(data) if data else {}
    known = {k: v for k, v in figures.items() if k in HostSample.model_fields and k != "time" and v is not None}
    return HostSample.model_validate({"time": when, **known})
