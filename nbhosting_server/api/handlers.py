"""What each API operation does once its caller is let in and its input read (see :mod:`.table`).

A handler is a plain function of a :class:`Call` (run in a thread: it may block on the helper or the database),
answering a pydantic model. The checks made before it (who, which course, which input) are the dispatcher's
(:mod:`.dispatch`); a handler narrows what it lists to ``call.visible`` (None: every course).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine

from nbhosting_core import eventstore
from nbhosting_core.clock import Clock
from nbhosting_core.coursestats import CourseStatistics, course_statistics
from nbhosting_core.errors import RuntimeUnavailable
from nbhosting_core.events import EventJournal
from nbhosting_core.models import Server, ServerView, StudentView
from nbhosting_core.roles import TEACHER_PERMISSIONS, Permission, Principal, Role, allowed
from nbhosting_core.serveradmin import ServerAdmin

from ..admin import AdminRefused
from . import models as m

log = logging.getLogger(__name__)
#: ingest calls one request makes at most before it answers (each reads at most INGEST_LINES lines)
MAX_INGEST_CALLS = 5
DAY = 86400.0


class Unavailable(RuntimeUnavailable):
    """What the API needs is not there: no database, or no way to the host's servers (HTTP 503, as the
    container engine unreachable)."""

    reason = "unavailable"


@dataclass(frozen=True)
class Services:
    """What handlers reach: the host's servers, the app's database and the events' journal, the clock."""

    server_admin: ServerAdmin | None
    engine: Engine | None
    journal: EventJournal | None
    clock: Clock

    def admin(self) -> ServerAdmin:
        if self.server_admin is None:
            raise Unavailable("The host's servers cannot be reached from this app.")
        return self.server_admin

    def events(self) -> Engine:
        """The database, with the journal's new events ingested first (bounded)."""
        if self.engine is None:
            raise Unavailable("This app has no database.")
        if self.journal is not None:
            started, added = time.monotonic(), 0
            for _ in range(MAX_INGEST_CALLS):
                step = eventstore.ingest(self.engine, self.journal)
                added += step
                if step < eventstore.INGEST_LINES:
                    break
            if added:
                log.info("api: %d new events ingested in %.3fs", added, time.monotonic() - started)
        return self.engine


@dataclass(frozen=True)
class Call:
    """One let-in call: who, the path's course and student id (validated), its query and body (parsed), the
    courses a listing may show (None: every one), and the services."""

    principal: Principal
    course: str | None
    student_id: str | None
    query: Any
    body: BaseModel | None
    visible: frozenset[str] | None
    services: Services


def _shown(call: Call, course: str) -> bool:
    return call.visible is None or course in call.visible


def me(call: Call) -> m.Me:
    p = call.principal
    return m.Me(
        username=p.username,
        role=p.role,
        via=p.via,
        courses=sorted(p.courses),
        student_id=p.student_id,
        host_permissions=[perm for perm in Permission if allowed(p, perm)],
        course_permissions=sorted(Permission if p.role is Role.ADMIN else TEACHER_PERMISSIONS),
    )


def courses(call: Call) -> m.CourseList:
    views = call.services.admin().list_courses(archived=call.query.archived)
    return m.CourseList(courses=[v for v in views if _shown(call, v.course.name)])


def course(call: Call) -> Any:
    assert call.course is not None
    return call.services.admin().course_view(call.course)


def servers(call: Call) -> m.ServerList:
    views = call.services.admin().list_servers(course=call.query.course, details=call.query.details)
    return m.ServerList(servers=[v for v in views if _shown(call, v.server.course)])


def _server_of(call: Call) -> tuple[str, str]:
    assert call.course is not None and call.student_id is not None
    return call.course, call.student_id


def server(call: Call) -> ServerView:
    return call.services.admin().server_view(*_server_of(call))


def stop(call: Call) -> Server:
    course_name, student_id = _server_of(call)
    stopped = call.services.admin().stop_server(course_name, student_id, by=call.principal.username)
    log.info("api: %s stopped the server of %s in %s", call.principal.username, student_id[:40], course_name)
    return stopped


def restart(call: Call) -> Server:
    course_name, student_id = _server_of(call)
    restarted = call.services.admin().restart_server(course_name, student_id, by=call.principal.username)
    log.info("api: %s restarted the server of %s in %s", call.principal.username, student_id[:40], course_name)
    return restarted


def logs(call: Call) -> m.ServerLogs:
    course_name, student_id = _server_of(call)
    text = call.services.admin().server_logs(course_name, student_id, lines=call.query.lines)
    return m.ServerLogs(course=course_name, student_id=student_id, lines=call.query.lines, text=text)


def students(call: Call) -> eventstore.StudentPage:
    q = call.query
    return eventstore.students(
        call.services.events(), course=q.course, courses=call.visible, search=q.search, limit=q.limit, offset=q.offset
    )


def student(call: Call) -> StudentView:
    assert call.student_id is not None
    if call.visible is not None:  # a teacher: a student seen in one of their courses only
        seen = eventstore.events(call.services.events(), student_id=call.student_id, courses=call.visible, limit=1)
        if not seen.events:
            log.info("api: %s asked for %s, never seen in their courses", call.principal.username, call.student_id)
            raise AdminRefused(403, "This student was never seen in your courses.")
    view = call.services.admin().student_view(call.student_id, course=call.query.course)
    return view.model_copy(
        update={
            "workspaces": [w for w in view.workspaces if _shown(call, w.course)],
            "servers": [s for s in view.servers if _shown(call, s.server.course)],
        }
    )


def events(call: Call) -> eventstore.EventPage:
    q = call.query
    return eventstore.events(
        call.services.events(),
        course=q.course,
        courses=call.visible,
        student_id=q.student_id,
        kind=q.kind,
        since=q.since,
        until=q.until,
        limit=q.limit,
        before_id=q.before_id,
    )


def statistics(call: Call) -> CourseStatistics:
    assert call.course is not None
    return course_statistics(call.services.events(), call.course, days=call.query.days, now=call.services.clock())


def samples(call: Call) -> m.SampleList:
    q = call.query
    until = q.until if q.until is not None else call.services.clock()
    since = q.since if q.since is not None else until - DAY
    found = eventstore.host_samples(call.services.events(), since, until, max_points=q.points)
    return m.SampleList(since=since, until=until, samples=found)
