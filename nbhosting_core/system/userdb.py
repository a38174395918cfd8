"""The host's account databases (/etc/passwd, group, shadow, gshadow, subuid, subgid), as nbhosting writes them.

nbhosting adds its students' lines itself rather than running useradd, groupadd or usermod: those tools read,
check and rewrite whole files under the lock, which at 100,000 accounts costs 0.3 s to 0.7 s per tool even
with the ids given (and ~30 s for useradd's own search for a free uid). Here:

* every change is made under shadow-utils' own lock, the write lock ``lckpwdf(3)`` takes on /etc/.pwd.lock
  (taken as an open-file-description lock, as systemd-sysusers does, so that threads exclude each other too):
  useradd, userdel, usermod, passwd, vipw and systemd-sysusers never interleave with it;
* a line is added by one ``write`` on an ``O_APPEND`` descriptor, then ``fsync``: no file is truncated or
  replaced, so each keeps its inode, owner, mode and security label, and a crash leaves at worst some of a
  student's lines (the next ``ensure`` adds the others). A torn last line (a power loss during a write) gets a
  newline before the next line, so it never swallows it;
* a line is found by searching the mapped file for ``\\n<name>:`` at C speed (glibc parses every entry instead:
  12 ms per lookup at 100,000 accounts), or read at the offset where it was last seen (:class:`PasswdHints`);
* nscd, when it runs, is told to drop its passwd and group caches (as shadow-utils does).

userdel removes these lines as it removes useradd's (subordinate ids included).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import shutil
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .runner import CommandRunner

log = logging.getLogger(__name__)
ETC = Path("/etc")
DATABASES = ("passwd", "group", "shadow", "gshadow", "subuid", "subgid")
NOLOGIN = "/usr/sbin/nologin"
GECOS = "nbhosting student"
LOCK_TIMEOUT = 15.0  # as long as lckpwdf(3) waits
NSCD_SOCKET = Path("/var/run/nscd/socket")
TAIL = 64  # bytes before a cursor that must be unchanged for the file to count as only appended to
# struct flock (x86-64, aarch64): l_type, l_whence, l_start, l_len, l_pid (0 for open-file-description locks)
_WRITE_LOCK = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)


# ----------------------------------------------------------------------------------------- lines (pure)


def student_lines(user: str, uid: int, gid: int, home: Path, subids: tuple[int, int], day: int) -> dict[str, str]:
    """The six lines of a student's account (no password, no login shell), by database, without newlines.

    ``subids``: the (first, count) subordinate range (the same for uids and gids); ``day``: days since the
    epoch (shadow's date of the last password change).

    Raises:
        ValueError: a name or home that cannot stand in a colon-separated line.
    """
    for field in (user, str(home)):
        if not field or any(c in field for c in ":\n\r\0"):
            raise ValueError(f"{field!r} cannot stand in an account line")
    first, count = subids
    return {
        "passwd": f"{user}:x:{uid}:{gid}:{GECOS}:{home}:{NOLOGIN}",
        "group": f"{user}:x:{gid}:",
        "shadow": f"{user}:!:{day}:0:99999:7:::",
        "gshadow": f"{user}:!::",
        "subuid": f"{user}:{first}:{count}",
        "subgid": f"{user}:{first}:{count}",
    }


def days_since_epoch(now: float) -> int:
    """Shadow's dates: whole days since 1970-01-01 (UTC)."""
    return int(now // 86400)


@dataclass(frozen=True)
class Entry:
    """One line of a database: where it starts in the file, and its colon-separated fields."""

    offset: int
    fields: tuple[str, ...]

    @property
    def name(self) -> str:
        """The first field: the user's or group's name."""
        return self.fields[0]

    def number(self, index: int = 2) -> int | None:
        """Field ``index`` as a number, or None; the default is the uid in passwd, the gid in group."""
        value = self.fields[index] if len(self.fields) > index else ""
        return int(value) if value.isascii() and value.isdigit() else None


def parse_line(line: bytes, offset: int = 0) -> Entry:
    """The fields of one line (without its newline); bytes that are not UTF-8 are kept, escaped (pure)."""
    return Entry(offset, tuple(line.decode("utf-8", "surrogateescape").split(":")))


@dataclass(frozen=True)
class Cursor:
    """How far a database was read: its inode, its size then, and the bytes just before that size.

    The file was only appended to since if it has the same inode, is at least as long, and still holds the
    same bytes before that size: anything else (useradd, userdel and vipw write a new file) means reading it
    all again.
    """

    inode: int
    size: int
    tail: bytes


# -------------------------------------------------------------------------------------- the databases


class UserDb:
    """The account databases of one root: ``/etc`` on a host (a throwaway folder in tests and benchmarks)."""

    def __init__(self, etc: Path = ETC) -> None:
        self.etc = etc

    def path(self, database: str) -> Path:
        """The file of ``database`` (one of :data:`DATABASES`)."""
        if database not in DATABASES:
            raise ValueError(f"unknown account database {database!r}")
        return self.etc / database

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold shadow-utils' lock on the databases (what ``lckpwdf(3)`` takes) for the block.

        Raises:
            TimeoutError: another program held it for ``timeout`` seconds.
        """
        fd = os.open(self.etc / ".pwd.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _WRITE_LOCK)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.etc / '.pwd.lock'} stayed locked for {timeout:.0f} s")
                time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # closing the description releases the lock

    def find(self, database: str, name: str) -> Entry | None:
        """The first line of ``name`` in ``database`` (as glibc would find it), or None."""
        needle = f"{name}:".encode()
        with open(self.path(database), "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                return None
            with mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as data:
                if data[: len(needle)] == needle:
                    start = 0
                else:
                    found = data.find(b"\n" + needle)
                    if found < 0:
                        return None
                    start = found + 1
                end = data.find(b"\n", start)
                return parse_line(data[start : end if end >= 0 else len(data)], start)

    def entry_at(self, database: str, offset: int, name: str) -> Entry | None:
        """The line of ``name`` if one starts at ``offset`` of ``database`` (a whole line), else None."""
        needle = f"{name}:".encode()
        fd = os.open(self.path(database), os.O_RDONLY | os.O_CLOEXEC)
        try:
            before = os.pread(fd, 1, offset - 1) if offset > 0 else b"\n"
            data = os.pread(fd, 4096, offset)
        finally:
            os.close(fd)
        end = data.find(b"\n")
        if before != b"\n" or not data.startswith(needle) or end < 0:
            return None
        return parse_line(data[:end], offset)

    def append(self, database: str, line: str) -> int:
        """Add ``line`` at the end of ``database`` (one write, then fsync); return the offset where it starts.

        Call it under :meth:`locked`. If the file does not end with a newline (a torn last line), one is
        written first, so the torn line stays alone on its line.
        """
        fd = os.open(self.path(database), os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            size = os.fstat(fd).st_size
            data = line.encode() + b"\n"
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                log.warning("%s does not end with a newline (a torn line?): adding one", self.path(database))
                data, size = b"\n" + data, size + 1
            os.write(fd, data)
            os.fsync(fd)
            return size
        finally:
            os.close(fd)

    def remove(self, database: str, names: set[str]) -> list[str]:
        """Drop every line of ``names`` from ``database``; return the names whose lines went.

        Call it under :meth:`locked`. The file is written anew beside itself (same owner and mode), synced, then
        renamed over the old one, as useradd and userdel do: a crash leaves the old file or the new one, whole.
        Meant for files nbhosting keeps short (/etc/subuid, /etc/subgid: see :mod:`.subids`).
        """
        path = self.path(database)
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            lines = file.read().splitlines(keepends=True)
        kept: list[bytes] = []
        gone: set[str] = set()
        for line in lines:
            name = line.split(b":", 1)[0].decode("utf-8", "surrogateescape")
            if name in names:
                gone.add(name)
            else:
                kept.append(line)
        if not gone:
            return []
        tmp = path.with_name(f".{path.name}.nbhosting-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            os.fchown(fd, info.st_uid, info.st_gid)
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
            out.write(b"".join(kept))
            out.flush()
            os.fsync(fd)
        os.replace(tmp, path)
        return sorted(gone)

    def cursor(self, database: str) -> Cursor:
        """Where ``database`` ends now (see :class:`Cursor`)."""
        fd = os.open(self.path(database), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return _cursor(fd, os.fstat(fd))
        finally:
            os.close(fd)

    def since(self, database: str, cursor: Cursor | None) -> tuple[bytes, int, Cursor]:
        """What ``database`` holds past ``cursor``: (bytes, the offset they start at, the new cursor).

        All of the file (offset 0) when it was not only appended to since ``cursor`` was taken.
        """
        fd = os.open(self.path(database), os.O_RDONLY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            start = 0
            if (
                cursor is not None
                and cursor.inode == info.st_ino
                and cursor.size <= info.st_size
                and cursor.tail.endswith(b"\n")
                and os.pread(fd, len(cursor.tail), cursor.size - len(cursor.tail)) == cursor.tail
            ):
                start = cursor.size
            data = os.pread(fd, info.st_size - start, start) if info.st_size > start else b""
            return data, start, _cursor(fd, info)
        finally:
            os.close(fd)


def _cursor(fd: int, info: os.stat_result) -> Cursor:
    return Cursor(info.st_ino, info.st_size, os.pread(fd, min(TAIL, info.st_size), max(0, info.st_size - TAIL)))


def invalidate_caches(runner: CommandRunner, socket: Path = NSCD_SOCKET) -> bool:
    """Tell nscd, if it runs, to forget its passwd and group entries; True if it was told."""
    nscd = shutil.which("nscd")
    if nscd is None or not socket.exists():
        return False
    for database in ("passwd", "group"):
        runner.run([nscd, "-i", database], timeout=10)
    return True


class PasswdHints:
    """Where each student's line was last seen in /etc/passwd: 8 bytes per uid of the range, in one sparse file.

    Only a hint: a line is always read back and checked at the offset (:meth:`UserDb.entry_at`). The file is a
    cache (keep it under RUN_DIR): lost, each student's line is searched for once more.
    """

    def __init__(self, path: Path, uid_min: int, uid_max: int) -> None:
        self.path = path
        self._uid_min = uid_min
        self._uid_max = uid_max

    def get(self, uid: int) -> int | None:
        """The offset last seen for ``uid``, or None."""
        if not self._uid_min <= uid <= self._uid_max:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            data = os.pread(fd, 8, (uid - self._uid_min) * 8)
        finally:
            os.close(fd)
        stored = int.from_bytes(data, "little") if len(data) == 8 else 0
        return stored - 1 if stored else None  # 0: a hole, nothing stored

    def put(self, uid: int, offset: int) -> None:
        """Remember ``offset`` for ``uid``."""
        if not self._uid_min <= uid <= self._uid_max:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.pwrite(fd, (offset + 1).to_bytes(8, "little"), (uid - self._uid_min) * 8)
        finally:
            os.close(fd)
