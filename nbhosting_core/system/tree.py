"""Folders root prepares for students, handled by file descriptor so that no symlink is ever followed.

A student owns what is below their home and their socket folder: a path there can change between two
system calls. Everything here opens with ``O_NOFOLLOW`` and acts on the descriptor (``fchown``, ``fchmod``,
``openat``), never on a path that was checked before.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def ensure_dir(path: Path, uid: int, gid: int, mode: int) -> None:
    """Make ``path`` (parents as root-owned 0755 if missing) a real folder owned by uid:gid with ``mode``.

    The last component must not be a symlink (refused with OSError ELOOP/ENOTDIR): its owner and mode are
    set through the opened descriptor. Use it only where the parent folder is root's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = os.open(path, DIR_FLAGS)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """chown ``root`` and everything below it to uid:gid, walking by descriptor (never following a symlink)."""
    fd = os.open(root, DIR_FLAGS)
    try:
        _chown_below(fd, uid, gid)
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def _chown_below(dir_fd: int, uid: int, gid: int) -> None:
    for entry in os.scandir(dir_fd):
        info = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            try:
                child = os.open(entry.name, DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue  # swapped for something else meanwhile: leave it
            try:
                _chown_below(child, uid, gid)
                os.fchown(child, uid, gid)
            finally:
                os.close(child)
        else:
            os.chown(entry.name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def readable_by_all(checkout: Path) -> None:
    """Make a checkout readable by every user, whatever the umask git ran with: students' containers mount its
    folders, and the web app reads its table of contents. Symlinks are never followed; nothing becomes writable."""
    os.chmod(checkout, os.stat(checkout).st_mode | 0o755)
    for folder, dirs, files in os.walk(checkout, followlinks=False):
        for name in dirs:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode) and info.st_mode & 0o555 != 0o555:
                os.chmod(path, info.st_mode | 0o555)
        for name in files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_mode & 0o444 != 0o444:
                os.chmod(path, info.st_mode | 0o444)


def write_atomic(folder: Path, name: str, data: bytes, *, mode: int, gid: int = -1) -> None:
    """Write ``folder/name`` (a folder of root's) whole or not at all: a new file (never one that is there, never
    through a link) with ``mode`` and, unless -1, group ``gid``, renamed over the old one."""
    tmp = folder / f".{name}.{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fchown(out.fileno(), -1, gid)
            os.fchmod(out.fileno(), mode)
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
