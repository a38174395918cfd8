"""The host's servers as admins see and act on them: list and show them, stop, remove, restart, read their logs,
and the courses (:class:`~nbhosting_core.serveradmin.ServerAdmin`, which :class:`~nbhosting_core.hub.Hub` answers by
delegating here).

Every operation is logged (logger ``nbhosting_core.hub``, as the hub's) with the student's user, the course, the
server's key, who asked and how long it took; stops and restarts are recorded as events.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from .accounts import AccountStore
from .activity import ActivityLog
from .backend import NotebookBackend
from .coursemodels import BuildLog, CourseView
from .courses import Courses
from .culling import last_seen
from .door import Door
from .errors import NbhostingError, NotFound
from .eventrecords import who
from .events import EventJournal, EventKind
from .imageversions import image_label
from .keeper import Keeper
from .models import Server, ServerState, ServerView, StudentView
from .naming import (
    container_name,
    is_course_name,
    short_key,
    user_name,
    validate_course,
    validate_staff_name,
    validate_student_id,
)
from .serveradmin import DEFAULT_LOG_LINES, MAX_WORKSPACES, log_tail, redacted, validate_log_lines
from .settings import Settings
from .studentfiles import summarize_workspace, workspace_courses
from .system.quota import Quota
from .workspaces import Workspaces

log = logging.getLogger("nbhosting_core.hub")  # the hub's decisions, whichever module makes them


class HostAdmin:
    """Admins' operations on the host's servers and courses; the hub's parts it works with, as the hub wires them.

    ``image_for`` says what new servers of a course run (:meth:`~nbhosting_core.hub.Hub.image_for`);
    ``last_build``, the end of the log of a course image's last build
    (:meth:`~nbhosting_core.system.courseimages.CourseImages.read_build_log`); ``clock``, seconds since the epoch.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        backend: NotebookBackend,
        accounts: AccountStore,
        quota: Quota,
        workspaces: Workspaces,
        courses: Courses,
        activity: ActivityLog,
        door: Door,
        events: EventJournal,
        keeper: Keeper,
        image_for: Callable[[str], str | None],
        last_build: Callable[[str], BuildLog | None],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.accounts = accounts
        self.quota = quota
        self.workspaces = workspaces
        self.courses = courses
        self.activity = activity
        self.door = door
        self.events = events
        self.keeper = keeper
        self.image_for = image_for
        self.last_build = last_build
        self._clock = clock

    def list_servers(self, *, course: str | None = None, details: bool = False) -> list[ServerView]:
        """Every server on the host (of ``course`` only, if given), with when its student was last seen, its image's
        version and whether it is old for its course.

        With ``details``, each running server is also asked for its activity and usage (one bounded probe
        per server).

        Raises:
            InvalidInput: ``course`` is not a course's name.
        """
        course = validate_course(course) if course is not None else None
        servers = [s for s in self.backend.list_servers() if course is None or s.course == course]
        current = {c: self.image_for(c) for c in {s.course for s in servers}}
        return [self._view(s, details=details, current=current[s.course]) for s in servers]

    def server(self, name: str) -> ServerView:
        """One server, with its activity and usage.

        Raises:
            NotFound: no server has that name.
        """
        server = self._by_name(name)
        return self._view(server, details=True, current=self.image_for(server.course))

    def stop(self, name: str, *, by: str | None = None) -> Server:
        """Stop the server ``name`` (its files stay; the next launch starts it again with the same key); ``by``: the
        staff member who asks (None: an admin's shell).

        Raises:
            NotFound: no server has that name.
        """
        server = self._by_name(name)
        started = time.monotonic()
        with self.keeper.student_lock(server.user):
            self.keeper.stop_and_release(server)
        took = time.monotonic() - started
        actor = validate_staff_name(by) if by is not None else "admin"
        log.info(
            "stop user=%s course=%s key=%s by=%s in %.3fs",
            server.user,
            server.course,
            short_key(server.key),
            actor,
            took,
        )
        self.events.record(EventKind.STOP, **who(server), reason="admin", duration=took, actor=actor)
        return server

    def remove(self, name: str) -> Server:
        """Remove the server ``name`` (its files stay; the next launch creates a new one, with a new key).

        Raises:
            NotFound: no server has that name.
        """
        server = self._by_name(name)
        started = time.monotonic()
        self.keeper.discard(server, "admin")
        self.events.record(
            EventKind.STOP, **who(server), reason="removed", duration=time.monotonic() - started, actor="admin"
        )
        return server

    # ------------------------------------------------------------ courses, as admins see them (serveradmin.ServerAdmin)

    def list_courses(self, *, archived: bool = False) -> list[CourseView]:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.list_courses`."""
        return [redacted(view, with_log=False) for view in self.courses.list_courses(archived=archived)]

    def course_view(self, course: str) -> CourseView:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.course_view`."""
        view = redacted(self.courses.show(course))
        return view.model_copy(update={"last_build": self.last_build(view.course.name)})

    # ------------------------------------------------------------- a student's server (see serveradmin.ServerAdmin)

    def student_view(self, student_id: str, *, course: str | None = None) -> StudentView:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.student_view`."""
        started = time.monotonic()
        student_id = validate_student_id(student_id)
        course = validate_course(course) if course is not None else None
        account = self.accounts.find(student_id)
        if account is None:
            return StudentView(student_id=student_id, user=None, workspaces=[], servers=[])
        courses = [course] if course is not None else workspace_courses(account, is_course_name)
        workspaces = []
        for name in courses[:MAX_WORKSPACES]:
            with contextlib.suppress(NotFound):  # no workspace in that course
                workspaces.append(summarize_workspace(account, name))
        servers = [
            self._view(server, details=True, current=self.image_for(server.course))
            for server in self.backend.list_servers()
            if server.user == account.user and (course is None or server.course == course)
        ]
        log.info(
            "student user=%s course=%s: %d workspaces, %d servers in %.3fs",
            account.user,
            course or "*",
            len(workspaces),
            len(servers),
            time.monotonic() - started,
        )
        return StudentView(student_id=student_id, user=account.user, workspaces=workspaces, servers=servers)

    def server_view(self, course: str, student_id: str) -> ServerView:
        """The server of ``student_id`` in ``course``, with its activity and usage.

        Raises:
            InvalidInput: a bad course or student id.
            NotFound: that student has no server in that course.
        """
        server = self._server_of(course, student_id)
        return self._view(server, details=True, current=self.image_for(server.course))

    def stop_server(self, course: str, student_id: str, *, by: str | None = None) -> Server:
        """Stop the server of ``student_id`` in ``course``; it, once stopped (see :meth:`stop`).

        Raises:
            InvalidInput, NotFound: as :meth:`server_view`.
        """
        server = self._server_of(course, student_id)
        self.stop(server.name, by=by)
        return self._server_of(course, student_id)

    def restart_server(self, course: str, student_id: str, *, by: str | None = None) -> Server:
        """Stop the server of ``student_id`` in ``course`` and start it again on the image new servers of its course
        get (``image_for``): the same key on the same image, a new server (new key) on a newer one. No notebook
        is copied, the student's files stay. A stopped server is started, if the cap of running servers allows.

        Raises:
            InvalidInput, NotFound: as :meth:`server_view`.
            Busy: it did not run, and the cap refuses one more (nothing was done).
            RuntimeUnavailable, StartFailed: it could not start again (it stays stopped, its files kept).
        """
        actor = validate_staff_name(by) if by is not None else "admin"
        started = time.monotonic()
        server = self._server_of(course, student_id)
        account = self.accounts.find(server.student_id)
        if account is None:
            raise NotFound("This student has no account here.", log_detail=f"{server.name}: no account")
        image = self.image_for(server.course)
        claim = None
        try:
            with self.keeper.student_lock(server.user):
                server = self._server_of(course, student_id)  # as it is now, under the lock launches take
                claim = self.door.for_server(server, server.user, server.course, None)  # None: it runs already
                self.backend.stop(server)
                try:
                    self.quota.prepare(account)
                    workspace = self.workspaces.workspace(account, server.course)
                    ensured = self.backend.ensure_running(account, server.course, workspace, image)
                except NbhostingError:
                    self.keeper.release_if_idle(server.user)  # it stays stopped: what its student held goes
                    raise
                self.activity.touch(ensured.server.key)  # a restart is activity: the culler must not stop it now
        finally:
            if claim is not None:
                self.door.release(claim)
        if ensured.server.key != server.key:
            self.activity.forget(server.key)
        log.info(
            "restart user=%s course=%s key=%s->%s action=%s image=%s by=%s in %.3fs",
            server.user,
            server.course,
            short_key(server.key),
            short_key(ensured.server.key),
            ensured.action.value,
            image_label(ensured.server.image),
            actor,
            time.monotonic() - started,
        )
        self.events.record(
            EventKind.RESTART,
            **who(ensured.server),
            action=ensured.action.value,
            reason="admin",
            duration=time.monotonic() - started,
            actor=actor,
        )
        return ensured.server

    def server_logs(self, course: str, student_id: str, *, lines: int = DEFAULT_LOG_LINES) -> str:
        """The last ``lines`` lines (1..``MAX_LOG_LINES``) the server of ``student_id`` in ``course`` printed, at most
        ``MAX_LOG_BYTES`` of them (see :func:`~nbhosting_core.serveradmin.log_tail`).

        Read through the student's own container engine, as them (podman: their API service); for a stopped server,
        what that started for them is released afterwards.

        Raises:
            InvalidInput: as :meth:`server_view`, or ``lines`` out of range.
            NotFound: as :meth:`server_view`.
            RuntimeUnavailable: the student's container engine cannot be reached.
        """
        started = time.monotonic()
        lines = validate_log_lines(lines)
        server = self._server_of(course, student_id)
        if server.state is ServerState.RUNNING:
            text = self.backend.logs(server, tail=lines)
        else:
            with self.keeper.student_lock(server.user):
                try:
                    text = self.backend.logs(server, tail=lines)
                finally:
                    self.keeper.release_if_idle(server.user)
        text = log_tail([text.encode()])
        log.info(
            "logs user=%s course=%s key=%s lines=%d -> %d characters in %.3fs",
            server.user,
            server.course,
            short_key(server.key),
            lines,
            len(text),
            time.monotonic() - started,
        )
        return text

    def _by_name(self, name: str) -> Server:
        found = next((s for s in self.backend.list_servers() if s.name == name), None)
        if found is None:
            raise NotFound(f"There is no server named {name[:80]!r}.")
        return found

    def _server_of(self, course: str, student_id: str) -> Server:
        """The server of (``course``, ``student_id``) in the backend's records (no engine call), or NotFound: its
        name is derived from the validated ids, and its labels must name that student."""
        course = validate_course(course)
        student_id = validate_student_id(student_id)
        name = container_name(user_name(student_id, self.settings.user_prefix), course)
        found = next((s for s in self.backend.list_servers() if s.name == name), None)
        if found is None or found.student_id != student_id or found.course != course:
            raise NotFound(
                "This student has no server in this course.", log_detail=f"course={course} student={student_id[:80]}"
            )
        return found

    def _view(self, server: Server, *, details: bool, current: str | None = None) -> ServerView:
        now = self._clock()
        running = server.state is ServerState.RUNNING
        activity = self.backend.activity(server) if details and running else None
        seen = last_seen(server, self.activity.last_seen(server.key), activity)
        return ServerView(
            server=server,
            last_seen=seen,
            idle_seconds=max(0.0, now - seen) if seen is not None and running else None,
            age_seconds=max(0.0, now - server.started_at) if running and server.started_at is not None else None,
            activity=activity,
            usage=self.backend.usage(server) if details else None,
            image_label=image_label(server.image),
            old_image=None if current is None else server.image != current,
        )
