"""One course's figures, from the stored events (see :mod:`nbhosting_core.eventstore`): what a teacher reads.

Per UTC day: distinct students and notebooks opened, cumulative distinct students, launch durations, failures;
over the course's life: which student opened which notebook (the progress map). The staff's own student ids (the
``staff`` table's ``student_id``: who tries notebooks as a student) and any id the caller names are left out.
Every read is bounded: grouped in SQL, or capped (see the constants).
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Engine, Integer, and_, cast, func, or_, select

from .db.schema import events as events_table
from .db.schema import staff
from .events import EventKind

log = logging.getLogger(__name__)

DAY = 86400
#: rows and columns of the progress map at most (the students who opened most notebooks first)
MAX_STUDENTS = 300
MAX_NOTEBOOKS = 200
#: durations read at most for one course's window (medians over more are no better)
MAX_DURATIONS = 200_000
#: days one call covers at most
MAX_DAYS = 366


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Distribution(_Frozen):
    """Durations (seconds): how many, the median, the 90th percentile and the longest; None when none."""

    count: int = 0
    median: float | None = None
    p90: float | None = None
    max: float | None = None


class DayActivity(_Frozen):
    """One UTC day of a course."""

    day: date
    students: int = Field(0, description="Distinct students who opened a notebook that day.")
    notebooks: int = Field(0, description="Distinct notebooks opened that day.")
    opens: int = Field(0, description="Notebooks opened (every click).")
    cumulative_students: int = Field(0, description="Distinct students who opened a notebook up to that day.")
    failures: int = Field(0, description="Launches that failed.")
    open_durations: Distribution = Field(default_factory=Distribution, description="A click to its answer.")
    ready_durations: Distribution = Field(default_factory=Distribution, description="A start to Jupyter answering.")


class ProgressMap(_Frozen):
    """Which student opened which notebook, over the course's life.

    ``opened[i][j]``: how many times ``students[i]`` opened ``notebooks[j]`` (0: never). Students who opened the
    most notebooks come first; notebooks are in their names' order (numbers compared as numbers).
    """

    students: list[str] = Field(default_factory=list)
    notebooks: list[str] = Field(default_factory=list)
    opened: list[list[int]] = Field(default_factory=list)
    more_students: int = Field(0, description="Students left out beyond the cap.")
    more_notebooks: int = Field(0, description="Notebooks left out beyond the cap.")


class LaunchDurations(_Frozen):
    """The durations of one kind of launch over the window: ``create``, ``start``, ``reuse``, ``replace`` (an
    open, from the click to its answer) or ``ready`` (a server's start, to Jupyter answering)."""

    action: str
    durations: Distribution


class ReasonCount(_Frozen):
    """Failures of one reason (the error's slug)."""

    reason: str
    count: int


class CourseStatistics(_Frozen):
    """A course's figures over ``first_day`` .. ``last_day`` (UTC, both included), staff excluded."""

    course: str
    generated: float = Field(description="When these were computed (seconds since the epoch).")
    first_day: date
    last_day: date
    days: list[DayActivity] = Field(description="Every day of the window, oldest first (days without events too).")
    total_students: int = Field(description="Distinct students who ever opened a notebook of the course.")
    total_notebooks: int = Field(description="Distinct notebooks ever opened.")
    progress: ProgressMap
    launches: list[LaunchDurations] = Field(description="Durations by kind of launch over the window.")
    failures: list[ReasonCount] = Field(description="Failures by reason over the window, most first.")
    excluded_students: int = Field(description="Student ids left out (the staff's, and those asked).")


def course_statistics(
    engine: Engine,
    course: str,
    *,
    exclude_students: frozenset[str] = frozenset(),
    days: int = 30,
    now: float | None = None,
) -> CourseStatistics:
    """The figures of ``course`` over the last ``days`` UTC days (today included; at most :data:`MAX_DAYS`).

    Students in the ``staff`` table (their ``student_id``) and in ``exclude_students`` are left out.
    ``now``: seconds since the epoch (default: the clock's).
    """
    started = time.monotonic()
    now = time.time() if now is None else now
    days = max(1, min(days, MAX_DAYS))
    today = int(now // DAY)
    first = today - days + 1
    since, until = first * DAY, (today + 1) * DAY
    e = events_table.c
    with engine.connect() as connection:
        excluded = frozenset(exclude_students) | {
            sid for (sid,) in connection.execute(select(staff.c.student_id).where(staff.c.student_id.is_not(None)))
        }
        day = _day(e.time, connection.dialect.name)
        ours = and_(e.course == course, e.student_id.is_not(None), e.student_id.not_in(excluded))
        opens = and_(ours, e.kind == EventKind.OPEN.value)
        in_window = and_(e.time >= since, e.time < until)
        per_day = connection.execute(
            select(day, func.count(e.student_id.distinct()), func.count(e.notebook.distinct()), func.count())
            .where(opens, in_window)
            .group_by(day)
        ).all()
        firsts = select(e.student_id, func.min(e.time).label("first")).where(opens, e.time < until)
        first_seen = firsts.group_by(e.student_id).subquery()
        first_day = _day(first_seen.c.first, connection.dialect.name)
        newcomers: dict[int, int] = dict(connection.execute(select(first_day, func.count()).group_by(first_day)).all())
        failed = or_(e.student_id.is_(None), e.student_id.not_in(excluded))
        failures = and_(e.course == course, e.kind == EventKind.FAILURE.value, failed, in_window)
        failures_per_day: dict[int, int] = dict(
            connection.execute(select(day, func.count()).where(failures).group_by(day)).all()
        )
        reasons = connection.execute(
            select(func.coalesce(e.reason, "unknown"), func.count()).where(failures).group_by(e.reason)
        ).all()
        timed = and_(
            ours, in_window, e.duration.is_not(None), e.kind.in_([EventKind.OPEN.value, EventKind.READY.value])
        )
        durations = connection.execute(
            select(day, e.kind, e.action, e.duration).where(timed).limit(MAX_DURATIONS)
        ).all()
        total_notebooks = connection.execute(select(func.count(e.notebook.distinct())).where(opens)).scalar_one()
        progress = _progress(connection, opens)
    log.info(
        "statistics course=%s days=%d students=%d durations=%d excluded=%d in %.3fs",
        course,
        days,
        sum(newcomers.values()),
        len(durations),
        len(excluded),
        time.monotonic() - started,
    )
    return CourseStatistics(
        course=course,
        generated=now,
        first_day=_date(first),
        last_day=_date(today),
        days=_days(first, today, per_day, newcomers, failures_per_day, durations),
        total_students=sum(newcomers.values()),
        total_notebooks=total_notebooks,
        progress=progress,
        launches=_launches(durations),
        failures=sorted((ReasonCount(reason=r, count=n) for r, n in reasons), key=lambda c: (-c.count, c.reason)),
        excluded_students=len(excluded),
    )


def distribution(values: Iterable[float]) -> Distribution:
    """The count, median, 90th percentile and maximum of ``values`` (pure)."""
    ordered = sorted(values)
    if not ordered:
        return Distribution()
    p90 = ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]  # nearest rank
    return Distribution(count=len(ordered), median=statistics.median(ordered), p90=p90, max=ordered[-1])


def notebook_order(name: str) -> list[Any]:
    """A sort key for notebook paths: numbers compared as numbers (``w2/10-x`` after ``w2/9-y``)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.casefold()) for part in re.split(r"(\d+)", name)]


def _day(column: Any, dialect: str) -> ColumnElement[Any]:
    """The UTC day number (days since the epoch) of an epoch-seconds ``column``, in SQL."""
    if dialect == "sqlite":
        return cast(column / DAY, Integer)  # truncation: the floor, for times after 1970
    return cast(func.floor(column / DAY), Integer)


def _date(day: int) -> date:
    return datetime.fromtimestamp(day * DAY, UTC).date()


def _days(
    first: int,
    last: int,
    per_day: Iterable[Any],
    newcomers: dict[int, int],
    failures: dict[int, int],
    durations: Iterable[Any],
) -> list[DayActivity]:
    counts = {int(d): (students, notebooks, opens) for d, students, notebooks, opens in per_day}
    timings: dict[tuple[int, str], list[float]] = defaultdict(list)
    for d, kind, _action, duration in durations:
        timings[int(d), kind].append(duration)
    cumulative = sum(n for d, n in newcomers.items() if int(d) < first)
    out = []
    for d in range(first, last + 1):
        cumulative += newcomers.get(d, 0)
        students, notebooks, opens = counts.get(d, (0, 0, 0))
        out.append(
            DayActivity(
                day=_date(d),
                students=students,
                notebooks=notebooks,
                opens=opens,
                cumulative_students=cumulative,
                failures=failures.get(d, 0),
                open_durations=distribution(timings.get((d, EventKind.OPEN.value), [])),
                ready_durations=distribution(timings.get((d, EventKind.READY.value), [])),
            )
        )
    return out


def _launches(durations: Iterable[Any]) -> list[LaunchDurations]:
    by_action: dict[str, list[float]] = defaultdict(list)
    for _day_number, kind, action, duration in durations:
        by_action["ready" if kind == EventKind.READY.value else (action or "unknown")].append(duration)
    order = ["create", "start", "replace", "reuse", "ready"]
    ranked = sorted(by_action, key=lambda a: (order.index(a) if a in order else len(order), a))
    return [LaunchDurations(action=a, durations=distribution(by_action[a])) for a in ranked]


def _progress(connection: Any, opens: ColumnElement[bool]) -> ProgressMap:
    e = events_table.c
    reached = func.count(e.notebook.distinct())
    students_total = connection.execute(select(func.count(e.student_id.distinct())).where(opens)).scalar_one()
    top = connection.execute(
        select(e.student_id, reached)
        .where(opens)
        .group_by(e.student_id)
        .order_by(reached.desc(), e.student_id)
        .limit(MAX_STUDENTS)
    ).all()
    students = [sid for sid, _ in top]
    pairs = connection.execute(
        select(e.student_id, e.notebook, func.count())
        .where(opens, e.notebook.is_not(None), e.student_id.in_(students))
        .group_by(e.student_id, e.notebook)
    ).all()
    all_notebooks = [
        nb
        for (nb,) in connection.execute(
            select(e.notebook).where(opens, e.notebook.is_not(None)).distinct().limit(10_000)
        )
    ]
    notebooks = sorted(all_notebooks, key=notebook_order)[:MAX_NOTEBOOKS]
    column = {nb: j for j, nb in enumerate(notebooks)}
    row = {sid: i for i, sid in enumerate(students)}
    opened = [[0] * len(notebooks) for _ in students]
    for sid, nb, count in pairs:
        if nb in column:
            opened[row[sid]][column[nb]] = count
    return ProgressMap(
        students=students,
        notebooks=notebooks,
        opened=opened,
        more_students=students_total - len(students),
        more_notebooks=len(all_notebooks) - len(notebooks),
    )
