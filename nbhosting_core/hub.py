"""The facade: one object that wires accounts, workspaces and containers into nbhosting's flows."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from pathlib import PurePosixPath

from . import access
from .accounts import Accounts
from .containers import ContainerRuntime, Containers
from .errors import StartFailed, StartTimeout
from .models import Account, ContainerRecord, Launch, LaunchState
from .naming import container_name, validate_course, validate_notebook_path, validate_student_id
from .settings import Settings
from .system.runner import CommandRunner, SubprocessRunner
from .system.secretfile import load_or_create_secret
from .workspaces import Workspaces


class Hub:
    """Opens notebooks for students and decides who reaches which notebook server.

    Args:
        settings: all paths and knobs.
        runner: runs host commands (useradd, usermod); default the real one.
        runtime: the container engine; default rootless podman through podman-py.
        clock: seconds since the epoch; tests pass a fake.
    """

    def __init__(self, settings: Settings, *, runner: CommandRunner | None = None,
                 runtime: ContainerRuntime | None = None, clock: Callable[[], float] = time.time) -> None:
        if runtime is None:
            from .system.podman import PodmanRuntime

            runtime = PodmanRuntime(settings)
        self.settings = settings
        self.secret = load_or_create_secret(settings.secret_file)
        self.accounts = Accounts(settings, runner or SubprocessRunner())
        self.workspaces = Workspaces(settings)
        self.containers = Containers(settings, runtime, self.secret)
        self._clock = clock

    def open_notebook(self, course: str, notebook: str, student_id: str, *, wait: bool = True) -> Launch:
        """Give ``student_id`` their copy of ``notebook`` in ``course`` and a running server for it.

        Validates all three parts before anything is created, creates the student's account and copy
        on first access (never overwriting their copy), then reuses, starts or creates the container.
        With ``wait`` (the default) returns once Jupyter answers; otherwise may return a launch in
        state ``starting`` (call again, or :meth:`wait_ready`).

        Raises:
            InvalidInput, NotFound, InvalidNotebook: bad request; nothing was created.
            RuntimeUnavailable, StartFailed, StartTimeout: the server could not be started.
        """
        course = validate_course(course)
        path = validate_notebook_path(notebook)
        student_id = validate_student_id(student_id)
        self.workspaces.course_notebook(course, path)  # NotFound before any account exists
        account = self.accounts.find(student_id)
        content = None
        if account is None or not self.workspaces.has_copy(account, course, path):
            content = self.workspaces.read_course_notebook(course, path)  # InvalidNotebook before creating
        account = account or self.accounts.ensure(student_id)
        copied = self.workspaces.ensure_copy(account, course, path, content)
        name = container_name(account.user, course)
        known = self.containers.known_key(name)
        if known is not None and self.containers.is_ready(known):
            return self._launch(account, course, path, known, LaunchState.READY, copied=copied)
        record, created = self.containers.ensure_running(
            account, course, self.workspaces.workspace(account, course))
        ready = self.containers.is_ready(record.key)
        if not ready and wait:
            self.wait_ready(account, record)
            ready = True
        if ready:
            self.containers.remember_key(name, record.key)
        state = LaunchState.READY if ready else LaunchState.STARTING
        return self._launch(account, course, path, record.key, state, created=created, copied=copied)

    def wait_ready(self, account: Account, record: ContainerRecord) -> None:
        """Wait until the server of ``record`` answers, within what is left of ``start_timeout``."""
        elapsed = self._clock() - record.started_at if record.started_at else 0.0
        remaining = max(self.settings.start_timeout - max(elapsed, 0.0), 1.0)
        try:
            self.containers.wait_ready(account, record, remaining)
        except StartTimeout:
            raise
        except StartFailed:
            # it died while starting: replace it at the next open (the student's files are untouched)
            self.containers.remove(account, record)
            raise

    def notebook_url(self, key: str, notebook: PurePosixPath) -> str:
        """Where the browser goes for ``notebook`` in the server ``key`` (path only)."""
        view = "notebooks" if self.settings.ui == "notebook" else "lab/tree"
        quoted = urllib.parse.quote(str(notebook))
        return f"/{self.settings.url_prefix}/{key}/{view}/{quoted}"

    def _launch(self, account: Account, course: str, notebook: PurePosixPath, key: str, state: LaunchState,
                *, created: bool = False, copied: bool = False) -> Launch:
        return Launch(
            course=course, notebook=str(notebook), student_id=account.student_id, user=account.user,
            uid=account.uid, container=container_name(account.user, course), key=key,
            url=self.notebook_url(key, notebook), state=state, created=created, copied=copied,
        )

    def access_cookie(self, launch: Launch) -> tuple[str, str, str, int]:
        """(name, value, path, max_age) of the cookie that lets this browser reach ``launch``."""
        s = self.settings
        value = access.access_cookie_value(self.secret, launch.key, launch.user, self._clock(),
                                           s.cookie_max_age)
        return access.COOKIE_NAME, value, access.cookie_path(s.url_prefix, launch.key), s.cookie_max_age

    def authorize(self, uri: str, cookie_values: list[str]) -> access.AccessDecision:
        """Caddy's forward_auth question: may a request for ``uri`` with these cookies go through?

        A valid cookie for a server that no longer exists is refused (410) with a clear reason.
        """
        decision = access.decide(self.secret, self.settings.url_prefix, uri, cookie_values, self._clock())
        if decision.allowed and not self.containers.socket_path(decision.key).exists():
            return access.AccessDecision(False, 410, "gone", key=decision.key, user=decision.user)
        return decision
