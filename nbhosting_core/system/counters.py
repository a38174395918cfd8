"""The door's counters, shared by every app process: one small SQLite file under RUN_DIR.

They hold what :mod:`nbhosting_core.throttle` decides from: each rate bucket's theoretical arrival time, and
the claims of the starts admitted and not finished yet. A decision must read, decide and write in one step that holds
across the app's worker processes: :meth:`SqliteCounters.settle` does it in one ``BEGIN IMMEDIATE`` transaction
(SQLite's write lock, which every process takes in turn; readers never block in WAL mode). Files with ``flock``
would need a lock per bucket taken in order, a folder scan to count the claims and another to forget old
buckets; one SQLite file does all three in one transaction, and only launches that would make something pay.

The file lives in ``RUN_DIR/throttle/`` (root-only): rates are about the last minutes and claims about the
last seconds, so nothing needs to survive a reboot, and on a tmpfs every commit is a memory write. Rows that no
longer say anything are deleted as decisions are made (a bucket whose time has passed is a full bucket; a claim
older than the start timeout counts no more), so the file stays as small as the set of recent senders. A
decision costs ~0.03 ms of SQLite on an open connection (each thread keeps one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import Busy
from ..throttle import Counts, Verdict
from .locks import file_lock

log = logging.getLogger(__name__)
#: how long a decision waits for another process's (sub-millisecond) transaction before giving up
LOCK_TIMEOUT = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS buckets_tat ON buckets (tat);
CREATE TABLE IF NOT EXISTS claims (server TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
"""


class Counters(Protocol):
    """Where the door keeps its counts; every method is atomic across threads and processes."""

    def settle(
        self, *, now: float, buckets: Sequence[str], claim: str, ttl: float, decide: Callable[[Counts], Verdict]
    ) -> Verdict:
        """Read the counts of ``buckets`` and the claims younger than ``ttl``, ``decide``, and if allowed store
        the buckets' new times and a claim on server ``claim`` at ``now``: all in one step (``decide`` runs
        under the lock: no other process decides meanwhile).

        Raises:
            Busy: the counters cannot be read or written now (``why`` "counters").
        """
        ...

    def release(self, claim: str) -> None:
        """Forget the claim on server ``claim``: it runs now (and is counted as such), or it will not run."""
        ...

    def counts(self, *, now: float, ttl: float) -> Counts:
        """What the counters hold now (for ``nbh doctor`` and tests)."""
        ...


class SqliteCounters:
    """:class:`Counters` in the SQLite file ``path`` (created root-only, in WAL mode, on first use).

    Each thread keeps its own connection open: closing the last connection to a WAL database checkpoints it
    (synced writes, ~1 ms), an open one commits in ~0.03 ms. A connection is opened again in a forked child, and
    when the file was replaced (its inode changed): no process ever writes to a file the others no longer see.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def settle(
        self, *, now: float, buckets: Sequence[str], claim: str, ttl: float, decide: Callable[[Counts], Verdict]
    ) -> Verdict:
        """See :meth:`Counters.settle`."""
        try:
            db = self._db()
            with _transaction(db):
                db.execute("DELETE FROM buckets WHERE tat <= ?", (now,))
                db.execute("DELETE FROM claims WHERE at <= ?", (now - ttl,))
                marks = ",".join("?" * len(buckets))
                query = f"SELECT name, tat FROM buckets WHERE name IN ({marks})"  # noqa: S608 - only placeholders
                tats = dict(db.execute(query, list(buckets)))
                claims = dict(db.execute("SELECT server, at FROM claims"))
                verdict = decide(Counts(tats=tats, claims=claims))
                if verdict.allowed:
                    db.executemany("INSERT OR REPLACE INTO buckets VALUES (?, ?)", list(verdict.tats.items()))
                    db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?)", (claim, now))
            return verdict
        except (sqlite3.Error, OSError) as exc:
            log.error("the door's counters in %s cannot be used: %s", self.path, exc)
            raise Busy(
                "Notebooks are busy right now; please try again in a moment.",
                retry_after=LOCK_TIMEOUT,
                why="counters",
                log_detail=f"{self.path}: {exc}",
            ) from exc

    def release(self, claim: str) -> None:
        """See :meth:`Counters.release`."""
        try:
            self._db().execute("DELETE FROM claims WHERE server = ?", (claim,))
        except (sqlite3.Error, OSError) as exc:  # it expires by itself after the start timeout
            log.warning("could not forget the claim of %s in %s: %s", claim, self.path, exc)

    def counts(self, *, now: float, ttl: float) -> Counts:
        """See :meth:`Counters.counts`."""
        if not self.path.exists():
            return Counts()
        db = self._db()
        tats = dict(db.execute("SELECT name, tat FROM buckets WHERE tat > ?", (now,)))
        claims = dict(db.execute("SELECT server, at FROM claims WHERE at > ?", (now - ttl,)))
        return Counts(tats=tats, claims=claims)

    def _db(self) -> sqlite3.Connection:
        """This thread's connection, opened (again) if there is none yet in this process, or the file changed."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid():
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) == held.inode:
                return held.db
            held.db.close()
        elif held is not None:
            _INHERITED.append(held.db)  # a parent's connection: never used, nor closed, in a forked child
        db = _open(self.path)
        st = os.stat(self.path)
        self._local.held = _Held(os.getpid(), (st.st_dev, st.st_ino), db)
        return db


@dataclass
class _Held:
    pid: int
    inode: tuple[int, int]
    db: sqlite3.Connection


#: connections inherited through fork(): kept referenced so that the child never closes what the parent uses
_INHERITED: list[sqlite3.Connection] = []


def _open(path: Path) -> sqlite3.Connection:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # root-only from the start; SQLite gives its -wal and -shm files the same mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    # autocommit (isolation_level None): transactions are written out, BEGIN IMMEDIATE first
    db = sqlite3.connect(path, timeout=LOCK_TIMEOUT, isolation_level=None)
    try:
        # one connection's set-up at a time, across threads and processes: connections that switched the new file
        # to WAL and made its tables together could meet SQLite's deadlock guard, "database is locked" at once,
        # not after LOCK_TIMEOUT (12 first launches at once on a fresh host: 1 run in ~20 refused one)
        with file_lock(path.with_name(f".{path.name}.setup.lock")):
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: a commit survives a crash of the app, not the host
            db.executescript(_SCHEMA)
    except sqlite3.Error:
        db.close()
        raise
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (the write lock, taken in turn by every process) ... ``COMMIT``, or rolled back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    finally:
        if db.in_transaction:  # the block raised: nothing of it is kept
            db.rollback()
