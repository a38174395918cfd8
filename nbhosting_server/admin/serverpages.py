"""The servers' pages: ``/admin/servers`` (running and stopped, with Stop and Restart forms and a link to each
one's log), the actions themselves (POST, CSRF-checked), and ``/admin/servers/{course}/{student}/logs``.

Who sees what: a listing needs VIEW_SERVERS somewhere and shows the servers of the courses where the principal has
it; Stop and Restart need ACT_ON_SERVERS on the server's course (a button only where it is allowed); a log needs
VIEW_LOGS on its course.

A server's memory and its own activity take one bounded probe each (through the privileged helper, in production):
the listing asks for them only when at most :data:`DETAILS_LIMIT` of the servers it shows are running, or when
``?details=1`` says so (``?details=0``: never); otherwise it says so, with a link to ask, and its idle times count from
the last request through nbhosting's proxy (or the server's start). A teacher's probes are of their own courses only.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from nbhosting_core.models import ServerState, ServerView
from nbhosting_core.roles import Permission, Principal, allowed, visible_courses
from nbhosting_core.serveradmin import DEFAULT_LOG_LINES, MAX_LOG_LINES

from .auth import csrf_token, require, require_anywhere
from .csrf import FIELD
from .formats import duration, esc, query, segment, size
from .forms import form_of, safe_next
from .layout import redirect_with_flash, staff_page
from .refusals import AdminRefused
from .sources import call, server_admin_of

SERVERS = "/admin/servers"
#: the most running servers a listing probes for their memory and activity without ``?details=1``
DETAILS_LIMIT = 50


def server_path(course: str, student_id: str) -> str:
    """The path of a server's pages and actions (``/admin/servers/<course>/<student>``), each part encoded."""
    return f"{SERVERS}/{segment(course)}/{segment(student_id)}"


def action_form(request: Request, action: str, label: str, course: str, student_id: str, back: str, css: str) -> str:
    """A POST form (with the session's CSRF token) that asks ``action`` of a server, then comes back to ``back``."""
    return (
        f'<form method="post" action="{esc(server_path(course, student_id))}/{action}">'
        f'<input type="hidden" name="{FIELD}" value="{esc(csrf_token(request))}">'
        f'<input type="hidden" name="back" value="{esc(back)}">'
        f'<button type="submit" class="{css}" data-action="{action}">{esc(label)}</button></form>'
    )


def servers_table(request: Request, principal: Principal, views: list[ServerView], *, back: str) -> str:
    """The table of ``views`` (those of the courses ``principal`` may see them in), with the actions allowed."""
    if not views:
        return '<p class="muted">No server.</p>'
    rows = []
    for view in views:
        s = view.server
        memory = view.usage.memory_bytes if view.usage is not None else None
        old = ' <span class="old" title="new servers of this course get a newer image">old image</span>'
        actions = []
        if allowed(principal, Permission.ACT_ON_SERVERS, s.course):
            if s.state is ServerState.RUNNING:
                actions.append(action_form(request, "stop", "Stop", s.course, s.student_id, back, "danger"))
            actions.append(action_form(request, "restart", "Restart", s.course, s.student_id, back, "quiet"))
        if allowed(principal, Permission.VIEW_LOGS, s.course):
            actions.append(f'<a href="{esc(server_path(s.course, s.student_id))}/logs">Logs</a>')
        student = (
            f'<a href="/admin/students/{esc(segment(s.student_id))}">{esc(s.student_id)}</a>'
            if allowed(principal, Permission.VIEW_STUDENTS, s.course)
            else esc(s.student_id)
        )
        rows.append(
            f'<tr data-student="{esc(s.student_id)}" data-course="{esc(s.course)}">'
            f"<td>{student}</td>"
            f'<td><a href="/admin/courses/{esc(segment(s.course))}">{esc(s.course)}</a></td>'
            f'<td><span class="state {esc(s.state.value)}">{esc(s.state.value)}</span></td>'
            f'<td class="num">{duration(view.age_seconds)}</td>'
            f'<td class="num">{duration(view.idle_seconds)}</td>'
            f'<td class="num">{size(memory)}</td>'
            f"<td>{esc(view.image_label or s.image)}{old if view.old_image else ''}</td>"
            f'<td class="actions">{"".join(actions)}</td></tr>'
        )
    return (
        '<table class="list servers"><thead><tr><th>Student</th><th>Course</th><th>State</th>'
        '<th class="num">Age</th><th class="num">Idle</th><th class="num">Memory</th><th>Image</th><th></th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _order(view: ServerView) -> tuple[bool, str, str]:
    return view.server.state is not ServerState.RUNNING, view.server.course, view.server.student_id


def _details_asked(request: Request) -> bool | None:
    """``?details=``: 1 (ask every server shown), 0 (ask none), absent (as many as are running decide)."""
    text = request.query_params.get("details") or None
    if text not in (None, "0", "1"):
        raise AdminRefused(400, "details is 0 or 1.")
    return None if text is None else text == "1"


async def servers(request: Request) -> Response:
    """GET /admin/servers?course=&details=: the servers (of ``course``), running first; their memory and activity
    when asked for (``details=1``) or when at most :data:`DETAILS_LIMIT` of them run."""
    course = request.query_params.get("course") or None
    if course is not None:
        principal = await require(request, Permission.VIEW_SERVERS, course)
    else:
        principal = await require_anywhere(request, Permission.VIEW_SERVERS)
    asked = _details_asked(request)
    admin = server_admin_of(request)
    views = await call(
        request, principal, f"list the servers of {course or 'every course'}", lambda: admin.list_servers(course=course)
    )
    shown = [v for v in views if allowed(principal, Permission.VIEW_SERVERS, v.server.course)]
    running = sum(1 for v in shown if v.server.state is ServerState.RUNNING)
    details = asked if asked is not None else running <= DETAILS_LIMIT
    if details and running:
        # one probe per server of what is shown only: a teacher's courses, not the whole host's
        scopes = (
            [course]
            if course is not None or allowed(principal, Permission.VIEW_SERVERS)
            else sorted({v.server.course for v in shown if v.server.state is ServerState.RUNNING})
        )
        detailed: list[ServerView] = []
        for scope in scopes:
            detailed += await call(
                request,
                principal,
                f"ask the servers of {scope or 'every course'} for their memory and activity",
                partial(admin.list_servers, course=scope, details=True),
            )
        probed = {(v.server.course, v.server.student_id) for v in detailed}
        shown = [v for v in shown if (v.server.course, v.server.student_id) not in probed] + [
            v for v in detailed if allowed(principal, Permission.VIEW_SERVERS, v.server.course)
        ]
    shown.sort(key=_order)
    courses = await call(request, principal, "list courses", lambda: [v.course.name for v in admin.list_courses()])
    choices = visible_courses(principal, Permission.VIEW_SERVERS, sorted(set(courses) | principal.courses))
    options = "".join(
        f'<option value="{esc(c)}"{" selected" if c == course else ""}>{esc(c)}</option>' for c in choices
    )
    running = sum(1 for v in shown if v.server.state is ServerState.RUNNING)
    back = SERVERS + query(course=course, details=None if asked is None else int(asked))
    note = ""
    if not details and running:
        why = "you asked not to" if asked is False else f"more than {DETAILS_LIMIT} are running"
        note = (
            f'<p class="note">Memory and each server\'s own activity are not asked for ({why}: one probe per server); '
            "idle times count from the last request through nbhosting's proxy. "
            f'<a href="{esc(SERVERS + query(course=course, details=1))}" data-details="1">Show memory and idle time</a>'
            f" (slower: {running} probes).</p>"
        )
    elif asked and running > DETAILS_LIMIT:
        note = (
            f'<p class="note"><a href="{esc(SERVERS + query(course=course))}" data-details="0">Without memory and idle '
            "time</a> (faster).</p>"
        )
    body = (
        f"<h1>Servers{' of <code>' + esc(course) + '</code>' if course else ''}</h1>"
        f'<form class="filters" method="get" action="{SERVERS}"><label>Course<select name="course">'
        f'<option value="">every course you may see</option>{options}</select></label>'
        '<button type="submit">Show</button></form>'
        f'<p class="muted">{running} running, {len(shown) - running} stopped or broken.</p>'
        + note
        + servers_table(request, principal, shown, back=back)
    )
    return staff_page(request, principal, "Servers", body)


async def _act(request: Request, action: str) -> Response:
    course, student_id = request.path_params["course"], request.path_params["student"]
    principal = await require(request, Permission.ACT_ON_SERVERS, course)  # the CSRF token and the origin too
    form = await form_of(request)
    back = safe_next(form.get("back") or SERVERS + query(course=course))
    admin = server_admin_of(request)
    what = f"{action} the server of {student_id!r} in {course}"
    try:
        if action == "stop":
            await call(request, principal, what, lambda: admin.stop_server(course, student_id, by=principal.username))
        else:
            await call(
                request, principal, what, lambda: admin.restart_server(course, student_id, by=principal.username)
            )
    except AdminRefused as exc:
        return redirect_with_flash(
            request, back, f"Could not {action} the server of {student_id}: {exc.message}", error=True
        )
    done = "Stopped" if action == "stop" else "Restarted"
    return redirect_with_flash(request, back, f"{done} the server of {student_id} in {course}.")


async def stop(request: Request) -> Response:
    """POST /admin/servers/{course}/{student}/stop (a form with the CSRF token): stop it, back with a message."""
    return await _act(request, "stop")


async def restart(request: Request) -> Response:
    """POST /admin/servers/{course}/{student}/restart (a form with the CSRF token): restart it, back with a
    message."""
    return await _act(request, "restart")


async def logs(request: Request) -> Response:
    """GET /admin/servers/{course}/{student}/logs?lines=: the end of the server's log, escaped in a ``<pre>``."""
    course, student_id = request.path_params["course"], request.path_params["student"]
    principal = await require(request, Permission.VIEW_LOGS, course)
    text = request.query_params.get("lines", str(DEFAULT_LOG_LINES))
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LOG_LINES:
        raise AdminRefused(400, f"A log's tail is 1 to {MAX_LOG_LINES} lines.")
    lines = int(text)
    admin = server_admin_of(request)
    log_text = await call(
        request,
        principal,
        f"read {lines} lines of the log of {student_id!r} in {course}",
        lambda: admin.server_logs(course, student_id, lines=lines),
    )
    more = min(MAX_LOG_LINES, lines * 5)
    body = (
        f"<h1>Log of <code>{esc(student_id)}</code> in <code>{esc(course)}</code></h1>"
        f'<p class="muted">The last {lines} lines (at most). '
        f'<a href="{esc(server_path(course, student_id))}/logs{query(lines=more)}">Show {more}</a> · '
        f'<a href="{SERVERS}{esc(query(course=course))}">Servers of {esc(course)}</a></p>'
        f'<pre class="log">{esc(log_text) if log_text else "(empty)"}</pre>'
    )
    return staff_page(request, principal, f"Log of {student_id}", body)
