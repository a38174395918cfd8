"""The course page: a student's table of contents of one course (tracks of sections of notebooks), each notebook a
launch link, those this student has opened marked. Reached by a signed link (:mod:`nbhosting_core.coursepages`).

The app reads what it needs itself: the course's checkout (readable by all, as students' containers read it) and
its own record of what each student opened (:class:`~nbhosting_core.opened.OpenedLog`). Nothing crosses to the
helper, nothing is created.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nbhosting_core import NbhostingError, NotFound, validate_course, validate_student_id
from nbhosting_core.coursepages import COURSE_PREFIX, admit_course_page, notebook_link
from nbhosting_core.gate import Gate
from nbhosting_core.naming import student_copy_path
from nbhosting_core.opened import OpenedLog
from nbhosting_core.platforms import PlatformsFile
from nbhosting_core.tracks import tracks_of

from . import pages
from .errors import http_status

log = logging.getLogger("nbhosting")


class CoursePages:
    """``GET /course/<course>/<student>``: the course page."""

    def __init__(self, gate: Gate, platforms: PlatformsFile, opened: OpenedLog) -> None:
        self.gate = gate
        self.platforms = platforms
        self.opened = opened

    def routes(self) -> list[Route]:
        """The route of course pages."""
        return [Route(f"/{COURSE_PREFIX}/{{course}}/{{student}}", self.page)]

    async def page(self, request: Request) -> Response:
        """The course page of a signed link; a clear error page otherwise."""
        course, student = request.path_params["course"], request.path_params["student"]
        try:
            validate_course(course)
            validate_student_id(student)
            admission, platform, expires = admit_course_page(
                self.platforms.current(),
                course,
                student,
                request.query_params,
                now=self.gate.clock(),
                max_ttl=self.gate.settings.signed_launch_max_ttl,
            )
            checkout = self.gate.settings.courses_dir / course
            if not checkout.is_dir():
                raise NotFound(f"There is no course named {course!r} on this server.")
            tracks = await run_in_threadpool(tracks_of, course, checkout)
            opened = await run_in_threadpool(self.opened.opened, admission.student_id, course)
        except NbhostingError as exc:
            status, title = http_status(exc)
            log.info("course page %s refused: %s [%s]", request.url.path, exc, exc.reason)
            return pages.error_page(status, title, exc.message)

        def entry(notebook: str) -> tuple[str, str, bool]:
            mine = str(student_copy_path(PurePosixPath(notebook)))
            return notebook, notebook_link(platform, course, notebook, student, expires), mine in opened

        view = [(t.name, [(s.name, [entry(n) for n in s.notebooks]) for s in t.sections]) for t in tracks]
        response = pages.course_page(course, view)
        response.headers["Referrer-Policy"] = "no-referrer"  # its links are signed
        return response
