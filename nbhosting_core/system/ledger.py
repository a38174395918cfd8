"""This installation's ledger of its students' accounts: the next uid to give, how far it has read the account
databases, and every user of its prefix that may have lines there.

Choosing a free uid, and knowing that a new student has no line anywhere yet, must not cost a read of the whole
databases at each creation (useradd's search for a free uid took 30 s at 100,000 accounts). With the ledger they
cost a read of what /etc/passwd and /etc/group gained since the last creation, usually nothing:

* ``next_uid``: every uid of the range below it was given or is taken. A uid is never given twice, not even
  once its student was deleted (files may still be owned by it); the gid given is the uid.
* a :class:`~.userdb.Cursor` per database (passwd, group): what lies before it was read. What lies after it
  (lines added by another installation, by an admin) is read at the next creation, and any id of the range
  there raises ``next_uid``. A database rewritten since (useradd, userdel and vipw write a new file) is read all
  again, once (0.3 s at 100,000 accounts).
* ``users``: every user of the prefix with a line before the cursors. A student is entered, durably, *before*
  their first line is written; any other user of the prefix met while reading (an account made by useradd, by
  another installation) is entered too. So a user not in the ledger has no passwd or group line, hence no line
  at all (useradd, like nbhosting, writes passwd first), and a new student costs no search.

The ledger is one SQLite file (write-ahead log, every commit synced), root-only. Every method runs under both
locks: the installation's (``accounts.lock``) and the databases' (:meth:`~.userdb.UserDb.locked`).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .userdb import Cursor, UserDb

log = logging.getLogger(__name__)
READ = ("passwd", "group")  # where uids (gids) and users are read from
_NAME_AND_ID = re.compile(rb"^([^:\n]*):[^:\n]*:([0-9]*)", re.MULTILINE)  # name and uid (passwd) or gid (group)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, id INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (db TEXT PRIMARY KEY, inode INTEGER, size INTEGER, tail BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks (one INTEGER PRIMARY KEY CHECK (one = 1), next_uid INTEGER NOT NULL);
"""


@dataclass
class Seen:
    """What a stretch of passwd or group holds that matters to the ledger."""

    top: int | None = None  # the highest id of the range
    users: dict[str, int | None] = field(default_factory=dict)  # users of the prefix, with their id


def seen_in(region: bytes, *, prefix: str, uid_min: int, uid_max: int) -> Seen:
    """The highest id of the range, and the users of ``prefix``, in ``region``: lines of passwd or group (pure)."""
    seen = Seen()
    wanted = prefix.encode()
    for match in _NAME_AND_ID.finditer(region):
        name, digits = match.groups()
        number = int(digits) if digits else None
        if number is not None and uid_min <= number <= uid_max and (seen.top is None or number > seen.top):
            seen.top = number
        if name.startswith(wanted):
            seen.users.setdefault(name.decode("utf-8", "surrogateescape"), number)
    return seen


def next_uid(mark: int, top: int | None) -> int:
    """The uid to give next: the mark, unless an id at or above it is taken (then the one after the highest).

    Never below the mark: a uid given once stays given (pure).
    """
    return mark if top is None or top < mark else top + 1


class Ledger:
    """The ledger in the SQLite file ``path``, open until :meth:`close` (use it as a context manager)."""

    def __init__(self, path: Path, *, prefix: str, uid_min: int, uid_max: int) -> None:
        self.path = path
        self._prefix = prefix
        self._uid_min = uid_min
        self._uid_max = uid_max
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))  # WAL files copy its mode
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(_SCHEMA)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def knows(self, user: str) -> bool:
        """True if ``user`` may have lines in the databases."""
        return self._db.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone() is not None

    def catch_up(self, db: UserDb) -> int:
        """Read passwd and group past the cursors, enter the users of the prefix found there; return next_uid."""
        row = self._db.execute("SELECT next_uid FROM marks").fetchone()
        mark = int(row[0]) if row is not None else self._uid_min
        for database in READ:
            started = time.monotonic()
            saved = self._db.execute("SELECT inode, size, tail FROM cursors WHERE db = ?", (database,)).fetchone()
            data, start, _ = db.since(database, Cursor(*saved) if saved is not None else None)
            seen = seen_in(data, prefix=self._prefix, uid_min=self._uid_min, uid_max=self._uid_max)
            before = self._db.total_changes
            if seen.users:
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.executemany("INSERT OR IGNORE INTO users VALUES (?, ?)", seen.users.items())
            entered = self._db.total_changes - before
            raised = next_uid(mark, seen.top)
            if start == 0 or entered or raised != mark:
                log.info(
                    "read %s from byte %d (%d bytes): %d users of %s entered, next uid %d -> %d in %.3fs",
                    database,
                    start,
                    len(data),
                    entered,
                    self._prefix,
                    mark,
                    raised,
                    time.monotonic() - started,
                )
            mark = raised
        return mark

    def enter(self, user: str, uid: int) -> None:
        """Record, durably, that ``user`` is about to get lines (call it before writing the first)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR IGNORE INTO users VALUES (?, ?)", (user, uid))

    def commit(self, db: UserDb, mark: int) -> None:
        """Record ``mark`` as the next uid, and the databases' current ends (call it once the lines are written)."""
        cursors = [(database, *_fields(db.cursor(database))) for database in READ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?)", cursors)
            self._db.execute("INSERT OR REPLACE INTO marks VALUES (1, ?)", (mark,))


def _fields(cursor: Cursor) -> tuple[int, int, bytes]:
    return cursor.inode, cursor.size, cursor.tail
