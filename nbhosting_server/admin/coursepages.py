"""The courses' pages: ``/admin/courses`` (each course's state, commit, last pull, running servers) and
``/admin/courses/{course}`` (its details, configuration error, the end of its last pull's log and of its image's
last build's, as the privileged helper reads them, tracks and notebooks, links to its statistics,
servers and students, and the **Try** form).

Trying a notebook (TRY_NOTEBOOK on the course) opens it as the staff member's own student id (``student_id`` of
their staff row; refused with a message without one): the POST (a form with the CSRF token) asks the launcher
itself, as an admin's launch (no platform, no rate limit: the session already says who it is), then sends the
browser to ``/admin/courses/{course}/try?notebook=``, a page that follows the start (it reloads itself every second,
no script) and, once the server answers, goes on to the server's origin with a one-time ticket, as a student's
launch does. No signed launch URL is made: it would need a platform whose name scopes the staff ids, and it would
be a capability in the browser's history; the staff session is the proof, checked on each step.

That last step is a page, not a redirect: the staff pages' ``form-action 'self'`` covers a form's redirects too,
and the server's origin is another one.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from starlette.requests import Request
from starlette.responses import Response

from nbhosting_core import LaunchState, NbhostingError, validate_course, validate_notebook_path
from nbhosting_core.coursemodels import BuildLog, CourseView
from nbhosting_core.models import ServerState
from nbhosting_core.roles import Permission, Principal, allowed, visible_courses
from nbhosting_core.tracks import tracks_of

from .auth import csrf_token, require, require_anywhere
from .csrf import FIELD
from .formats import esc, moment, query, segment, short_commit
from .forms import form_of
from .layout import redirect_with_flash, staff_page
from .refusals import AdminRefused
from .sources import call, launcher_of, server_admin_of, settings_of

COURSES = "/admin/courses"
#: how many of a log's last lines a course's page shows (a pull's log and its image's last build's)
LOG_LINES = 200
CONFIG_ERROR = ' <span class="old">config error</span>'


def course_path(course: str) -> str:
    """``/admin/courses/<course>``, encoded."""
    return f"{COURSES}/{segment(course)}"


def _pull(view: CourseView) -> str:
    pull = view.course.last_pull
    if pull is None:
        return "never pulled" if view.course.remote is not None else "a local folder"
    state = "ok" if pull.ok else "failed"
    return f'<span class="state {state}">{state}</span> {esc(moment(pull.at))}'


def _log_block(summary: str, text: str, *, opened: bool, css: str) -> str:
    """A log's last :data:`LOG_LINES` lines, escaped, in a ``<details>`` (open when something failed) whose
    ``summary`` is HTML already."""
    lines = text.splitlines()
    cut = f" (its last {LOG_LINES} lines of {len(lines)})" if len(lines) > LOG_LINES else ""
    return (
        f'<details class="{css}"{" open" if opened else ""}><summary>{summary}{cut}</summary>'
        f'<pre class="log">{esc(chr(10).join(lines[-LOG_LINES:]))}</pre></details>'
    )


def _build_block(build: BuildLog) -> str:
    """The end of the log of the course image's last build: its outcome, when, and root's file it comes from."""
    summary = (
        f"The last build of its image: {esc(build.outcome)}, {esc(moment(build.at))} <code>{esc(build.path)}</code>"
    )
    return _log_block(summary, build.log, opened=build.outcome == "failed or unfinished", css="build-log")


async def courses(request: Request) -> Response:
    """GET /admin/courses?archived=1: the courses the principal may see, with their running servers."""
    principal = await require_anywhere(request, Permission.VIEW_COURSES)
    archived = request.query_params.get("archived") == "1"
    admin = server_admin_of(request)
    views = await call(request, principal, "list courses", lambda: admin.list_courses(archived=archived))
    views = [v for v in views if allowed(principal, Permission.VIEW_COURSES, v.course.name)]
    servers = await call(request, principal, "list servers", lambda: admin.list_servers())
    running: dict[str, int] = {}
    for view in servers:
        if view.server.state is ServerState.RUNNING:
            running[view.server.course] = running.get(view.server.course, 0) + 1
    rows = "".join(
        f'<tr data-course="{esc(v.course.name)}">'
        f'<td><a href="{esc(course_path(v.course.name))}">{esc(v.course.name)}</a></td>'
        f'<td><span class="state {esc(v.course.state.value)}">{esc(v.course.state.value)}</span>'
        f"{CONFIG_ERROR if v.config_error else ''}</td>"
        f"<td><code>{esc(short_commit(v.commit))}</code></td><td>{_pull(v)}</td>"
        f'<td class="num">{running.get(v.course.name, 0)}</td></tr>'
        for v in sorted(views, key=lambda v: v.course.name)
    )
    table = (
        '<table class="list courses"><thead><tr><th>Course</th><th>State</th><th>Commit</th><th>Last pull</th>'
        f'<th class="num">Running servers</th></tr></thead><tbody>{rows}</tbody></table>'
        if views
        else '<p class="muted">No course you may see.</p>'
    )
    toggle = (
        f'<a href="{COURSES}">Active courses only</a>'
        if archived
        else f'<a href="{COURSES}?archived=1">With archived</a>'
    )
    body = f'<h1>Courses</h1><p class="muted">{toggle}</p>{table}'
    return staff_page(request, principal, "Courses", body)


def try_form(request: Request, principal: Principal, course: str, notebooks: list[str]) -> str:
    """The Try form of a course: a notebook to open as the staff member's own student id (or why not)."""
    if not allowed(principal, Permission.TRY_NOTEBOOK, course):
        return ""
    if principal.student_id is None:
        return (
            '<p class="muted">To try a notebook as a student, your staff account needs a student id '
            "(<code>nbh staff add … --student-id staff:NAME</code>): ask an admin.</p>"
        )
    if not notebooks:
        return '<p class="muted">This course has no notebook to try.</p>'
    options = "".join(f'<option value="{esc(n)}">{esc(n)}</option>' for n in notebooks)
    return (
        f'<form class="filters try" method="post" action="{esc(course_path(course))}/try">'
        f'<input type="hidden" name="{FIELD}" value="{esc(csrf_token(request))}">'
        f'<label>Notebook<select name="notebook">{options}</select></label>'
        f'<button type="submit">Try as <code>{esc(principal.student_id)}</code></button></form>'
    )


async def course(request: Request) -> Response:
    """GET /admin/courses/{course}: one course's details, notebooks, links, and the Try form."""
    name = request.path_params["course"]
    principal = await require(request, Permission.VIEW_COURSES, name)
    admin = server_admin_of(request)
    view = await call(request, principal, f"show course {name}", lambda: admin.course_view(name))
    checkout = settings_of(request).courses_dir / validate_course(name)
    tracks = await call(request, principal, f"read the tracks of {name}", lambda: tracks_of(name, checkout))
    c = view.course
    pull = c.last_pull
    facts = [
        ("State", f'<span class="state {esc(c.state.value)}">{esc(c.state.value)}</span>'),
        ("Remote", esc(c.remote) if c.remote else "none (a local folder)"),
        ("Branch", esc(c.branch or "–")),
        ("Commit", f"<code>{esc(view.commit or '–')}</code>"),
        ("Last pull", _pull(view) + (f" ({pull.seconds:.1f} s)" if pull else "")),
        ("Image", esc(view.config.image or "the default")),
    ]
    parts = [f"<h1>Course <code>{esc(c.name)}</code></h1>"]
    links = []
    for permission, label, href in (
        (Permission.VIEW_STATISTICS, "Statistics", f"{course_path(c.name)}/statistics"),
        (Permission.VIEW_SERVERS, "Servers", "/admin/servers" + query(course=c.name)),
        (Permission.VIEW_STUDENTS, "Students", "/admin/students" + query(course=c.name)),
        (Permission.VIEW_EVENTS, "Events", "/admin/events" + query(course=c.name)),
    ):
        if allowed(principal, permission, c.name):
            links.append(f'<a href="{esc(href)}">{label}</a>')
    parts.append(f'<p class="links">{" · ".join(links)}</p>')
    parts.append('<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
    if view.config_error:
        parts.append(f'<p class="config-error" role="alert">Its configuration is refused: {esc(view.config_error)}</p>')
    if pull is not None and pull.log:
        what = "the last pull" if pull.ok else "the failed pull"
        parts.append(_log_block(esc(f"Git's log of {what}"), pull.log, opened=not pull.ok, css="pull-log"))
    if view.last_build is not None:
        parts.append(_build_block(view.last_build))
    notebooks = [n for t in tracks for s in t.sections for n in s.notebooks]
    parts.append("<h2>Try a notebook</h2>" + try_form(request, principal, c.name, notebooks))
    parts.append("<h2>Notebooks</h2>")
    for track in tracks:
        sections = "".join(
            f"<li>{esc(s.name)}<ul>{''.join(f'<li><code>{esc(n)}</code></li>' for n in s.notebooks)}</ul></li>"
            for s in track.sections
        )
        parts.append(f"<h3>{esc(track.name)}</h3><ul>{sections}</ul>")
    if not tracks:
        parts.append('<p class="muted">No notebook.</p>')
    return staff_page(request, principal, f"Course {c.name}", "".join(parts))


async def _tried(request: Request) -> tuple[Principal, str, str, str]:
    """(principal, course, notebook, their student id) of a Try, each checked."""
    name = request.path_params["course"]
    principal = await require(request, Permission.TRY_NOTEBOOK, name)
    if principal.student_id is None:
        raise AdminRefused(
            403, "Your staff account has no student id to try notebooks as: ask an admin to give it one."
        )
    if request.method == "POST":
        notebook = (await form_of(request)).get("notebook", "")
    else:
        notebook = request.query_params.get("notebook", "")
    try:
        validate_course(name)
        validate_notebook_path(notebook)
    except NbhostingError as exc:
        raise AdminRefused(400, exc.message) from exc
    return principal, name, notebook, principal.student_id


async def try_notebook(request: Request) -> Response:
    """POST /admin/courses/{course}/try (a form: ``notebook``, the CSRF token): open it as the staff member's
    student id, then follow it at GET ``…/try?notebook=``."""
    principal, name, notebook, student_id = await _tried(request)
    launcher = launcher_of(request)
    launch = await call(
        request,
        principal,
        f"try {name}/{notebook} as {student_id!r}",
        lambda: launcher.open_notebook(name, notebook, student_id, requester=None),
    )
    follow = f"{course_path(name)}/try" + query(notebook=notebook)
    if launch.state is LaunchState.READY:
        return redirect_with_flash(request, follow, f"Your server for {notebook} is ready.")
    return redirect_with_flash(request, follow, f"Starting your server for {notebook}…")


async def try_status(request: Request) -> Response:
    """GET /admin/courses/{course}/try?notebook=: the tried notebook's start; once ready, on to it."""
    principal, name, notebook, student_id = await _tried(request)
    launcher = launcher_of(request)
    again = (
        f'<form class="inline" method="post" action="{esc(course_path(name))}/try">'
        f'<input type="hidden" name="{FIELD}" value="{esc(csrf_token(request))}">'
        f'<input type="hidden" name="notebook" value="{esc(notebook)}"><button type="submit">Try again</button></form>'
    )
    title = f"Trying {PurePosixPath(notebook).name}"
    try:
        launch = await call(
            request,
            principal,
            f"follow the try of {name}/{notebook}",
            lambda: launcher.launch_status(name, notebook, student_id),
        )
    except AdminRefused as exc:
        if exc.status == 404:  # nothing starting or running for it (yet, or any more)
            body = f"<h1>{esc(title)}</h1><p>You have no server starting for this notebook.</p>{again}"
            return staff_page(request, principal, title, body)
        body = f"<h1>{esc(title)}</h1><p>{esc(exc.message)}</p>{again}"
        return staff_page(request, principal, title, body, status=exc.status)
    if launch.state is LaunchState.READY:
        target = request.app.state.gate.ticket_url(launch)
        body = (
            f"<h1>{esc(title)}</h1><p>Your server is ready: "
            f'<a id="open" href="{esc(target)}">open <code>{esc(notebook)}</code></a> as '
            f"<code>{esc(student_id)}</code>.</p>"
        )
        head = f'<meta http-equiv="refresh" content="0;url={esc(target)}">'
    else:
        body = (
            f'<h1>{esc(title)}</h1><p><span class="spinner"></span>Starting your server as '
            f"<code>{esc(student_id)}</code>… this page follows it.</p>"
        )
        head = '<meta http-equiv="refresh" content="1">'
    return staff_page(request, principal, title, body, head=head)


def course_choices(principal: Principal, permission: Permission, names: list[str]) -> list[str]:
    """The courses of ``names`` and of the principal's own where ``permission`` is allowed, sorted."""
    return visible_courses(principal, permission, sorted(set(names) | principal.courses))
