"""Students' workspaces: DATA_ROOT/students/<user>/<course>/, one private copy per notebook.

A course notebook is copied on first access only; an existing student copy is never overwritten. The
copy is made by root inside a folder the student owns, so every step opens folders relative to their
parent with O_NOFOLLOW: a symlink planted by a student can never make root write elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import InvalidInput, NotFound, OverQuota
from .models import Account
from .naming import NOTEBOOK_SUFFIXES, notebook_candidates, student_copy_path
from .notebooks import notebook_bytes
from .settings import Settings

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Workspaces:
    """Finds course notebooks and copies them into students' workspaces."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def course_dir(self, course: str) -> Path:
        """The folder of ``course``.

        Raises:
            NotFound: when there is no such course.
        """
        path = self._settings.courses_dir / course
        if not path.is_dir():
            raise NotFound(f"There is no course named {course!r} on this server.")
        return path

    def course_notebook(self, course: str, notebook: PurePosixPath) -> Path:
        """The course's own file for ``notebook``, checked to stay inside the course.

        The first of :func:`~nbhosting_core.naming.notebook_candidates` that exists: the file named, else
        ``<name>.ipynb``, ``<name>.md``, ``<name>.py``.

        Raises:
            NotFound: no such course or notebook.
            InvalidInput: the path leads outside the course (a symlink).
        """
        root = self.course_dir(course).resolve()
        for candidate in notebook_candidates(notebook):
            resolved = root.joinpath(*candidate.parts).resolve()
            if not resolved.is_relative_to(root):
                raise InvalidInput(f"The notebook {str(candidate)!r} leads outside course {course!r}.")
            if resolved.is_file():
                return resolved
        raise NotFound(f"Course {course!r} has no notebook {str(notebook)!r}.")

    def workspace(self, account: Account, course: str) -> Path:
        """The folder mounted as the Jupyter root of (course, student)."""
        return account.home / course

    def read_course_notebook(self, course: str, notebook: PurePosixPath) -> bytes:
        """The course's notebook, validated, as the ``.ipynb`` a student receives (a Jupytext ``.md`` or ``.py``
        converted: see :func:`~nbhosting_core.notebooks.notebook_bytes`).

        Raises:
            NotFound, InvalidInput: see :meth:`course_notebook`.
            InvalidNotebook: the file is not a valid notebook.
        """
        source = self.course_notebook(course, notebook)
        suffix = next((s for s in NOTEBOOK_SUFFIXES if source.name.endswith(s)), ".ipynb")
        return notebook_bytes(source.read_bytes(), suffix=suffix, name=str(notebook))

    def has_copy(self, account: Account, course: str, notebook: PurePosixPath) -> bool:
        """True if the student already has something where their copy of ``notebook`` goes (its ``.ipynb``).

        Walked by descriptor with ``O_NOFOLLOW``: a symlink the student planted in a folder of the path is
        never followed (it is "something there": their copy is left alone).
        """
        notebook = student_copy_path(notebook)
        parts = (course, *notebook.parts[:-1])
        try:
            fd = os.open(account.home, DIR_FLAGS)
        except FileNotFoundError:
            return False
        try:
            for part in parts:
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    return False
                except OSError:
                    return True  # not a plain folder: ensure_copy refuses it, never writes through it
                os.close(fd)
                fd = child
            return _exists(notebook.parts[-1], fd)
        finally:
            os.close(fd)

    def ensure_copy(self, account: Account, course: str, notebook: PurePosixPath, content: bytes | None = None) -> bool:
        """Give the student their own copy of ``notebook`` unless they have one; True if copied now.

        The copy is always an ``.ipynb`` (:func:`~nbhosting_core.naming.student_copy_path`), whatever the course file.

        ``content``: the course notebook as :meth:`read_course_notebook` returned it, if already read.

        Raises:
            NotFound, InvalidInput: see :meth:`course_notebook`.
            InvalidNotebook: the course's file is not a valid notebook (nothing is copied).
        """
        return self.copy_if_missing(account, course, notebook, content) is not None

    def copy_if_missing(
        self, account: Account, course: str, notebook: PurePosixPath, content: bytes | None = None
    ) -> bytes | None:
        """:meth:`ensure_copy`, returning what was copied now (the bytes the student's copy holds), else None."""
        self.course_notebook(course, notebook)  # NotFound before any folder is made
        copy = student_copy_path(notebook)
        with _opened_dirs(account, (course, *copy.parts[:-1])) as dir_fd:
            name = copy.parts[-1]
            if _exists(name, dir_fd):
                return None
            if content is None:
                content = self.read_course_notebook(course, notebook)
            return content if _write_new(dir_fd, name, content, account) else None


@contextlib.contextmanager
def _opened_dirs(account: Account, parts: tuple[str, ...]) -> Iterator[int]:
    """Open (creating them as the student) the folders ``parts`` below the student's home."""
    fd = os.open(account.home, DIR_FLAGS)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chown(part, account.uid, account.gid, dir_fd=fd, follow_symlinks=False)
            except FileExistsError:
                pass
            except OSError as exc:
                raise _full(exc, account) from exc
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise InvalidInput(
                    f"Cannot use {part!r} in the workspace of {account.user}: it is not a plain folder."
                ) from exc
            if account.uid != 0 and os.fstat(child).st_uid == 0:
                # made by root here and cut before the chown above (a crash): the student could not write in it
                os.fchown(child, account.uid, account.gid)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _write_new(dir_fd: int, name: str, data: bytes | BinaryIO, account: Account) -> bool:
    """Write ``data`` (bytes, or a file read to its end) as ``name`` atomically, never replacing what is there;
    True if written."""
    tmp = f".nbh-copy-{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    except OSError as exc:
        raise _full(exc, account) from exc
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                shutil.copyfileobj(data, out)
            os.fchown(out.fileno(), account.uid, account.gid)
        try:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            return False  # the student (or a concurrent launch) got there first: keep theirs
        return True
    except OSError as exc:
        raise _full(exc, account) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)


def _full(exc: OSError, account: Account) -> Exception:
    """A workspace that is full (its quota reached) says so; any other error stays what it is."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OverQuota(
            "Your workspace is full: remove some files from your notebook server to make room (your work is kept).",
            log_detail=f"{account.user}: {exc}",
        )
    return exc
