"""`nbh events`, `nbh stats`, `nbh students`: the host's events, a course's figures, the students the events know,
for a shell on the host.

    nbh events [--course C] [--student S] [--kind K] [--since ISO] [--until ISO] [--limit N] [--json]
    nbh stats COURSE [--days N] [--json]
    nbh students [--course C] [--search S] [--limit N] [--offset N] [--json]

As root, each first becomes the app's user (the database is the app's: see :mod:`.appdb`), then copies the journal's
new lines into the database (:func:`nbhosting_core.eventstore.ingest`), then answers from the database.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from nbhosting_core.coursestats import Distribution
from nbhosting_core.events import EventJournal, EventKind
from nbhosting_core.eventstore import StoredEvent, course_statistics, events, ingest, students
from nbhosting_core.settings import Settings

from .appdb import app_database, become_app_user

log = logging.getLogger(__name__)
#: ingest calls at most before answering (each reads at most INGEST_LINES lines)
MAX_INGEST_CALLS = 100


def open_events(settings: Settings) -> Engine:
    """The app's database (as its user, from a root shell), with the journal's new lines ingested first."""
    become_app_user(settings)
    engine = app_database(settings)
    journal = EventJournal(settings.events_dir)
    started, added = time.monotonic(), 0
    for _ in range(MAX_INGEST_CALLS):
        step = ingest(engine, journal)
        added += step
        if not step:
            break
    log.info("events: %d new events ingested in %.3fs", added, time.monotonic() - started)
    return engine


def cmd_events(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh events`: the events, newest first."""
    engine = open_events(settings)
    page = events(
        engine,
        course=args.course,
        student_id=args.student,
        kind=EventKind(args.kind) if args.kind else None,
        since=args.since,
        until=args.until,
        limit=args.limit,
        before_id=args.before,
    )
    if args.json:
        print(json.dumps(page.model_dump(mode="json"), indent=2))
        return 0
    print(events_table(page.events))
    if page.next_before_id is not None:
        print(f"(more: --before {page.next_before_id})")
    elif not page.events:
        print("no event")
    return 0


def events_table(found: Sequence[StoredEvent]) -> str:
    """Events as a table, one a line."""
    rows = [("TIME (UTC)", "KIND", "COURSE", "STUDENT", "NOTEBOOK", "WHAT", "TOOK", "BY")]
    for e in found:
        what = e.action or e.reason or ""
        if e.kind is EventKind.SAMPLE:
            what = " ".join(f"{k}={v}" for k, v in e.data.items() if k in ("running", "kernels", "load1"))
        rows.append(
            (
                utc_moment(e.time),
                e.kind.value,
                e.course or "",
                e.student_id or "",
                e.notebook or "",
                what,
                _seconds(e.duration),
                e.actor or "",
            )
        )
    return table(rows)


def cmd_students(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh students`: the students the events know, most recently seen first."""
    page = students(open_events(settings), course=args.course, search=args.search, limit=args.limit, offset=args.offset)
    if args.json:
        print(json.dumps(page.model_dump(mode="json"), indent=2))
        return 0
    rows = [("STUDENT", "COURSES", "OPENS", "FIRST SEEN (UTC)", "LAST SEEN (UTC)")]
    for st in page.students:
        rows.append(
            (st.student_id, ",".join(st.courses), str(st.opens), utc_moment(st.first_seen), utc_moment(st.last_seen))
        )
    print(table(rows))
    shown = args.offset + len(page.students)
    if shown < page.total:
        print(f"({page.total - shown} more: --offset {shown})")
    elif not page.students:
        print("no student")
    return 0


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh stats COURSE`: a course's figures per day, its launches, failures and progress."""
    stats = course_statistics(open_events(settings), args.course, days=args.days)
    if args.json:
        print(json.dumps(stats.model_dump(mode="json"), indent=2))
        return 0
    print(
        f"course {stats.course}: {stats.first_day} to {stats.last_day} (UTC); {stats.total_students} students and "
        f"{stats.total_notebooks} notebooks ever; {stats.excluded_students} staff student ids excluded\n"
    )
    rows = [("DAY", "STUDENTS", "NOTEBOOKS", "OPENS", "CUMULATIVE", "FAILURES", "START MEDIAN", "START P90")]
    for d in stats.days:
        rows.append(
            (
                d.day.isoformat(),
                str(d.students),
                str(d.notebooks),
                str(d.opens),
                str(d.cumulative_students),
                str(d.failures),
                _seconds(d.ready_durations.median),
                _seconds(d.ready_durations.p90),
            )
        )
    print(table(rows))
    if stats.launches:
        print()
        header = ("LAUNCH", "COUNT", "MEDIAN", "P90", "LONGEST")
        print(table([header] + [_launch(launch.action, launch.durations) for launch in stats.launches]))
    if stats.failures:
        print("\nfailures: " + ", ".join(f"{f.reason} {f.count}" for f in stats.failures))
    progress = stats.progress
    if progress.students:
        reached = [(sid, sum(1 for n in row if n)) for sid, row in zip(progress.students, progress.opened, strict=True)]
        top = ", ".join(f"{sid} {n}/{len(progress.notebooks)}" for sid, n in reached[:10])
        more = len(progress.students) + progress.more_students - min(10, len(reached))
        print(f"\nmost notebooks opened: {top}" + (f" (and {more} more students)" if more > 0 else ""))
    return 0


def register(sub: Any) -> None:
    """Add `nbh events`, `nbh stats` and `nbh students` to the `nbh` parser's subcommands ``sub``."""
    c = sub.add_parser("events", help="the host's events, newest first", description=cmd_events.__doc__)
    c.set_defaults(func=cmd_events)
    c.add_argument("--course")
    c.add_argument("--student", help="a student id")
    c.add_argument("--kind", choices=[k.value for k in EventKind])
    c.add_argument("--since", type=_when, help="ISO date or time (UTC unless it says)")
    c.add_argument("--until", type=_when, help="ISO date or time (UTC unless it says); excluded")
    c.add_argument("--limit", type=int, default=50, help="at most this many (default 50, at most 1000)")
    c.add_argument("--before", type=int, help="the page after this event id (what the last page printed)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c = sub.add_parser("stats", help="a course's statistics", description=cmd_stats.__doc__)
    c.set_defaults(func=cmd_stats)
    c.add_argument("course")
    c.add_argument("--days", type=int, default=30, help="UTC days back, today included (default 30, at most 366)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c = sub.add_parser("students", help="the students the events know", description=cmd_students.__doc__)
    c.set_defaults(func=cmd_students)
    c.add_argument("--course", help="seen in this course")
    c.add_argument("--search", help="part of the student id (text, not a pattern)")
    c.add_argument("--limit", type=int, default=50, help="at most this many (default 50, at most 1000)")
    c.add_argument("--offset", type=int, default=0, help="skip that many first")
    c.add_argument("--json", action="store_true", help="print JSON")


def _when(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _launch(action: str, d: Distribution) -> tuple[str, ...]:
    name = "start to answer" if action == "ready" else f"open ({action})"
    return (name, str(d.count), _seconds(d.median), _seconds(d.p90), _seconds(d.max))


def utc_moment(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
