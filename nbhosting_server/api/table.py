"""The API's one table of operations: each one's method, path, summary, who may call it, what it reads and answers.

The Starlette routes (:func:`nbhosting_server.api.routes`), the OpenAPI document (:mod:`.openapi`) and the tests
that walk every operation as every role are all made from :data:`OPERATIONS`: they cannot drift apart.

Who may call an operation is its :class:`Scope` and its permission:

* ``PUBLIC``: anybody (the OpenAPI document);
* ``PRINCIPAL``: any staff member;
* ``HOST``: the permission on the whole host (admins);
* ``COURSE``: the permission on the path's ``{course}``;
* ``LISTING``: the permission on the query's ``course`` when given, else on at least one course, the answer
  narrowed to the courses the principal may see (:func:`nbhosting_core.roles.visible_courses`);
* ``STUDENT``: as ``LISTING``, and a teacher only of a student seen in one of their courses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from nbhosting_core.coursemodels import CourseView
from nbhosting_core.coursestats import CourseStatistics
from nbhosting_core.eventstore import EventPage, StudentPage
from nbhosting_core.models import Server, ServerView, StudentView
from nbhosting_core.roles import Permission

from . import handlers as h
from . import models as m

PREFIX = "/api/v1"


class Scope(StrEnum):
    """Where an operation's permission is asked (see the module's docstring)."""

    PUBLIC = "public"
    PRINCIPAL = "principal"
    HOST = "host"
    COURSE = "course"
    LISTING = "listing"
    STUDENT = "student"


@dataclass(frozen=True)
class Operation:
    """One API operation. ``answer`` None: a free-form JSON object. ``errors``: the statuses it may answer besides
    200 and those every operation may (400, 401, 403, 404, 405, 413, 415, 503)."""

    name: str
    method: str
    path: str
    summary: str
    scope: Scope
    permission: Permission | None
    handler: Callable[[h.Call], Any]
    answer: type[BaseModel] | None
    query: type[m.Query] = m.NoQuery
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()

    @property
    def path_params(self) -> list[str]:
        """The names of the path's parameters, in order."""
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


def _openapi(call: h.Call) -> dict[str, Any]:
    from .openapi import document

    return document()


S = "/servers/{course}/{student_id}"

OPERATIONS: list[Operation] = [
    Operation(
        "openapi",
        "GET",
        "/openapi.json",
        "This document (OpenAPI 3.1), for anybody",
        Scope.PUBLIC,
        None,
        _openapi,
        None,
    ),
    Operation("me", "GET", "/me", "Who the request acts for, and what they may do", Scope.PRINCIPAL, None, h.me, m.Me),
    Operation(
        "list_courses",
        "GET",
        "/courses",
        "The courses (a teacher's: theirs)",
        Scope.LISTING,
        Permission.VIEW_COURSES,
        h.courses,
        m.CourseList,
        query=m.CoursesQuery,
    ),
    Operation(
        "show_course",
        "GET",
        "/courses/{course}",
        "One course, with git's log of its last pull",
        Scope.COURSE,
        Permission.VIEW_COURSES,
        h.course,
        CourseView,
        errors=(404,),
    ),
    Operation(
        "course_statistics",
        "GET",
        "/courses/{course}/statistics",
        "A course's figures per UTC day, its progress map, launch durations and failures (staff excluded)",
        Scope.COURSE,
        Permission.VIEW_STATISTICS,
        h.statistics,
        CourseStatistics,
        query=m.StatisticsQuery,
    ),
    Operation(
        "list_servers",
        "GET",
        "/servers",
        "The students' servers (a teacher's: of their courses)",
        Scope.LISTING,
        Permission.VIEW_SERVERS,
        h.servers,
        m.ServerList,
        query=m.ServersQuery,
    ),
    Operation(
        "show_server",
        "GET",
        S,
        "A student's server in a course, with its activity and usage",
        Scope.COURSE,
        Permission.VIEW_SERVERS,
        h.server,
        ServerView,
        errors=(404,),
    ),
    Operation(
        "stop_server",
        "POST",
        S + "/stop",
        "Stop it: files kept, the student's next launch starts it again",
        Scope.COURSE,
        Permission.ACT_ON_SERVERS,
        h.stop,
        Server,
        body=m.NoBody,
        errors=(404,),
    ),
    Operation(
        "restart_server",
        "POST",
        S + "/restart",
        "Stop it and start it again on its course's image",
        Scope.COURSE,
        Permission.ACT_ON_SERVERS,
        h.restart,
        Server,
        body=m.NoBody,
        errors=(404, 504),
    ),
    Operation(
        "server_logs",
        "GET",
        S + "/logs",
        "The last lines it printed",
        Scope.COURSE,
        Permission.VIEW_LOGS,
        h.logs,
        m.ServerLogs,
        query=m.LogsQuery,
        errors=(404,),
    ),
    Operation(
        "list_students",
        "GET",
        "/students",
        "The students seen in the events, most recent first (a teacher's: seen in their courses)",
        Scope.LISTING,
        Permission.VIEW_STUDENTS,
        h.students,
        StudentPage,
        query=m.StudentsQuery,
    ),
    Operation(
        "show_student",
        "GET",
        "/students/{student_id}",
        "A student's account, workspaces and servers (a teacher's: in their courses)",
        Scope.STUDENT,
        Permission.VIEW_STUDENTS,
        h.student,
        StudentView,
        query=m.StudentQuery,
    ),
    Operation(
        "list_events",
        "GET",
        "/events",
        "The events, newest first, paged with before_id (a teacher's: of their courses)",
        Scope.LISTING,
        Permission.VIEW_EVENTS,
        h.events,
        EventPage,
        query=m.EventsQuery,
    ),
    Operation(
        "host_samples",
        "GET",
        "/host/samples",
        "The host's figures over time: running servers, kernels, memory, load, disk",
        Scope.HOST,
        Permission.MANAGE_HOST,
        h.samples,
        m.SampleList,
        query=m.SamplesQuery,
    ),
]
