"""The statistics pages: ``/admin/courses/{course}/statistics`` (VIEW_STATISTICS on the course) and ``/admin/host``
(the host's samples over time; MANAGE_HOST). Both copy the journal's new events into the database first, then draw
with :mod:`nbhosting_server.statspage` (SVG made here: no script, no CDN). ``?days=`` (1 to 366) sets the span.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from nbhosting_core import validate_course
from nbhosting_core.coursestats import MAX_DAYS
from nbhosting_core.eventstore import course_statistics, host_samples
from nbhosting_core.roles import Permission

from .. import statspage
from .auth import require
from .formats import esc, query, segment
from .layout import staff_page
from .refusals import AdminRefused
from .sources import call, ingested, now_of

DAY = 86400
DEFAULT_DAYS = 30


def days_of(request: Request) -> int:
    """The ``days`` query parameter (1 to :data:`MAX_DAYS`, default :data:`DEFAULT_DAYS`); AdminRefused (400)."""
    text = request.query_params.get("days", str(DEFAULT_DAYS))
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise AdminRefused(400, f"A span is 1 to {MAX_DAYS} days.")
    return int(text)


def spans(path: str, days: int) -> str:
    """Links to the same page over other spans."""
    links = [
        f"<strong>{n} days</strong>" if n == days else f'<a href="{esc(path + query(days=n))}">{n} days</a>'
        for n in (7, 30, 90, 365)
    ]
    return f'<p class="muted">Over: {" · ".join(links)}</p>'


async def course_statistics_page(request: Request) -> Response:
    """GET /admin/courses/{course}/statistics?days=: the course's figures as plots."""
    course = request.path_params["course"]
    principal = await require(request, Permission.VIEW_STATISTICS, course)
    days = days_of(request)
    await call(request, principal, "check a course's name", lambda: validate_course(course))
    engine = await ingested(request, principal)
    now = now_of(request)
    stats = await call(
        request,
        principal,
        f"compute the statistics of {course} over {days} days",
        lambda: course_statistics(engine, course, days=days, now=now),
    )
    path = f"/admin/courses/{segment(course)}/statistics"
    body = (
        f'<p class="muted"><a href="/admin/courses/{esc(segment(course))}">Course {esc(course)}</a></p>'
        + spans(path, days)
        + f'<div class="stats">{statspage.course_statistics_page(stats)}</div>'
    )
    return staff_page(request, principal, f"Statistics of {course}", body, head=statspage.STYLE)


async def host_page(request: Request) -> Response:
    """GET /admin/host?days=: the host's samples (running servers, kernels, memory, load, disk) as plots."""
    principal = await require(request, Permission.MANAGE_HOST)
    days = days_of(request)
    engine = await ingested(request, principal)
    now = now_of(request)
    samples = await call(
        request,
        principal,
        f"read the host's samples over {days} days",
        lambda: host_samples(engine, now - days * DAY, now + 1),
    )
    body = spans("/admin/host", days) + f'<div class="stats">{statspage.host_statistics_page(samples)}</div>'
    return staff_page(request, principal, "The host", body, head=statspage.STYLE)
