"""Root's file work in a student's home, by descriptor: backups, copies, reads, a list of a workspace's notebooks
and a zip of a workspace.

Everything below a student's home is theirs and may change between two system calls, so nothing here uses a path
that was checked before: folders are opened one by one relative to their parent with ``O_NOFOLLOW``, files with
``O_NOFOLLOW`` and checked through their descriptor (a plain file), and new files are made under a random name and
hard-linked to theirs (never replacing anything). A symlink a student plants is never followed: it is moved as a
link, or left out.

Backups live in the student's home, outside every workspace (which is all their container mounts):
``<home>/.nbhosting/backups/<course>/<notebook path>/<UTC time>.ipynb``. They count in the student's quota (the
home is their filesystem), nothing they run can delete them by mistake, and nothing here ever overwrites one.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidInput, NotFound, OverQuota
from .models import Account, WorkspaceSummary
from .naming import validate_notebook_path
from .workspaces import DIR_FLAGS, _exists, _full, _opened_dirs, _write_new

#: the folder of nbhosting's own things in a student's home (no course slug starts with a dot)
HIDDEN = ".nbhosting"
BACKUPS = "backups"
BACKUP_RE = re.compile(r"^\d{8}T\d{6}Z(-\d{1,3})?$")
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: folders a workspace's zip leaves out: Jupyter's own copies
SKIPPED_DIRS = frozenset({".ipynb_checkpoints"})
MAX_DEPTH = 32


class Backup(BaseModel):
    """One backup of a student's notebook: ``id`` is its UTC time (``20261126T005500Z``, ``-2`` if two in a
    second)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notebook: str
    id: str
    size: int
    created: float  # epoch seconds (the backup's mtime: when the student's copy was last written)


def backup_id(now: float) -> str:
    """The id of a backup made at ``now`` (pure)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def validate_backup_id(value: str) -> str:
    """Return ``value`` if it is a backup's id, else raise InvalidInput."""
    if not BACKUP_RE.match(value):
        raise InvalidInput(f"Invalid backup {value[:40]!r}: a backup is named by its time, e.g. 20260131T120000Z.")
    return value


@contextlib.contextmanager
def _walk(account: Account, parts: tuple[str, ...], *, create: bool) -> Iterator[int]:
    """The folder ``parts`` below the student's home, opened by descriptor (made as the student if ``create``).

    Raises:
        NotFound: it does not exist (without ``create``).
        InvalidInput: a part is not a plain folder (a symlink, a file).
    """
    if create:
        with _opened_dirs(account, parts) as fd:
            yield fd
        return
    fd = os.open(account.home, DIR_FLAGS)
    try:
        for part in parts:
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError as exc:
                raise NotFound(f"There is no {part!r} in your workspace.") from exc
            except OSError as exc:
                raise InvalidInput(f"Cannot use {part!r} in your workspace: it is not a plain folder.") from exc
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _backup_parts(course: str, notebook: PurePosixPath) -> tuple[str, ...]:
    return (HIDDEN, BACKUPS, course, *notebook.parts)


def move_to_backup(account: Account, course: str, notebook: PurePosixPath, now: float) -> Backup | None:
    """Move the student's copy of ``notebook`` (whatever it is but a folder) to a new backup; None if absent.

    Raises:
        InvalidInput: a folder is where the notebook should be.
        OverQuota: no room left for a backup's folders.
    """
    with _walk(account, (course, *notebook.parts[:-1]), create=True) as src:
        name = notebook.parts[-1]
        try:
            info = os.stat(name, dir_fd=src, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInput(f"{str(notebook)!r} in your workspace is a folder, not a notebook.")
        with _walk(account, _backup_parts(course, notebook), create=True) as dst:
            base = backup_id(now)
            for n in range(1, 1000):
                candidate = base if n == 1 else f"{base}-{n}"
                try:  # a hard link of the entry itself (a symlink stays a symlink), never replacing anything
                    os.link(name, f"{candidate}.ipynb", src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise _full(exc, account) from exc
                os.unlink(name, dir_fd=src)
                return Backup(notebook=str(notebook), id=candidate, size=info.st_size, created=info.st_mtime)
    raise InvalidInput(f"Too many backups of {str(notebook)!r} in one second.")


def list_backups(account: Account, course: str, notebook: PurePosixPath | None) -> list[Backup]:
    """The backups of ``notebook`` (of every notebook of ``course`` if None), oldest first."""
    parts = _backup_parts(course, notebook) if notebook is not None else (HIDDEN, BACKUPS, course)
    try:
        with _walk(account, parts, create=False) as fd:
            found = list(_backups_below(fd, notebook or PurePosixPath(), notebook is not None, 0))
    except NotFound:
        return []
    return sorted(found, key=lambda b: (b.notebook, b.id))


def _backups_below(fd: int, here: PurePosixPath, is_notebook: bool, depth: int) -> Iterator[Backup]:
    for entry in os.scandir(fd):
        info = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
        stem = entry.name.removesuffix(".ipynb")
        if is_notebook and stat.S_ISREG(info.st_mode) and BACKUP_RE.match(stem) and entry.name.endswith(".ipynb"):
            yield Backup(notebook=str(here), id=stem, size=info.st_size, created=info.st_mtime)
        elif stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
            try:
                child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue
            try:
                yield from _backups_below(child, here / entry.name, entry.name.endswith(".ipynb"), depth + 1)
            finally:
                os.close(child)


@contextlib.contextmanager
def open_file(account: Account, parts: tuple[str, ...], what: str) -> Iterator[BinaryIO]:
    """The plain file ``parts`` below the student's home, opened without following a symlink.

    Raises:
        NotFound: there is nothing there.
        InvalidInput: it is not a plain file (a symlink, a folder, a device...).
    """
    with _walk(account, parts[:-1], create=False) as dir_fd:
        try:
            fd = os.open(parts[-1], FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError as exc:
            raise NotFound(f"There is no {what} in your workspace.") from exc
        except OSError as exc:
            raise InvalidInput(f"Your {what} is not a plain file (a link?): it cannot be used.") from exc
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise InvalidInput(f"Your {what} is not a plain file: it cannot be used.")
        yield file


def backup_file(account: Account, course: str, notebook: PurePosixPath, backup: str) -> tuple[str, ...]:
    """Where backup ``backup`` of ``notebook`` is, below the student's home."""
    return (*_backup_parts(course, notebook), f"{validate_backup_id(backup)}.ipynb")


def put_new(account: Account, course: str, notebook: PurePosixPath, source: BinaryIO) -> bool:
    """Copy ``source`` to the student's ``notebook`` unless something is there already; True if copied."""
    with _walk(account, (course, *notebook.parts[:-1]), create=True) as dir_fd:
        name = notebook.parts[-1]
        if _exists(name, dir_fd):
            return False
        return _write_new(dir_fd, name, source, account)


def zip_workspace(account: Account, course: str, *, limit: int) -> tuple[BinaryIO, int, int]:
    """A zip of the workspace of ``course`` in a temporary file (rewound): (file, its size, entries left out).

    Plain files and folders only, walked by descriptor: symlinks, sockets and devices are left out (counted),
    never followed. Jupyter's checkpoints are left out too.

    Raises:
        NotFound: the student has no workspace for this course.
        OverQuota: the workspace holds more than ``limit`` bytes.
    """
    out = tempfile.TemporaryFile(prefix="nbh-zip-")  # noqa: SIM115 (handed to the caller, who closes it)
    state = {"read": 0, "skipped": 0}
    try:
        with (
            _walk(account, (course,), create=False) as fd,
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z,
        ):
            _zip_below(z, fd, PurePosixPath(course), state, limit, 0)
        size = out.tell()
        out.seek(0)
        return out, size, state["skipped"]
    except BaseException:
        out.close()
        raise


def _zip_below(z: zipfile.ZipFile, fd: int, here: PurePosixPath, state: dict[str, int], limit: int, depth: int) -> None:
    for entry in sorted(os.scandir(fd), key=lambda e: e.name):
        info = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            if entry.name in SKIPPED_DIRS or depth >= MAX_DEPTH:
                continue
            try:
                child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                state["skipped"] += 1
                continue
            try:
                _zip_below(z, child, here / entry.name, state, limit, depth + 1)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            try:
                file_fd = os.open(entry.name, FILE_FLAGS, dir_fd=fd)
            except OSError:  # swapped for a link meanwhile: left out
                state["skipped"] += 1
                continue
            with os.fdopen(file_fd, "rb") as src:
                real = os.fstat(src.fileno())
                if not stat.S_ISREG(real.st_mode):
                    state["skipped"] += 1
                    continue
                member = zipfile.ZipInfo(str(here / entry.name), time.gmtime(max(real.st_mtime, 315532800))[:6])
                member.external_attr = (stat.S_IMODE(real.st_mode) | stat.S_IFREG) << 16
                member.compress_type = zipfile.ZIP_DEFLATED
                with z.open(member, "w") as dst:
                    while chunk := src.read(1 << 20):  # counted as read: a file growing meanwhile stops at the limit
                        state["read"] += len(chunk)
                        if state["read"] > limit:
                            raise OverQuota(
                                "Your workspace is larger than your quota: it cannot be downloaded as one file.",
                                log_detail=f"over {limit} bytes",
                            )
                        dst.write(chunk)
        else:
            state["skipped"] += 1


#: what a walk of a workspace reads at most (entries), what an admin's summary lists (notebooks), and what a
#: student's list of their notebooks holds at most (entries, and bytes as JSON: the helper's answer is at most 1 MiB)
SUMMARY_ENTRIES = 20_000
SUMMARY_NOTEBOOKS = 100
MAX_NOTEBOOKS = 500
MAX_LISTED_BYTES = 768 * 1024


class NotebookFile(BaseModel):
    """One notebook of a student's workspace: its path in the course, its size and when it was last written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notebook: str = Field(max_length=1024)
    size: int = Field(ge=0)
    modified: float


class NotebookList(BaseModel):
    """A student's notebooks in their workspace of a course, by path; ``truncated``: there are more (or more
    entries than a walk reads) than listed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notebooks: list[NotebookFile] = Field(max_length=MAX_NOTEBOOKS)
    truncated: bool = False


def workspace_courses(account: Account, is_course: Callable[[str], bool]) -> list[str]:
    """The courses (names ``is_course`` accepts) the student has a workspace folder for, sorted; by descriptor."""
    try:
        with _walk(account, (), create=False) as fd:
            return sorted(
                entry.name
                for entry in os.scandir(fd)
                if is_course(entry.name) and stat.S_ISDIR(os.stat(entry.name, dir_fd=fd, follow_symlinks=False).st_mode)
            )
    except NotFound:
        return []


def list_notebooks(account: Account, course: str) -> NotebookList:
    """The student's notebooks (``.ipynb`` plain files whose path a launch accepts) in their workspace of ``course``,
    by path: at most :data:`MAX_NOTEBOOKS` (and :data:`MAX_LISTED_BYTES` as JSON), walked by descriptor (at most
    :data:`SUMMARY_ENTRIES` entries), hidden folders and Jupyter's checkpoints left out, symlinks neither followed nor
    listed. No workspace: none."""
    state = {"entries": 0}
    found: list[NotebookFile] = []
    try:
        with _walk(account, (course,), create=False) as fd:
            for path, info in _files_below(fd, PurePosixPath(), state, 0, hidden=False):
                if path.suffix == ".ipynb" and _launchable(str(path)):
                    found.append(NotebookFile(notebook=str(path), size=info.st_size, modified=info.st_mtime))
    except NotFound:
        return NotebookList(notebooks=[])
    found.sort(key=lambda n: n.notebook)
    listed, size = [], 0
    for n in found[:MAX_NOTEBOOKS]:
        size += len(n.model_dump_json().encode())  # a path of 1,024 characters may take 4 KiB as UTF-8
        if size > MAX_LISTED_BYTES:
            break
        listed.append(n)
    truncated = len(listed) < len(found) or state["entries"] >= SUMMARY_ENTRIES
    return NotebookList(notebooks=listed, truncated=truncated)


def _launchable(path: str) -> bool:
    """Whether ``path`` is one a student's pages accept (a name too long or with a control character is not)."""
    try:
        validate_notebook_path(path)
    except InvalidInput:
        return False
    return True


def summarize_workspace(account: Account, course: str) -> WorkspaceSummary:
    """What the workspace of ``course`` holds, walked by descriptor (symlinks neither followed nor counted),
    at most :data:`SUMMARY_ENTRIES` entries; Jupyter's checkpoints left out.

    Raises:
        NotFound: the student has no workspace for this course.
    """
    state = {"entries": 0}
    files, size, modified = 0, 0, 0.0
    notebooks: list[str] = []
    with _walk(account, (course,), create=False) as fd:
        for path, info in _files_below(fd, PurePosixPath(), state, 0, hidden=True):
            files += 1
            size += info.st_size
            modified = max(modified, info.st_mtime)
            if path.name.endswith(".ipynb"):
                notebooks.append(str(path))
    notebooks.sort()
    return WorkspaceSummary(
        course=course,
        notebooks=notebooks[:SUMMARY_NOTEBOOKS],
        notebook_count=len(notebooks),
        files=files,
        bytes=size,
        modified=modified or None,
        truncated=state["entries"] >= SUMMARY_ENTRIES,
    )


def _files_below(
    fd: int, here: PurePosixPath, state: dict[str, int], depth: int, *, hidden: bool
) -> Iterator[tuple[PurePosixPath, os.stat_result]]:
    """The plain files below the folder ``fd`` (``here``), by descriptor, while ``state["entries"]`` stays under
    :data:`SUMMARY_ENTRIES`: Jupyter's checkpoints (and, unless ``hidden``, names starting with a dot) left out."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if state["entries"] >= SUMMARY_ENTRIES:
                return
            state["entries"] += 1
            if not hidden and entry.name.startswith("."):
                continue
            try:
                info = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:  # gone meanwhile
                continue
            if stat.S_ISDIR(info.st_mode) and entry.name not in SKIPPED_DIRS and depth < MAX_DEPTH:
                try:
                    child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                except OSError:  # swapped for a link meanwhile: left out
                    continue
                try:
                    yield from _files_below(child, here / entry.name, state, depth + 1, hidden=hidden)
                finally:
                    os.close(child)
            elif stat.S_ISREG(info.st_mode):
                yield here / entry.name, info
