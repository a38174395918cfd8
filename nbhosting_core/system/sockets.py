"""Each server's socket folder: where its Jupyter listens, and the one path root and Caddy ever dial.

``RUN_DIR/jupyter/<key>/`` is a tiny tmpfs of its own (root's, mode 0711), so whatever a student writes there
stops at ``socket_dir_size`` and never fills the host's /run. Inside it:

* ``run/`` (the student's, 0700) is mounted into the container as ``/nbhosting/run``; Jupyter binds
  ``run/jupyter.sock`` there. The student can put anything in it, symlinks included.
* ``run/config/`` (root's, 0755) holds the Jupyter configuration root writes before each start
  (:func:`nbhosting_core.containers.jupyter_config`), while the folder is fresh and nothing runs in it.
* ``jupyter.sock`` (root's) is a hard link that root makes to Jupyter's socket once it has checked, through
  a descriptor opened with ``O_NOFOLLOW``, that it is a socket owned by the student. Readiness probes and Caddy
  dial only this link: a symlink planted in ``run/`` leads nowhere.

Caddy runs as its own user: Jupyter makes its socket 0660, and root gives the socket's inode Caddy's group through
the link (root's path: ``lchown``, nothing followed). The student still owns the inode and may take the group back,
which only cuts their own server off.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from ..naming import is_key
from .mounts import is_mount_point, mount_tmpfs, mounts, unmount
from .runner import CommandRunner
from .tree import DIR_FLAGS

SOCKET_NAME = "jupyter.sock"
INNER = "run"
CONFIG = "config"
_AT_EMPTY_PATH = 0x1000
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def _check_name(name: str) -> None:
    if "/" in name or name.startswith(".") or not name:
        raise ValueError(f"not a file name: {name!r}")


def _write_new(dir_fd: int, name: str, data: bytes) -> None:
    """Create ``name`` (root's, 0644) in the folder open as ``dir_fd`` with ``data``; never opens what is there."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o644)
        out.write(data)


def _link_fd(fd: int, target: Path) -> None:
    """Hard-link the file open as ``fd`` to ``target`` (linkat with AT_EMPTY_PATH: no path is followed)."""
    if _libc.linkat(fd, b"", _AT_FDCWD, os.fsencode(target), _AT_EMPTY_PATH) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))


class SocketDirs:
    """Prepares, links and clears the socket folders under ``RUN_DIR/jupyter``."""

    def __init__(self, root: Path, runner: CommandRunner, *, size: int, dial_group: int | None = None) -> None:
        self.root = root
        self._runner = runner
        self._size = size
        self._dial_group = dial_group  # the group that dials the sockets (Caddy's), or None (root alone)

    def folder(self, key: str) -> Path:
        """``RUN_DIR/jupyter/<key>``: root's tmpfs."""
        if not is_key(key):
            raise ValueError(f"not a server key: {key[:60]!r}")
        return self.root / key

    def inner(self, key: str) -> Path:
        """The student's folder, mounted into the container."""
        return self.folder(key) / INNER

    def link(self, key: str) -> Path:
        """Root's link to Jupyter's socket: the only path that is dialed."""
        return self.folder(key) / SOCKET_NAME

    def prepare(self, key: str, uid: int, gid: int) -> Path:
        """A fresh, empty socket folder for a server of ``uid``; returns the folder to mount in the container."""
        folder = self.folder(key)
        if is_mount_point(folder):
            unmount(folder, self._runner)
        folder.mkdir(mode=0o711, parents=True, exist_ok=True)
        mount_tmpfs(folder, self._runner, size=self._size, inodes=64)
        fd = os.open(folder, DIR_FLAGS)
        try:
            os.mkdir(INNER, 0o700, dir_fd=fd)
            inner = os.open(INNER, DIR_FLAGS, dir_fd=fd)
            try:
                os.fchown(inner, uid, gid)
                os.fchmod(inner, 0o700)
            finally:
                os.close(inner)
        finally:
            os.close(fd)
        return self.inner(key)

    def write_config(self, key: str, name: str, data: bytes) -> None:
        """Write ``run/config/<name>`` (root's, readable by all) into a socket folder just prepared.

        Called between :meth:`prepare` and the container's start: the folder is a fresh tmpfs that no process of
        the student's has seen yet. Still, nothing is followed: every step is made through descriptors, without
        following links, and files are created, never opened as they are.
        """
        _check_name(name)
        with self._config(key, create=True) as config:
            _write_new(config, name, data)

    def read_config(self, key: str, name: str, limit: int) -> bytes:
        """``run/config/<name>`` of a running server, as root wrote it: at most ``limit`` bytes.

        The student owns ``run/`` and may have swapped ``config`` for a folder of theirs: only root's folder is
        read, by descriptor, nothing followed, and only a plain file of root's in it.

        Raises:
            OSError: no such folder or file (the server stopped), or not root's.
        """
        _check_name(name)
        with self._config(key, create=False) as config:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=config)
            with os.fdopen(fd, "rb") as source:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                    raise OSError(errno.EPERM, "not root's file", name)
                return source.read(limit)

    def replace_config(self, key: str, name: str, data: bytes) -> None:
        """Replace ``run/config/<name>`` of a running server whole: a new file renamed over it (Jupyter reads
        either the old file or the new one, never half of one). Root's folder only, by descriptor.

        Raises:
            OSError: no such folder (the server stopped), not root's, or no room in the socket folder.
        """
        _check_name(name)
        with self._config(key, create=False) as config:
            tmp = f".{name}.{secrets.token_hex(6)}"
            try:
                _write_new(config, tmp, data)
                os.rename(tmp, name, src_dir_fd=config, dst_dir_fd=config)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=config)

    @contextlib.contextmanager
    def _config(self, key: str, *, create: bool) -> Iterator[int]:
        """Root's ``run/config`` folder of server ``key``, opened (made first if ``create``)."""
        inner = os.open(self.inner(key), DIR_FLAGS)
        try:
            if create:
                with contextlib.suppress(FileExistsError):  # made by an earlier file of this start
                    os.mkdir(CONFIG, 0o755, dir_fd=inner)
            config = os.open(CONFIG, DIR_FLAGS, dir_fd=inner)
            try:
                if os.fstat(config).st_uid != os.geteuid():
                    raise OSError(errno.EPERM, "the configuration folder is not root's", CONFIG)
                if create:
                    os.fchmod(config, 0o755)  # whatever the umask
                yield config
            finally:
                os.close(config)
        finally:
            os.close(inner)

    def verify_and_link(self, key: str, uid: int) -> Path | None:
        """Link Jupyter's socket for root and Caddy if it is a socket owned by ``uid``; the link, or None.

        Cheap when nothing changed (the link already names the socket's inode).
        """
        folder = self.folder(key)
        try:
            dir_fd = os.open(folder / INNER, DIR_FLAGS)
        except OSError:
            return None
        try:
            try:
                sock_fd = os.open(SOCKET_NAME, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError:
                return None
            try:
                info = os.fstat(sock_fd)
                if not stat.S_ISSOCK(info.st_mode) or info.st_uid != uid:
                    return None
                link = self.link(key)
                group = self._dial_group
                with contextlib.suppress(FileNotFoundError):
                    current = os.lstat(link)
                    if current.st_ino == info.st_ino and current.st_dev == info.st_dev:
                        if group is not None and current.st_gid != group:
                            os.chown(link, -1, group, follow_symlinks=False)  # root's link: nothing followed
                        return link
                # one name per thread: a launch's waiter and status probes of this server may check it at once
                tmp = folder / f".{SOCKET_NAME}.{os.getpid()}.{threading.get_ident()}"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                try:
                    _link_fd(sock_fd, tmp)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.EXDEV):
                        return None
                    raise
                if group is not None:
                    os.chown(tmp, -1, group, follow_symlinks=False)  # root's new link (lchown): Caddy may dial it
                os.replace(tmp, link)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # rename(2) leaves both names when another thread linked the same inode first
                return link
            finally:
                os.close(sock_fd)
        finally:
            os.close(dir_fd)

    def release(self, key: str) -> None:
        """Unmount and remove the socket folder of ``key`` (absent is fine)."""
        folder = self.folder(key)
        if is_mount_point(folder):
            unmount(folder, self._runner)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder)  # root's empty mount point once unmounted (never a student's files)

    def keys(self) -> list[str]:
        """Keys that have a socket folder."""
        if not self.root.is_dir():
            return []
        return sorted(name for name in os.listdir(self.root) if is_key(name))

    def mounted_keys(self) -> set[str]:
        """Keys whose socket folder is mounted."""
        return {m.target.name for m in mounts() if m.target.parent == self.root and is_key(m.target.name)}
