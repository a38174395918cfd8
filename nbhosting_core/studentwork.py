"""What students can do with their notebooks: list them, reset to the course's version (with backups), restore a backup,
download a notebook or a whole workspace, share a static HTML copy behind a revocable link.

:class:`StudentWork` does it on the host (in the privileged helper, or in a script as root); the web app reaches it
through :class:`~nbhosting_core.helper.HelperClient`, another :class:`StudentActions`. Every operation validates the
course, the notebook path and the student id as a launch does, works under the student's lock with their storage
ready (their workspace image mounted, then released if none of their servers runs), touches files by descriptor
only (:mod:`nbhosting_core.studentfiles`), and is logged with the student's user, what, and how long it took.
Rendering a notebook to HTML interprets what the student wrote: it runs in their own container, as them
(:class:`HtmlRenderer`), never as root.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from . import studentfiles as files
from .accounts import AccountStore
from .backend import NotebookBackend
from .errors import Busy, NotFound
from .models import Account, Server, ServerState
from .naming import student_copy_path, validate_course, validate_notebook_path, validate_student_id
from .settings import Settings
from .shares import MAX_PAGE, Share, ShareStore
from .studentfiles import Backup, NotebookList
from .system.quota import Quota
from .trust import CopyTrust
from .workspaces import Workspaces

log = logging.getLogger(__name__)
#: seconds a rendering to HTML may take in the student's container
RENDER_TIMEOUT = 20


class Reset(BaseModel):
    """What a reset did: the student's copy kept as ``backup`` (None if they had none), the course's copied in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notebook: str
    backup: Backup | None
    copied: bool


@dataclass(frozen=True)
class Download:
    """A file to hand to the student: its name, type and size; its bytes are in ``stream`` (rewound; close it)."""

    filename: str
    media_type: str
    size: int
    stream: BinaryIO


@runtime_checkable
class HtmlRenderer(Protocol):
    """Renders a notebook of a running server to HTML, inside that server, as its student."""

    def render_html(self, server: Server, notebook: str, *, timeout: float, max_bytes: int) -> bytes:
        """``notebook`` (relative to the server's workspace) as a standalone HTML page (nbconvert).

        Raises:
            InvalidInput: it could not be rendered (not a notebook, too large, too slow).
            RuntimeUnavailable: the server's engine cannot be reached.
        """
        ...


class StudentActions(Protocol):
    """What a student (or an admin for them) may do with their notebooks. See :class:`StudentWork`."""

    def notebooks(self, course: str, student_id: str) -> NotebookList:
        """See :meth:`StudentWork.notebooks`."""
        ...

    def reset(self, course: str, notebook: str, student_id: str) -> Reset:
        """See :meth:`StudentWork.reset`."""
        ...

    def backups(self, course: str, notebook: str | None, student_id: str) -> list[Backup]:
        """See :meth:`StudentWork.backups`."""
        ...

    def restore(self, course: str, notebook: str, student_id: str, backup: str) -> Reset:
        """See :meth:`StudentWork.restore`."""
        ...

    def download_notebook(self, course: str, notebook: str, student_id: str) -> Download:
        """See :meth:`StudentWork.download_notebook`."""
        ...

    def download_workspace(self, course: str, student_id: str) -> Download:
        """See :meth:`StudentWork.download_workspace`."""
        ...

    def share(self, course: str, notebook: str, student_id: str) -> Share:
        """See :meth:`StudentWork.share`."""
        ...

    def unshare(self, course: str, notebook: str, student_id: str) -> Share | None:
        """See :meth:`StudentWork.unshare`."""
        ...

    def shares(self, course: str | None, student_id: str) -> list[Share]:
        """See :meth:`StudentWork.shares`."""
        ...


class StudentWork:
    """Students' notebooks on the host: resets and backups, downloads, shares (a :class:`StudentActions`).

    Args:
        settings: paths and knobs (``workspace_quota`` bounds a download).
        accounts: finds students' accounts (an operation never creates one: no account, nothing to act on).
        workspaces: the course's notebooks and the students' copies.
        quota: makes a student's storage ready (mounted) and releases it.
        backend: finds a student's server (a share is rendered in it).
        lock: the student's lock, by user (the hub's: launches and the culler take it too).
        release: called under the lock once done: releases the student's storage if none of their servers runs.
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        accounts: AccountStore,
        workspaces: Workspaces,
        quota: Quota,
        backend: NotebookBackend,
        lock: Callable[[str], AbstractContextManager[None]],
        release: Callable[[str], object],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._accounts = accounts
        self._workspaces = workspaces
        self._quota = quota
        self._backend = backend
        self._renderer = backend if isinstance(backend, HtmlRenderer) else None
        self._trust = backend if isinstance(backend, CopyTrust) else None
        self._lock = lock
        self._release = release
        self._clock = clock
        self.shares_store = ShareStore(settings)

    def notebooks(self, course: str, student_id: str) -> NotebookList:
        """The student's notebooks in their workspace of ``course``, by path (see
        :func:`~nbhosting_core.studentfiles.list_notebooks`: at most ``MAX_NOTEBOOKS``, symlinks neither followed nor
        listed); none if they have no workspace there.

        Raises:
            NotFound: the student has no account here.
            InvalidInput: their workspace is not a plain folder.
        """
        course = validate_course(course)
        student_id = validate_student_id(student_id)
        with self._student(student_id, "notebooks", course, None) as account:
            return files.list_notebooks(account, course)

    def reset(self, course: str, notebook: str, student_id: str) -> Reset:
        """Replace the student's copy of ``notebook`` with the course's current version; theirs becomes a backup.

        Nothing is lost: their copy is moved (not copied) to a new backup first (see :mod:`.studentfiles`). The
        course's version is validated as for a first copy, before anything moves.

        Raises:
            InvalidInput, NotFound, InvalidNotebook: bad request, no such notebook, or a course file Jupyter
                cannot open (nothing moved).
            OverQuota: no room for the course's version (the backup is kept; open the notebook again to retry).
        """
        course, path, student_id = _valid(course, notebook, student_id)
        content = self._workspaces.read_course_notebook(course, validate_notebook_path(notebook))
        with self._student(student_id, "reset", course, path) as account:
            backup = files.move_to_backup(account, course, path, self._clock())
            copied = files.put_new(account, course, path, io.BytesIO(content))
            if copied and self._trust is not None:  # their running server may predate this version of the course
                self._trust.trust_copy(account, course, str(path), content)
        return Reset(notebook=str(path), backup=backup, copied=copied)

    def backups(self, course: str, notebook: str | None, student_id: str) -> list[Backup]:
        """The backups of the student's ``notebook`` (every notebook of ``course`` if None), oldest first."""
        course = validate_course(course)
        path = student_copy_path(validate_notebook_path(notebook)) if notebook is not None else None
        student_id = validate_student_id(student_id)
        with self._student(student_id, "backups", course, path) as account:
            return files.list_backups(account, course, path)

    def restore(self, course: str, notebook: str, student_id: str, backup: str) -> Reset:
        """Make ``backup`` of ``notebook`` the student's copy again; the current copy becomes a backup first.

        The restored backup stays listed (it is copied, not moved).

        Raises:
            InvalidInput: bad request, or the backup is not a plain file.
            NotFound: no such backup.
            OverQuota: no room for the copy (the current copy is then a backup: restore again once there is room).
        """
        course, path, student_id = _valid(course, notebook, student_id)
        files.validate_backup_id(backup)
        with self._student(student_id, "restore", course, path) as account:
            where = files.backup_file(account, course, path, backup)
            with files.open_file(account, where, "backup") as source:
                moved = files.move_to_backup(account, course, path, self._clock())
                copied = files.put_new(account, course, path, source)
        return Reset(notebook=str(path), backup=moved, copied=copied)

    def download_notebook(self, course: str, notebook: str, student_id: str) -> Download:
        """The student's copy of ``notebook``, as it is on disk.

        Raises:
            InvalidInput: bad request, or their copy is not a plain file (a symlink is never followed).
            NotFound: they have no copy of it.
        """
        course, path, student_id = _valid(course, notebook, student_id)
        with (
            self._student(student_id, "download", course, path) as account,
            files.open_file(account, (course, *path.parts), "notebook") as source,
        ):
            data = source.read(self._settings.workspace_quota + 1)
        if len(data) > self._settings.workspace_quota:
            raise NotFound("This notebook is larger than your quota: it cannot be downloaded.")
        return Download(
            filename=path.name, media_type="application/x-ipynb+json", size=len(data), stream=io.BytesIO(data)
        )

    def download_workspace(self, course: str, student_id: str) -> Download:
        """A zip of the student's whole workspace of ``course`` (plain files and folders; links left out).

        Built in a temporary file; refused when the workspace holds more than ``workspace_quota`` bytes.

        Raises:
            NotFound: no workspace for this course.
            OverQuota: the workspace is larger than the quota.
        """
        course = validate_course(course)
        student_id = validate_student_id(student_id)
        with (
            self._student(student_id, "download-workspace", course, None) as account,
            self._one_at_a_time(account.user),
        ):
            stream, size, skipped = files.zip_workspace(account, course, limit=self._settings.workspace_quota)
        if skipped:
            log.info("download-workspace user=%s course=%s: %d links or others left out", account.user, course, skipped)
        return Download(filename=f"{course}.zip", media_type="application/zip", size=size, stream=stream)

    def share(self, course: str, notebook: str, student_id: str) -> Share:
        """Render the student's ``notebook`` to HTML in their running server and publish it behind a link.

        Sharing the same notebook again updates the page and keeps its link.

        Raises:
            NotFound: no copy of the notebook, or the student's server for the course is not running (open the
                notebook first: it is rendered there, as the student).
            InvalidInput: the notebook could not be rendered.
        """
        course, path, student_id = _valid(course, notebook, student_id)
        account = self._accounts.find(student_id)
        server = self._backend.get(account, course) if account is not None else None
        if account is None or self._renderer is None or server is None or server.state is not ServerState.RUNNING:
            raise NotFound(
                "Open this notebook first: it is rendered for sharing in your own notebook server.",
                log_detail=f"{student_id}: no running server for {course}",
            )
        if not self._workspaces.has_copy(account, course, path):  # by descriptor; what is there is rendered as them
            raise NotFound(f"There is no {str(path)!r} in your workspace.")
        # rendered without the student's lock (their launches need not wait for nbconvert), published under it
        with self._one_at_a_time(account.user):
            html = self._renderer.render_html(server, str(path), timeout=RENDER_TIMEOUT, max_bytes=MAX_PAGE)
        with self._student(student_id, "share", course, path, storage=False) as owner:
            return self.shares_store.put(owner.user, course, str(path), html, self._clock())

    def unshare(self, course: str, notebook: str, student_id: str) -> Share | None:
        """Revoke the share of ``notebook``: its page is deleted (its link answers 404); the share, or None."""
        course, path, student_id = _valid(course, notebook, student_id)
        with self._student(student_id, "unshare", course, path, storage=False) as account:
            return self.shares_store.remove(account.user, course, str(path))

    def shares(self, course: str | None, student_id: str) -> list[Share]:
        """The student's shares (of ``course`` only, unless None)."""
        course = validate_course(course) if course is not None else None
        student_id = validate_student_id(student_id)
        with self._student(student_id, "shares", course or "-", None, storage=False) as account:
            return [s for s in self.shares_store.of(account.user) if course is None or s.course == course]

    @contextmanager
    def _one_at_a_time(self, user: str) -> Iterator[None]:
        """One long operation (a rendering, a zip) per student at a time: the helper's workers serve everyone."""
        path = self._settings.locks_dir / f"work-{user}.lock"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise Busy(
                    "Another of your requests is being prepared; please retry in a moment.",
                    retry_after=5.0,
                    why="student-busy",
                ) from exc
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _student(
        self,
        student_id: str,
        op: str,
        course: str,
        path: PurePosixPath | None,
        *,
        storage: bool = True,
    ) -> Iterator[Account]:
        """The student's account, under their lock, with their storage ready (and released after); logged."""
        started = time.monotonic()
        account = self._accounts.find(student_id)
        if account is None:  # never made here: a student who never opened a notebook has nothing to act on
            raise NotFound("You have no notebooks here yet: open one from your course first.")
        outcome = "error"
        try:
            with self._lock(account.user):
                try:
                    if storage:
                        self._quota.prepare(account)
                    yield account
                    outcome = "ok"
                finally:
                    if storage:
                        self._release(account.user)
        except Exception as exc:
            outcome = getattr(exc, "reason", type(exc).__name__)
            raise
        finally:
            log.info(
                "%s user=%s course=%s notebook=%s -> %s in %.3fs",
                op,
                account.user,
                course,
                path if path is not None else "-",
                outcome,
                time.monotonic() - started,
            )


def _valid(course: str, notebook: str, student_id: str) -> tuple[str, PurePosixPath, str]:
    """The request, validated; the notebook as the student's copy is named (always ``.ipynb``: a Jupytext course
    file or a name without extension is copied so)."""
    path = student_copy_path(validate_notebook_path(notebook))
    return validate_course(course), path, validate_student_id(student_id)
