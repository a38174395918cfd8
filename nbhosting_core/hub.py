"""The facade of the host's privileged side: accounts, workspaces and a notebook backend in nbhosting's flows.

Open a notebook, follow its start, and run the host: list, show, stop, remove, reconcile, cull. Every decision
is logged (logger ``nbhosting_core.hub``) with the student's user, the course, the server's key and how long it
took. Who reaches which server (cookies, tickets, forward-auth) is the :class:`~nbhosting_core.gate.Gate`'s, which
needs no privilege; in production the hub runs in the privileged helper (:mod:`nbhosting_core.helper`) and the web
app reaches it through :class:`~nbhosting_core.helper.HelperClient`, a :class:`~nbhosting_core.launcher.Launcher`
as the hub is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from . import origins
from .accounts import Accounts, AccountStore
from .activity import ActivityLog
from .backend import NotebookBackend
from .coursemodels import CourseView
from .courses import Courses
from .culling import CullPolicy, last_seen, should_cull
from .door import Door
from .errors import CourseArchived, InvalidInput, NbhostingError, NotFound, StartFailed, StartTimeout
from .events import Event, EventJournal, EventKind
from .imageversions import image_label
from .jupyterapi import kernel_name
from .models import (
    Account,
    Action,
    CullDecision,
    CullReason,
    Launch,
    LaunchState,
    ReconcileReport,
    Server,
    ServerState,
    ServerView,
    StudentView,
)
from .naming import (
    container_name,
    is_course_name,
    student_copy_path,
    user_name,
    validate_course,
    validate_notebook_path,
    validate_staff_name,
    validate_student_id,
)
from .sampling import host_figures, measure
from .serveradmin import DEFAULT_LOG_LINES, MAX_WORKSPACES, ServerAdmin, log_tail, redacted, validate_log_lines
from .settings import Settings
from .studentfiles import summarize_workspace, workspace_courses
from .studentwork import StudentWork
from .system.cgroupfs import meminfo
from .system.counters import Counters, SqliteCounters
from .system.courseimages import CourseImages
from .system.locks import file_lock
from .system.quota import NoQuota, Quota, quota_for
from .system.runner import CommandRunner, SubprocessRunner
from .system.secretfile import load_or_create_secret, secret_owners
from .system.services import service_user
from .throttle import Need, Requester, ThrottlePolicy
from .workspaces import Workspaces

log = logging.getLogger(__name__)
#: where a server's origin takes a one-time ticket and sets its access cookie (served by the app through Caddy)
TICKET_PATH = "/_nbh/ticket"
#: kernels started for launches at once (see Hub._prestart_kernel); a launch that finds them all taken starts none
KERNEL_PRESTARTS = 4


class Hub:
    """Opens notebooks for students, decides who reaches which server, and keeps the host in order.

    Args:
        settings: all paths and knobs.
        backend: what runs the servers; default rootless podman (:class:`~nbhosting_core.system.podman.PodmanBackend`).
        accounts: students' accounts; default Linux users (:class:`~nbhosting_core.accounts.Accounts`).
        quota: keeps students within ``workspace_quota``; default, with the default backend, what
            ``quota_mode`` says (:mod:`nbhosting_core.system.quota`); with another backend, none.
        runner: runs host commands (mount, nscd, ...); default the real one.
        counters: the door's counters (rates, claims on the cap); default the SQLite file in ``RUN_DIR/throttle``.
        clock: seconds since the epoch; tests pass a fake.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        backend: NotebookBackend | None = None,
        accounts: AccountStore | None = None,
        quota: Quota | None = None,
        runner: CommandRunner | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.secret = load_or_create_secret(settings.secret_file, owners=secret_owners(settings.app_user))
        runner = runner or SubprocessRunner()
        if backend is None:
            from .system.podman import PodmanBackend

            backend = PodmanBackend(settings, secret=self.secret, runner=runner)
            quota = quota or quota_for(settings, runner)
        self.backend: NotebookBackend = backend
        self.quota: Quota = quota or NoQuota(settings)
        self.accounts: AccountStore = accounts or Accounts(settings, runner)
        self.workspaces = Workspaces(settings)
        #: the host's courses (git checkouts and their metadata: see :mod:`nbhosting_core.courses`)
        self.courses = Courses(settings, runner=runner)
        #: courses' own images (:mod:`nbhosting_core.system.courseimages`)
        self.images = CourseImages(settings, runner=runner)
        self.activity = ActivityLog(settings.activity_dir, flush=settings.activity_flush, clock=clock)
        self.policy = CullPolicy.from_settings(settings)
        #: what launches may make (see :mod:`nbhosting_core.throttle`)
        self.throttle = ThrottlePolicy.from_settings(
            settings, mem_total=meminfo("MemTotal") if settings.max_running is None else 0
        )
        self.counters: Counters = counters or SqliteCounters(settings.throttle_dir / "counters.sqlite")
        self.door = Door(self.throttle, self.counters, self.backend.list_running, clock)
        #: the host's events (see :mod:`nbhosting_core.events`): as root, readable by the app's group
        app = service_user(settings.app_user) if os.geteuid() == 0 else None
        self.events = EventJournal(settings.events_dir, group=app.gid if app is not None else None, clock=clock)
        self._ready_seen: dict[str, float | None] = {}  # key -> the start whose readiness is recorded
        #: seconds since the epoch, as this hub tells time (a fake in tests)
        self.clock = clock
        self._clock = clock
        # kernels started for ready launches, in the background (see _prestart_kernel)
        self._kernel_slots = threading.BoundedSemaphore(KERNEL_PRESTARTS)
        self._kernel_pool = ThreadPoolExecutor(KERNEL_PRESTARTS, thread_name_prefix="nbh-kernel")
        #: what students can do with their notebooks: reset, backups, downloads, shares
        self.work = StudentWork(
            settings,
            accounts=self.accounts,
            workspaces=self.workspaces,
            quota=self.quota,
            backend=self.backend,
            lock=self._student_lock,
            release=self._release_if_idle,
            clock=clock,
        )

    # ------------------------------------------------------------------------------------- students

    def open_notebook(
        self, course: str, notebook: str, student_id: str, *, requester: Requester | None = None
    ) -> Launch:
        """Give ``student_id`` their copy of ``notebook`` in ``course`` and a server for it; never waits.

        Validates all three parts before anything is created, creates the student's account and copy on
        first access (never overwriting their copy), then reuses, starts or creates the server. Returns at
        once: the launch is ``ready`` when Jupyter already answers, else ``starting`` (follow it with
        :meth:`launch_status`, or :meth:`wait_ready` in a script).

        A launch that would make something asks the door first (:mod:`nbhosting_core.throttle`): creating an
        account or a container draws on the rate limits of ``requester`` (who sent it: its platform and client
        address; None, an admin's launch: no rate limit), and making a server run meets the cap of running
        servers. Reopening a server that runs asks nothing.

        Raises:
            InvalidInput, NotFound, InvalidNotebook: bad request; nothing was created.
            CourseArchived: the course is archived; nothing was created.
            Busy: a rate limit or the cap refuses it now (``retry_after`` says when to try again); nothing was made.
            OverQuota: the student's workspace is full (or over quota where usage is measured).
            RuntimeUnavailable, StartFailed: the server could not be started.
        """
        started = time.monotonic()
        actor = "student" if requester is not None else "admin"
        try:
            launch = self._open(course, notebook, student_id, requester, started)
        except NbhostingError as exc:  # recorded and raised as it is: the caller shows it
            self._record_failure(course, notebook, student_id, exc, started, actor)
            raise
        self.events.record(
            EventKind.OPEN,
            course=launch.course,
            student_id=launch.student_id,
            notebook=launch.notebook,
            action=launch.action.value,
            duration=time.monotonic() - started,
            actor=actor,
            data={"state": launch.state.value, "copied": int(launch.copied)},
        )
        if launch.state is LaunchState.READY:
            self._record_ready(launch)
        return launch

    def _open(self, course: str, notebook: str, student_id: str, requester: Requester | None, started: float) -> Launch:
        course = validate_course(course)
        path = validate_notebook_path(notebook)
        student_id = validate_student_id(student_id)
        if self.courses.is_archived(course):
            raise CourseArchived(
                "This course is closed: its notebooks can no longer be opened here.", log_detail=f"{course} is archived"
            )
        self.workspaces.course_notebook(course, path)  # NotFound before any account exists
        account = self.accounts.find(student_id)
        content = None
        claim = None
        if account is None:
            with self.courses.reading(course):  # never half a file a pull is writing
                content = self.workspaces.read_course_notebook(course, path)  # InvalidNotebook before creating
        try:
            # the student's lock from before their account exists: reconcile never releases what a launch is
            # making (an account's subordinate ids, before its server runs)
            user = user_name(student_id, self.settings.user_prefix)
            with self._student_lock(user):
                if account is None:
                    # looked for again under the lock: a launch of the same student (a second click, a progress
                    # page's poll) that made the account meanwhile must not draw on the rates a second time
                    account = self.accounts.find(student_id)
                if account is None:
                    claim = self.door.ask(Need.CREATE, container_name(user, course), user, requester, "new account")
                    account = self.accounts.ensure(student_id)
                if claim is None:
                    claim = self.door.for_server(self.backend.get(account, course), account.user, course, requester)
                self.quota.prepare(account)
                self.quota.check(account)
                with self.courses.reading(course):
                    copied = self.workspaces.ensure_copy(account, course, path, content)
                workspace = self.workspaces.workspace(account, course)
                ensured = self.backend.ensure_running(account, course, workspace, self.image_for(course))
                self.activity.touch(ensured.server.key)  # a launch is activity: the culler must not stop it now
        finally:
            if claim is not None:  # it runs now (and counts as such), or it will not: the claim has done its work
                self.door.release(claim)
        server = ensured.server
        state = LaunchState.READY if self.backend.is_ready(server) else LaunchState.STARTING
        if state is LaunchState.READY:
            self._prestart_kernel(server, course, path)
        log.info(
            "open user=%s course=%s notebook=%s key=%s action=%s state=%s copied=%s in %.3fs",
            account.user,
            course,
            path,
            _short(server.key),
            ensured.action.value,
            state.value,
            copied,
            time.monotonic() - started,
        )
        return self._launch(account, course, path, server, state, copied=copied, action=ensured.action)

    def launch_status(self, course: str, notebook: str, student_id: str) -> Launch:
        """Where the launch of (``course``, ``notebook``, ``student_id``) stands now; answers at once.

        A server that stopped while starting, or did not answer within ``start_timeout``, is removed (the
        student's files stay) so that the next launch starts afresh.

        Raises:
            InvalidInput: bad request.
            NotFound: no server of this student for this course is starting or running (launch it).
            StartFailed: the server stopped while starting.
            StartTimeout: it did not answer within ``start_timeout``.
        """
        course = validate_course(course)
        path = validate_notebook_path(notebook)
        student_id = validate_student_id(student_id)
        account = self.accounts.find(student_id)
        server = self.backend.get(account, course) if account is not None else None
        if account is None or server is None:
            raise NotFound("This notebook is not being started: open it again from your course.")
        if server.state is ServerState.RUNNING and self.backend.is_ready(server):
            self._prestart_kernel(server, course, path)
            launch = self._launch(account, course, path, server, LaunchState.READY)
            self._record_ready(launch)
            return launch
        now = self._clock()
        if server.state is not ServerState.RUNNING:
            if server.started_at is None or now - server.started_at > self.settings.start_timeout:
                raise NotFound("This notebook is not being started: open it again from your course.")
            output = self.backend.logs(server)
            self._discard(server, "died while starting")
            self.events.record(EventKind.FAILURE, **self._who(server, path), reason=StartFailed.reason, actor="student")
            raise StartFailed(
                "Your notebook server stopped while starting; please retry.",
                log_detail=f"{server.name} is {server.state.value}; its last output: {output[-1500:]}",
            )
        elapsed = now - server.started_at if server.started_at else 0.0
        if elapsed > self.settings.start_timeout:
            self._discard(server, f"not answering after {elapsed:.0f}s")
            self.events.record(
                EventKind.FAILURE,
                **self._who(server, path),
                reason=StartTimeout.reason,
                duration=elapsed,
                actor="student",
            )
            raise StartTimeout(
                f"Your notebook server did not start within {self.settings.start_timeout:.0f} seconds; please retry.",
                log_detail=server.name,
            )
        return self._launch(account, course, path, server, LaunchState.STARTING)

    def wait_ready(self, launch: Launch, timeout: float | None = None) -> Launch:
        """Block until ``launch`` is ready (for scripts and the CLI; the web app polls instead).

        Raises:
            StartFailed, StartTimeout: as :meth:`launch_status`.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else self.settings.start_timeout + 5)
        while launch.state is not LaunchState.READY:
            if time.monotonic() > deadline:
                raise StartTimeout(
                    "Your notebook server did not start in time; please retry.", log_detail=launch.container
                )
            time.sleep(self.settings.ready_poll_interval)
            status = self.launch_status(launch.course, launch.notebook, launch.student_id)
            launch = status.model_copy(update={"action": launch.action, "copied": launch.copied})
        return launch

    # ------------------------------------------------------------------------------------ the host

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
        with self._student_lock(server.user):
            self._stop_and_release(server)
        took = time.monotonic() - started
        actor = validate_staff_name(by) if by is not None else "admin"
        log.info(
            "stop user=%s course=%s key=%s by=%s in %.3fs", server.user, server.course, _short(server.key), actor, took
        )
        self.events.record(EventKind.STOP, **self._who(server), reason="admin", duration=took, actor=actor)
        return server

    def remove(self, name: str) -> Server:
        """Remove the server ``name`` (its files stay; the next launch creates a new one, with a new key).

        Raises:
            NotFound: no server has that name.
        """
        server = self._by_name(name)
        started = time.monotonic()
        self._discard(server, "admin")
        self.events.record(
            EventKind.STOP, **self._who(server), reason="removed", duration=time.monotonic() - started, actor="admin"
        )
        return server

    # ------------------------------------------------------------ courses, as admins see them (serveradmin.ServerAdmin)

    def list_courses(self, *, archived: bool = False) -> list[CourseView]:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.list_courses`."""
        return [redacted(view, with_log=False) for view in self.courses.list_courses(archived=archived)]

    def course_view(self, course: str) -> CourseView:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.course_view`."""
        return redacted(self.courses.show(course))

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
        get (:meth:`image_for`): the same key on the same image, a new server (new key) on a newer one. No notebook
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
            with self._student_lock(server.user):
                server = self._server_of(course, student_id)  # as it is now, under the lock launches take
                claim = self.door.for_server(server, server.user, server.course, None)  # None: it runs already
                self.backend.stop(server)
                try:
                    self.quota.prepare(account)
                    workspace = self.workspaces.workspace(account, server.course)
                    ensured = self.backend.ensure_running(account, server.course, workspace, image)
                except NbhostingError:
                    self._release_if_idle(server.user)  # it stays stopped: what its student held goes
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
            _short(server.key),
            _short(ensured.server.key),
            ensured.action.value,
            image_label(ensured.server.image),
            actor,
            time.monotonic() - started,
        )
        self.events.record(
            EventKind.RESTART,
            **self._who(ensured.server),
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
            with self._student_lock(server.user):
                try:
                    text = self.backend.logs(server, tail=lines)
                finally:
                    self._release_if_idle(server.user)
        text = log_tail([text.encode()])
        log.info(
            "logs user=%s course=%s key=%s lines=%d -> %d characters in %.3fs",
            server.user,
            server.course,
            _short(server.key),
            lines,
            len(text),
            time.monotonic() - started,
        )
        return text

    def image_for(self, course: str) -> str | None:
        """What new servers of ``course`` run: the newest version of the image the course chose, else the default
        image (``settings.image_rootfs``); None: the backend's own default. Running servers keep theirs."""
        chosen = self.images.image_for(course) or self.settings.image_rootfs
        return None if chosen is None else str(chosen)

    def old_servers(self, course: str | None = None) -> list[Server]:
        """Servers (of ``course``, or all) whose image is not the one new servers of their course get."""
        current: dict[str, str | None] = {}
        old = []
        for server in self.backend.list_servers():
            if course is not None and server.course != course:
                continue
            if server.course not in current:
                current[server.course] = self.image_for(server.course)
            image = current[server.course]
            if image is not None and server.image != image:
                old.append(server)
        return old

    def restart_old(self, course: str | None = None) -> list[Server]:
        """Stop the running servers (of ``course``, or all) on an old image; their students' files stay, and
        their next launch replaces them with a server on the new image. Returns the servers stopped."""
        stopped = []
        for server in self.old_servers(course):
            if server.state is ServerState.RUNNING:
                self.stop(server.name)
                stopped.append(server)
        return stopped

    def reconcile(self) -> ReconcileReport:
        """Repair the backend's records after a crash or a reboot (see :meth:`NotebookBackend.reconcile`).

        What is held for students with no running server (a mounted workspace, a podman namespace and its
        subordinate ids) is released too.
        """
        started = time.monotonic()
        report = self.backend.reconcile()
        running = {s.user for s in self.backend.list_servers() if s.state is ServerState.RUNNING}
        released = []
        for user in sorted(set(self.quota.held()) | set(self.backend.held())):
            if user not in running:
                with self._student_lock(user):
                    if self._release_if_idle(user):
                        released.append(f"resources of {user}")
        report = report.model_copy(update={"cleared": [*report.cleared, *released]})
        log.info(
            "reconcile: checked=%d adopted=%s removed=%s cleared=%d in %.3fs",
            report.checked,
            report.adopted,
            report.removed,
            len(report.cleared),
            time.monotonic() - started,
            extra={"report": report},  # the whole report, for log handlers (and tests) that want more than counts
        )
        return report

    def cull(self, *, dry_run: bool = False) -> list[CullDecision]:
        """Stop every running server the culling policy says to (see :func:`culling.should_cull`).

        Returns every decision, kept or culled; with ``dry_run`` nothing is stopped.
        """
        now = self._clock()
        decisions = []
        for server in self.backend.list_servers():
            if server.state is not ServerState.RUNNING:
                continue
            proxied = self.activity.last_seen(server.key)
            activity = self.backend.activity(server)
            decision = should_cull(server, now=now, proxied=proxied, activity=activity, policy=self.policy)
            if not decision.cull and not self.quota.hard:
                used, limit = self.quota.usage(server.user)
                if used is not None and used > limit:
                    decision = decision.model_copy(update={"cull": True, "reason": CullReason.OVER_QUOTA})
            if decision.cull and not dry_run:
                decision = self._cull_one(server, decision, proxied)
            decisions.append(decision)
        return decisions

    def sample(self) -> Event:
        """Record the host's figures now as a ``sample`` event, and return it.

        Running servers; their kernels (each server's activity: a bounded probe, within
        :data:`~nbhosting_core.sampling.PROBE_BUDGET` seconds and :data:`~nbhosting_core.sampling.MAX_PROBES`
        servers) and memory (the sum of their usage); the host's load average and memory; the disk of DATA_ROOT.
        A sample that cannot be written is logged and still returned.
        """
        started = time.monotonic()
        servers = measure(self.backend, self.backend.list_running())
        data = {**servers.as_data(), **host_figures(self.settings.data_root)}
        event = self.events.record(EventKind.SAMPLE, data=data, actor="sampler")
        log.info(
            "sample running=%d probed=%d kernels=%d memory=%dMiB load=%s in %.3fs",
            servers.running,
            servers.probed,
            servers.kernels,
            servers.memory_bytes >> 20,
            data.get("load1"),
            time.monotonic() - started,
        )
        return event or Event(time=self._clock(), kind=EventKind.SAMPLE, data=data, actor="sampler")

    # ------------------------------------------------------------------------------------ internals

    def _cull_one(self, server: Server, decision: CullDecision, proxied: float | None) -> CullDecision:
        """Stop ``server`` as decided, unless its student came back meanwhile (a launch or a request)."""
        started = time.monotonic()
        with self._student_lock(server.user):  # launches hold it: one that reused this server has recorded it
            if decision.reason is not CullReason.OVER_QUOTA and self.activity.last_seen(server.key) != proxied:
                log.info(
                    "cull user=%s course=%s key=%s: seen meanwhile, kept",
                    server.user,
                    server.course,
                    _short(server.key),
                )
                return decision.model_copy(update={"cull": False, "reason": CullReason.ACTIVE})
            self._stop_and_release(server)
        took = time.monotonic() - started
        log.info(
            "cull user=%s course=%s key=%s reason=%s idle=%.0fs age=%.0fs in %.3fs",
            server.user,
            server.course,
            _short(server.key),
            decision.reason.value,
            decision.idle_seconds or 0,
            decision.age_seconds or 0,
            took,
        )
        self.events.record(
            EventKind.CULL,
            **self._who(server),
            reason=decision.reason.value,
            duration=took,
            actor="culler",
            data={"idle": decision.idle_seconds, "age": decision.age_seconds},
        )
        return decision

    @staticmethod
    def _who(server: Server, notebook: PurePosixPath | None = None) -> dict[str, str | None]:
        """An event's course, student and notebook, from ``server``."""
        return {
            "course": server.course,
            "student_id": server.student_id,
            "notebook": str(notebook) if notebook else None,
        }

    def _record_failure(
        self, course: str, notebook: str, student_id: str, exc: NbhostingError, started: float, actor: str
    ) -> None:
        """Record a launch that failed with ``exc``; parts that are not valid are left out (never recorded)."""
        parts: dict[str, str | None] = {}
        for name, value, validate in (
            ("course", course, validate_course),
            ("notebook", notebook, validate_notebook_path),
            ("student_id", student_id, validate_student_id),
        ):
            try:
                parts[name] = str(validate(value))
            except InvalidInput:
                parts[name] = None
        self.events.record(
            EventKind.FAILURE, **parts, reason=exc.reason, duration=time.monotonic() - started, actor=actor
        )

    def _record_ready(self, launch: Launch) -> None:
        """Record the moment a start is first seen ready (once per start), with how long it took."""
        if launch.started_at is None or self._ready_seen.get(launch.key) == launch.started_at:
            return
        if len(self._ready_seen) > 10_000:  # a long-running helper: forget the oldest half
            for key in list(self._ready_seen)[:5_000]:
                del self._ready_seen[key]
        self._ready_seen[launch.key] = launch.started_at
        self.events.record(
            EventKind.READY,
            course=launch.course,
            student_id=launch.student_id,
            notebook=launch.notebook,
            duration=max(0.0, self._clock() - launch.started_at),
        )

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

    def _student_lock(self, user: str) -> AbstractContextManager[None]:
        """Held while a student's storage is prepared or released and their servers start or stop."""
        return file_lock(self.settings.locks_dir / f"student-{user}.lock")

    def _stop_and_release(self, server: Server) -> None:
        """Stop ``server``, and release its student's resources if it was their last (under their lock)."""
        self.backend.stop(server)
        self._release_if_idle(server.user)

    def _release_if_idle(self, user: str) -> bool:
        """Release the student's storage if none of their servers runs (call under their lock); True if released."""
        if any(s.user == user and s.state is ServerState.RUNNING for s in self.backend.list_servers()):
            return False
        storage = self.quota.release(user)
        engine = self.backend.release(user)
        return storage or engine

    def _discard(self, server: Server, why: str) -> None:
        started = time.monotonic()
        with self._student_lock(server.user):
            self.backend.remove(server)
            self._release_if_idle(server.user)
        self.activity.forget(server.key)
        log.info(
            "remove user=%s course=%s key=%s reason=%r in %.3fs",
            server.user,
            server.course,
            _short(server.key),
            why,
            time.monotonic() - started,
        )

    def _prestart_kernel(self, server: Server, course: str, notebook: PurePosixPath) -> None:
        """Start the kernel of ``notebook`` in the ready ``server`` in the background, so that the UI finds it running.

        Never waits: the launch answers at once. At most :data:`KERNEL_PRESTARTS` at a time, bounded in time by the
        backend; a launch that finds them all taken (a burst) starts none, and the UI starts its kernel as it would.
        The backend starts none for a notebook that has a session already (the student's UI, or an earlier launch).
        """
        if not self.settings.kernel_prestart or not self._kernel_slots.acquire(blocking=False):
            return
        try:
            self._kernel_pool.submit(self._start_kernel, server, course, notebook)
        except RuntimeError:  # the pool is shut down: the process ends
            self._kernel_slots.release()

    def _start_kernel(self, server: Server, course: str, notebook: PurePosixPath) -> None:
        started = time.monotonic()
        copy = str(student_copy_path(notebook))
        try:
            with self.courses.reading(course):
                kernel = kernel_name(self.workspaces.read_course_notebook(course, notebook))
            done = self.backend.start_kernel(server, copy, kernel)
        except (NbhostingError, OSError) as exc:
            log.warning("kernel key=%s notebook=%s not started: %s", _short(server.key), copy, exc)
            return
        finally:
            self._kernel_slots.release()
        if done:
            log.info(
                "kernel key=%s notebook=%s kernel=%s started in %.3fs",
                _short(server.key),
                copy,
                kernel or "default",
                time.monotonic() - started,
            )

    def _launch(
        self,
        account: Account,
        course: str,
        notebook: PurePosixPath,
        server: Server,
        state: LaunchState,
        *,
        action: Action = Action.REUSE,
        copied: bool = False,
    ) -> Launch:
        return Launch(
            course=course,
            notebook=str(student_copy_path(notebook)),
            student_id=account.student_id,
            user=account.user,
            uid=account.uid,
            container=container_name(account.user, course),
            key=server.key,
            url=origins.notebook_path(
                self.settings, server.key, str(student_copy_path(notebook)), self.courses.config(course).ui
            ),
            state=state,
            started_at=server.started_at,
            action=action,
            copied=copied,
        )


def _short(key: str) -> str:
    """Enough of a key to follow a server through the logs, not enough to reach it."""
    return key[:8]


if TYPE_CHECKING:  # mypy checks that the hub is what admin code programs against, as the helper's client is

    def _is_server_admin(hub: Hub) -> ServerAdmin:
        return hub
