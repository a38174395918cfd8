"""The facade of the host's privileged side: accounts, workspaces and a notebook backend in nbhosting's flows.

Open a notebook and follow its start (here), and run the host: list, show, stop, remove, restart, read logs
(:mod:`nbhosting_core.hostadmin`), reconcile, cull, sample (:mod:`nbhosting_core.upkeep`); the hub wires those parts
and answers for them, with the same methods. Every decision is logged (logger ``nbhosting_core.hub``) with the
student's user, the course, the server's key and how long it took. Who reaches which server (cookies, tickets,
forward-auth) is the :class:`~nbhosting_core.gate.Gate`'s, which needs no privilege; in production the hub runs in
the privileged helper (:mod:`nbhosting_core.helper`) and the web app reaches it through
:class:`~nbhosting_core.helper.HelperClient`, a :class:`~nbhosting_core.launcher.Launcher` as the hub is.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from . import origins
from .accounts import Accounts, AccountStore
from .activity import ActivityLog
from .backend import NotebookBackend
from .coursemodels import CourseView
from .courses import Courses
from .culling import CullPolicy
from .door import Door
from .errors import CourseArchived, NbhostingError, NotFound, StartFailed, StartTimeout
from .eventrecords import LaunchRecords, who
from .events import Event, EventJournal, EventKind
from .hostadmin import HostAdmin
from .keeper import Keeper
from .kernelstarts import KernelStarts
from .models import (
    Account,
    Action,
    CullDecision,
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
    short_key,
    student_copy_path,
    user_name,
    validate_course,
    validate_notebook_path,
    validate_student_id,
)
from .serveradmin import DEFAULT_LOG_LINES, ServerAdmin
from .settings import Settings
from .studentwork import StudentWork
from .system.cgroupfs import meminfo
from .system.counters import Counters, SqliteCounters
from .system.courseimages import CourseImages, Pruned
from .system.quota import NoQuota, Quota, quota_for
from .system.runner import CommandRunner, SubprocessRunner
from .system.secretfile import load_or_create_secret, secret_owners
from .system.services import service_user
from .throttle import Need, Requester, ThrottlePolicy
from .trust import CopyTrust
from .upkeep import Upkeep
from .workspaces import Workspaces

log = logging.getLogger(__name__)
#: where a server's origin takes a one-time ticket and sets its access cookie (served by the app through Caddy)
TICKET_PATH = "/_nbh/ticket"


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
        #: seconds since the epoch, as this hub tells time (a fake in tests)
        self.clock = clock
        self._clock = clock
        #: launches' failures and readiness, as events
        self.records = LaunchRecords(self.events, clock)
        #: kernels started for ready launches, in the background
        self.kernels = KernelStarts(self.backend, self.courses, self.workspaces, enabled=settings.kernel_prestart)
        #: students' locks, and stopping or removing their servers then releasing what they held
        self.keeper = Keeper(settings, self.backend, self.quota, self.activity)
        #: what students can do with their notebooks: reset, backups, downloads, shares
        self.work = StudentWork(
            settings,
            accounts=self.accounts,
            workspaces=self.workspaces,
            quota=self.quota,
            backend=self.backend,
            lock=self.keeper.student_lock,
            release=self.keeper.release_if_idle,
            clock=clock,
        )
        #: admins' operations on servers and courses (the :class:`~nbhosting_core.serveradmin.ServerAdmin` methods)
        self.admin = HostAdmin(
            settings,
            backend=self.backend,
            accounts=self.accounts,
            quota=self.quota,
            workspaces=self.workspaces,
            courses=self.courses,
            activity=self.activity,
            door=self.door,
            events=self.events,
            keeper=self.keeper,
            image_for=self.image_for,
            last_build=self.images.read_build_log,
            clock=clock,
        )
        #: the host's upkeep: reconcile, cull, restart old servers, sample
        self.upkeep = Upkeep(
            settings,
            backend=self.backend,
            quota=self.quota,
            activity=self.activity,
            policy=self.policy,
            events=self.events,
            keeper=self.keeper,
            image_for=self.image_for,
            stop=self.admin.stop,
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
            self.records.failure(course, notebook, student_id, exc, started, actor)
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
            self.records.ready(launch)
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
            with self.keeper.student_lock(user):
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
                    copy = self.workspaces.copy_if_missing(account, course, path, content)
                copied = copy is not None
                workspace = self.workspaces.workspace(account, course)
                ensured = self.backend.ensure_running(account, course, workspace, self.image_for(course))
                if ensured.action is not Action.REUSE:
                    self.images.mark_used(ensured.server.image)
                if copy is not None and isinstance(self.backend, CopyTrust):
                    # a server already running listed the course as it was at its start (a pull since may have
                    # brought this notebook, or changed it); a later start lists the course as it will be then
                    self.backend.trust_copy(account, course, str(path), copy)
                self.activity.touch(ensured.server.key)  # a launch is activity: the culler must not stop it now
        finally:
            if claim is not None:  # it runs now (and counts as such), or it will not: the claim has done its work
                self.door.release(claim)
        server = ensured.server
        state = LaunchState.READY if self.backend.is_ready(server) else LaunchState.STARTING
        if state is LaunchState.READY:
            self.kernels.prestart(server, course, path)
        log.info(
            "open user=%s course=%s notebook=%s key=%s action=%s state=%s copied=%s in %.3fs",
            account.user,
            course,
            path,
            short_key(server.key),
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
            self.kernels.prestart(server, course, path)
            launch = self._launch(account, course, path, server, LaunchState.READY)
            self.records.ready(launch)
            return launch
        now = self._clock()
        if server.state is not ServerState.RUNNING:
            if server.started_at is None or now - server.started_at > self.settings.start_timeout:
                raise NotFound("This notebook is not being started: open it again from your course.")
            output = self.backend.logs(server)
            self.keeper.discard(server, "died while starting")
            self.events.record(EventKind.FAILURE, **who(server, path), reason=StartFailed.reason, actor="student")
            raise StartFailed(
                "Your notebook server stopped while starting; please retry.",
                log_detail=f"{server.name} is {server.state.value}; its last output: {output[-1500:]}",
            )
        elapsed = now - server.started_at if server.started_at else 0.0
        if elapsed > self.settings.start_timeout:
            self.keeper.discard(server, f"not answering after {elapsed:.0f}s")
            self.events.record(
                EventKind.FAILURE,
                **who(server, path),
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

    def image_for(self, course: str) -> str | None:
        """What new servers of ``course`` run: the newest version of the image the course chose, else the default
        image (``settings.image_rootfs``); None: the backend's own default. Running servers keep theirs."""
        chosen = self.images.image_for(course) or self.settings.image_rootfs
        return None if chosen is None else str(chosen)

    def prune_images(self, *, dry_run: bool = False, keep_used_within: float = 0) -> Pruned:
        """Remove the image versions no server of this host uses (every server's record counts, stopped ones too),
        but the default image and each course's newest; see :meth:`CourseImages.prune`. Logged."""
        started = time.monotonic()
        in_use = [server.image for server in self.backend.list_servers()]
        service = [self.settings.image_rootfs] if self.settings.image_rootfs is not None else []
        pruned = self.images.prune(
            in_use=in_use, in_service=service, dry_run=dry_run, keep_used_within=keep_used_within
        )
        log.info(
            "images: %s %s (%d MiB) in %.3fs",
            "would prune" if dry_run else "pruned",
            ", ".join(pruned.removed) or "nothing",
            pruned.freed_bytes // 2**20,
            time.monotonic() - started,
        )
        return pruned

    # ------------------------------------------------------ the host, as admins see it (see hostadmin.HostAdmin)

    def list_servers(self, *, course: str | None = None, details: bool = False) -> list[ServerView]:
        """See :meth:`nbhosting_core.hostadmin.HostAdmin.list_servers`."""
        return self.admin.list_servers(course=course, details=details)

    def server(self, name: str) -> ServerView:
        """See :meth:`nbhosting_core.hostadmin.HostAdmin.server`."""
        return self.admin.server(name)

    def stop(self, name: str, *, by: str | None = None) -> Server:
        """See :meth:`nbhosting_core.hostadmin.HostAdmin.stop`."""
        return self.admin.stop(name, by=by)

    def remove(self, name: str) -> Server:
        """See :meth:`nbhosting_core.hostadmin.HostAdmin.remove`."""
        return self.admin.remove(name)

    def list_courses(self, *, archived: bool = False) -> list[CourseView]:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.list_courses`."""
        return self.admin.list_courses(archived=archived)

    def course_view(self, course: str) -> CourseView:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.course_view`."""
        return self.admin.course_view(course)

    def student_view(self, student_id: str, *, course: str | None = None) -> StudentView:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.student_view`."""
        return self.admin.student_view(student_id, course=course)

    def server_view(self, course: str, student_id: str) -> ServerView:
        """See :meth:`nbhosting_core.hostadmin.HostAdmin.server_view`."""
        return self.admin.server_view(course, student_id)

    def stop_server(self, course: str, student_id: str, *, by: str | None = None) -> Server:
        """See :meth:`nbhosting_core.hostadmin.HostAdmin.stop_server`."""
        return self.admin.stop_server(course, student_id, by=by)

    def restart_server(self, course: str, student_id: str, *, by: str | None = None) -> Server:
        """See :meth:`nbhosting_core.hostadmin.HostAdmin.restart_server`."""
        return self.admin.restart_server(course, student_id, by=by)

    def server_logs(self, course: str, student_id: str, *, lines: int = DEFAULT_LOG_LINES) -> str:
        """See :meth:`nbhosting_core.hostadmin.HostAdmin.server_logs`."""
        return self.admin.server_logs(course, student_id, lines=lines)

    # --------------------------------------------------------------- the host's upkeep (see upkeep.Upkeep)

    def old_servers(self, course: str | None = None) -> list[Server]:
        """See :meth:`nbhosting_core.upkeep.Upkeep.old_servers`."""
        return self.upkeep.old_servers(course)

    def restart_old(self, course: str | None = None) -> list[Server]:
        """See :meth:`nbhosting_core.upkeep.Upkeep.restart_old`."""
        return self.upkeep.restart_old(course)

    def reconcile(self) -> ReconcileReport:
        """See :meth:`nbhosting_core.upkeep.Upkeep.reconcile`."""
        return self.upkeep.reconcile()

    def cull(self, *, dry_run: bool = False) -> list[CullDecision]:
        """See :meth:`nbhosting_core.upkeep.Upkeep.cull`."""
        return self.upkeep.cull(dry_run=dry_run)

    def sample(self) -> Event:
        """See :meth:`nbhosting_core.upkeep.Upkeep.sample`."""
        return self.upkeep.sample()

    # ------------------------------------------------------------------------------------ internals

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


if TYPE_CHECKING:  # mypy checks that the hub is what admin code programs against, as the helper's client is

    def _is_server_admin(hub: Hub) -> ServerAdmin:
        return hub
