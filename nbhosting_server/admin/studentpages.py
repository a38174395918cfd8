"""The students' and events' pages: ``/admin/students?course=&search=`` (the students the events know),
``/admin/students/{student_id}`` (their workspaces, servers and recent events) and ``/admin/events?course=&student=
&kind=`` (newest first, paged).

A teacher sees only their courses' parts: a listing without a course is of every course of theirs where they have
the page's permission (an admin's, of every course), with the course filter to narrow it; a student's page is
refused (403) unless the student was seen in the events of one of those courses, and then shows the workspaces,
servers and events of those courses only (as the API's ``/students/{student_id}``).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from nbhosting_core.events import EventKind
from nbhosting_core.eventstore import StoredEvent, events, students
from nbhosting_core.models import ServerView
from nbhosting_core.roles import Permission, Principal, allowed
from nbhosting_core.serveradmin import ServerAdmin

from .auth import require, require_anywhere
from .coursepages import course_choices
from .formats import esc, moment, query, segment, size
from .layout import staff_page
from .refusals import AdminRefused
from .serverpages import servers_table
from .sources import call, ingested, log, server_admin_of

STUDENTS = "/admin/students"
EVENTS = "/admin/events"
PAGE = 50
#: the longest search string
MAX_SEARCH = 100


def _offset(request: Request) -> int:
    text = request.query_params.get("offset", "0")
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise AdminRefused(400, "An offset is a number.")
    return int(text)


def _mine(principal: Principal, permission: Permission) -> frozenset[str] | None:
    """The courses a listing of ``principal`` may show (None: every one, for who may see the host's)."""
    if allowed(principal, permission):
        return None
    return frozenset(c for c in principal.courses if allowed(principal, permission, c))


async def _scope(
    request: Request, permission: Permission, admin: ServerAdmin
) -> tuple[Principal, str | None, frozenset[str] | None, list[str]]:
    """(principal, the course the listing is of (``?course=`` if allowed there), the courses it may show (None:
    every one), the courses they may choose)."""
    course = request.query_params.get("course") or None
    if course is not None:
        principal = await require(request, permission, course)
    else:
        principal = await require_anywhere(request, permission)
    names = await call(request, principal, "list courses", lambda: [v.course.name for v in admin.list_courses()])
    return principal, course, _mine(principal, permission), course_choices(principal, permission, names)


def _course_select(choices: list[str], course: str | None, everything: bool) -> str:
    every = "every course" if everything else "every course you may see"
    options = "".join(
        f'<option value="{esc(c)}"{" selected" if c == course else ""}>{esc(c)}</option>' for c in choices
    )
    return f'<label>Course<select name="course"><option value="">{every}</option>{options}</select></label>'


def _of(course: str | None, mine: frozenset[str] | None) -> str:
    """What a listing is of, for the log."""
    if course is not None:
        return course
    return "every course" if mine is None else f"the courses {', '.join(sorted(mine)) or '(none)'}"


async def students_page(request: Request) -> Response:
    """GET /admin/students?course=&search=&offset=: the students seen in the events, most recent first."""
    admin = server_admin_of(request)
    principal, course, mine, choices = await _scope(request, Permission.VIEW_STUDENTS, admin)
    search = request.query_params.get("search", "")[:MAX_SEARCH] or None
    offset = _offset(request)
    engine = await ingested(request, principal)
    page = await call(
        request,
        principal,
        f"list the students of {_of(course, mine)}",
        lambda: students(engine, course=course, courses=mine, search=search, limit=PAGE, offset=offset),
    )
    rows = "".join(
        f'<tr data-student="{esc(s.student_id)}"><td><a href="{STUDENTS}/{esc(segment(s.student_id))}">'
        f"{esc(s.student_id)}</a></td>"
        f"<td>{esc(', '.join(c for c in s.courses if allowed(principal, Permission.VIEW_STUDENTS, c)))}</td>"
        f'<td>{moment(s.first_seen)}</td><td>{moment(s.last_seen)}</td><td class="num">{s.opens}</td></tr>'
        for s in page.students
    )
    table = (
        '<table class="list students"><thead><tr><th>Student</th><th>Courses</th><th>First seen</th><th>Last seen</th>'
        f'<th class="num">Opens</th></tr></thead><tbody>{rows}</tbody></table>'
        if page.students
        else '<p class="muted">No student.</p>'
    )
    pager = []
    if offset > 0:
        pager.append(
            f'<a href="{esc(STUDENTS + query(course=course, search=search, offset=max(0, offset - PAGE)))}">Newer</a>'
        )
    if offset + PAGE < page.total:
        pager.append(f'<a href="{esc(STUDENTS + query(course=course, search=search, offset=offset + PAGE))}">Older</a>')
    body = (
        "<h1>Students</h1>"
        f'<form class="filters" method="get" action="{STUDENTS}">'
        f"{_course_select(choices, course, allowed(principal, Permission.VIEW_STUDENTS))}"
        f'<label>Id contains<input type="search" name="search" maxlength="{MAX_SEARCH}" value="{esc(search or "")}">'
        '</label><button type="submit">Show</button></form>'
        f'<p class="muted">{page.total} student{"s" if page.total != 1 else ""} seen in the events.</p>'
        f'{table}<div class="pager">{"".join(pager)}</div>'
    )
    return staff_page(request, principal, "Students", body)


def events_table(shown: Sequence[StoredEvent]) -> str:
    """The table of ``shown`` events, newest first."""
    rows = []
    for e in shown:
        student = f'<a href="{STUDENTS}/{esc(segment(e.student_id))}">{esc(e.student_id)}</a>' if e.student_id else ""
        took = "" if e.duration is None else f"{e.duration:.2f} s"
        rows.append(
            f'<tr data-kind="{esc(e.kind.value)}"><td>{moment(e.time)}</td><td>{esc(e.kind.value)}</td>'
            f"<td>{esc(e.course or '')}</td><td>{student}</td><td>{esc(e.notebook or '')}</td>"
            f'<td>{esc(e.action or e.reason or "")}</td><td class="num">{took}</td><td>{esc(e.actor or "")}</td></tr>'
        )
    if not rows:
        return '<p class="muted">No event.</p>'
    return (
        '<table class="list events"><thead><tr><th>When</th><th>What</th><th>Course</th><th>Student</th>'
        '<th>Notebook</th><th>How, why</th><th class="num">Took</th><th>Who</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


async def student_page(request: Request) -> Response:
    """GET /admin/students/{student}: their workspaces, servers and recent events, in the courses one may see."""
    student_id = request.path_params["student"]
    principal = await require_anywhere(request, Permission.VIEW_STUDENTS)
    mine = _mine(principal, Permission.VIEW_STUDENTS)
    engine = await ingested(request, principal)
    if mine is not None:  # a teacher: a student seen in one of their courses only (as the API)
        seen = await call(
            request,
            principal,
            f"look for {student_id!r} in the events of {_of(None, mine)}",
            lambda: events(engine, student_id=student_id, courses=mine, limit=1),
        )
        if not seen.events:
            log.info("%s asked for %r, never seen in their courses", principal.username, student_id[:40])
            raise AdminRefused(403, "This student was never seen in your courses.")
    admin = server_admin_of(request)
    view = await call(request, principal, f"show student {student_id!r}", lambda: admin.student_view(student_id))
    recent = await call(
        request,
        principal,
        f"read the events of {student_id!r}",
        lambda: events(engine, student_id=student_id, courses=_mine(principal, Permission.VIEW_EVENTS), limit=PAGE),
    )

    def sees(course: str | None, permission: Permission = Permission.VIEW_STUDENTS) -> bool:
        return course is not None and allowed(principal, permission, course)

    workspaces = [w for w in view.workspaces if sees(w.course)]
    servers: list[ServerView] = [v for v in view.servers if sees(v.server.course, Permission.VIEW_SERVERS)]
    shown_events = [e for e in recent.events if sees(e.course, Permission.VIEW_EVENTS)][:PAGE]
    rows = "".join(
        f'<tr data-course="{esc(w.course)}"><td><a href="/admin/courses/{esc(segment(w.course))}">{esc(w.course)}</a>'
        f'</td><td class="num">{w.notebook_count}</td><td>{esc(", ".join(w.notebooks))}'
        f"{' …' if w.notebook_count > len(w.notebooks) else ''}</td>"
        f'<td class="num">{w.files}{"+" if w.truncated else ""}</td><td class="num">{size(w.bytes)}</td>'
        f"<td>{moment(w.modified)}</td></tr>"
        for w in workspaces
    )
    workspaces_html = (
        '<table class="list workspaces"><thead><tr><th>Course</th><th class="num">Notebooks</th><th>Which</th>'
        '<th class="num">Files</th><th class="num">Size</th><th>Last change</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if workspaces
        else '<p class="muted">No workspace in the courses you may see.</p>'
    )
    back = f"{STUDENTS}/{segment(student_id)}"
    account = "no account here" if view.user is None else f"Linux user <code>{esc(view.user)}</code>"
    body = (
        f'<h1>Student <code>{esc(view.student_id)}</code></h1><p class="muted">{account}</p>'
        f"<h2>Workspaces</h2>{workspaces_html}"
        f"<h2>Servers</h2>{servers_table(request, principal, servers, back=back)}"
        f"<h2>Recent events</h2>{events_table(shown_events)}"
        f'<p><a href="{esc(EVENTS + query(student=student_id))}">All their events</a></p>'
    )
    return staff_page(request, principal, f"Student {student_id}", body)


async def events_page(request: Request) -> Response:
    """GET /admin/events?course=&student=&kind=&before=: events, newest first, :data:`PAGE` a page."""
    admin = server_admin_of(request)
    principal, course, mine, choices = await _scope(request, Permission.VIEW_EVENTS, admin)
    student = request.query_params.get("student") or None
    kind_text = request.query_params.get("kind") or None
    before_text = request.query_params.get("before") or None
    try:
        kind = EventKind(kind_text) if kind_text else None
    except ValueError as exc:
        raise AdminRefused(400, f"There is no kind of event {str(kind_text)[:40]!r}.") from exc
    if before_text is not None and (not before_text.isascii() or not before_text.isdigit() or len(before_text) > 18):
        raise AdminRefused(400, "A page's start is an event's number.")
    before = int(before_text) if before_text else None
    engine = await ingested(request, principal)
    page = await call(
        request,
        principal,
        f"read the events of {_of(course, mine)}",
        lambda: events(
            engine, course=course, courses=mine, student_id=student, kind=kind, limit=PAGE, before_id=before
        ),
    )
    kinds = "".join(
        f'<option value="{k.value}"{" selected" if k is kind else ""}>{k.value}</option>' for k in EventKind
    )
    newer = (
        f'<a href="{esc(EVENTS + query(course=course, student=student, kind=kind_text))}">Newest</a>' if before else ""
    )
    older = (
        f'<a href="{esc(EVENTS + query(course=course, student=student, kind=kind_text, before=page.next_before_id))}">'
        "Older</a>"
        if page.next_before_id is not None
        else ""
    )
    body = (
        "<h1>Events</h1>"
        f'<form class="filters" method="get" action="{EVENTS}">'
        f"{_course_select(choices, course, allowed(principal, Permission.VIEW_EVENTS))}"
        f'<label>Student<input type="text" name="student" maxlength="300" value="{esc(student or "")}"></label>'
        f'<label>Kind<select name="kind"><option value="">any</option>{kinds}</select></label>'
        '<button type="submit">Show</button></form>'
        f'{events_table(page.events)}<div class="pager">{newer}{older}</div>'
    )
    return staff_page(request, principal, "Events", body)
