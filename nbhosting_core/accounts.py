"""Students' Linux accounts: created on first sight, never changed afterwards.

Each student gets a user named from a hash of their id (see :func:`naming.user_name`), a uid in the
students' range (its own group, same number), no password and no login shell, a home under
DATA_ROOT/students, and a narrow subuid/subgid range derived from the uid (so ranges never overlap and a host
holds far more than 65,536 students).

Accounts cost the same with 100,000 students on the host as with none: nbhosting writes the lines itself,
appended under shadow-utils' lock (:mod:`.system.userdb`), takes uids from a ledger that reads only what the
databases gained since the last creation (:mod:`.system.ledger`), and finds an account from its home and one
read of its /etc/passwd line at a remembered offset, not through glibc's scan of every entry.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Protocol

from .errors import AccountUnavailable
from .models import Account
from .naming import subid_range, user_name
from .settings import Settings
from .system.ledger import Ledger
from .system.locks import file_lock
from .system.runner import CommandRunner
from .system.tree import chown_tree, ensure_dir
from .system.userdb import (
    DATABASES,
    ETC,
    Entry,
    PasswdHints,
    UserDb,
    days_since_epoch,
    invalidate_caches,
    student_lines,
)

log = logging.getLogger(__name__)


class AccountStore(Protocol):
    """Finds and creates students' accounts (the real one makes Linux users; tests may use a fake)."""

    def find(self, student_id: str) -> Account | None:
        """The complete account of ``student_id``, or None."""
        ...

    def ensure(self, student_id: str) -> Account:
        """The account of ``student_id``, created (or its creation finished) if needed."""
        ...


class Accounts:
    """Creates and finds students' Linux accounts (needs root to create).

    Args:
        settings: the students' prefix, uid range, subordinate ids and folders.
        runner: runs host commands (nscd).
        etc: where the account databases are; a throwaway folder in tests and benchmarks.
    """

    def __init__(self, settings: Settings, runner: CommandRunner, *, etc: Path = ETC) -> None:
        self._settings = settings
        self._runner = runner
        self._db = UserDb(etc)
        self._hints = PasswdHints(settings.run_dir / "accounts" / "passwd-offsets", settings.uid_min, settings.uid_max)
        self._ledger_path = settings.data_root / "accounts.sqlite"

    def home_of(self, user: str) -> Path:
        """The home folder of ``user``."""
        return self._settings.students_dir / user

    def find(self, student_id: str) -> Account | None:
        """The account of ``student_id`` if it is complete (its home is the student's), else None."""
        user = user_name(student_id, self._settings.user_prefix)
        home = self.home_of(user)
        try:
            info = os.lstat(home)
        except FileNotFoundError:
            return None  # never made, or a creation was interrupted: ensure() finishes it
        if not stat.S_ISDIR(info.st_mode):
            return None
        entry = self._passwd_entry(user, info.st_uid)
        gid = entry.number(3) if entry is not None and len(entry.fields) == 7 else None
        if entry is None or gid is None or entry.number() != info.st_uid:
            # deleted since, or cut between making the home and giving it to the student: ensure() repairs
            return None
        return Account(student_id=student_id, user=user, uid=info.st_uid, gid=gid, home=home)

    def ensure(self, student_id: str) -> Account:
        """The account of ``student_id``, created (or its creation finished) if needed.

        Idempotent: running it again never duplicates a line nor changes the uid or ranges. Safe from many
        threads and processes at once, and beside other programs that change the account databases.

        Raises:
            AccountUnavailable: the databases stayed locked, the uid range is full, or a write failed.
        """
        found = self.find(student_id)
        if found is not None:
            return found
        s = self._settings
        with file_lock(s.locks_dir / "accounts.lock"):
            found = self.find(student_id)
            if found is not None:
                return found
            started = time.monotonic()
            user = user_name(student_id, s.user_prefix)
            home = self.home_of(user)
            try:
                with self._db.locked(), self._ledger() as ledger:
                    uid, gid, offset, added = self._write_lines(ledger, user, home)
            except TimeoutError as exc:
                raise AccountUnavailable(
                    "Your account cannot be created right now; please retry in a minute.",
                    log_detail=f"user={user}: {exc}",
                ) from exc
            except (OSError, sqlite3.Error) as exc:
                raise AccountUnavailable(
                    "Your account cannot be created right now; please retry in a minute.",
                    log_detail=f"user={user}: writing the account databases in {self._db.etc}: {exc}",
                ) from exc
            nscd = invalidate_caches(self._runner) if added else False
            ensure_dir(s.students_dir, 0, 0, 0o711)
            if home.is_dir() and os.lstat(home).st_uid != uid:
                # the user was deleted and made again (new uid): give the student their files back
                chown_tree(home, uid, gid)
            ensure_dir(home, uid, gid, 0o700)
            self._hints.put(uid, offset)
            log.info(
                "account %s: user=%s uid=%d gid=%d lines added=%s nscd=%s in %.3fs",
                "created" if "passwd" in added else "completed",
                user,
                uid,
                gid,
                ",".join(added) or "none",
                nscd,
                time.monotonic() - started,
            )
            return Account(student_id=student_id, user=user, uid=uid, gid=gid, home=home)

    # ------------------------------------------------------------------------------------ internals

    def _passwd_entry(self, user: str, uid: int) -> Entry | None:
        """``user``'s passwd line: read at the offset where it was last seen, else searched for (and remembered)."""
        offset = self._hints.get(uid)
        if offset is not None:
            entry = self._db.entry_at("passwd", offset, user)
            if entry is not None:
                return entry
        entry = self._db.find("passwd", user)
        number = entry.number() if entry is not None else None
        if entry is not None and number is not None:
            self._hints.put(number, entry.offset)
        return entry

    def _ledger(self) -> Ledger:
        s = self._settings
        return Ledger(self._ledger_path, prefix=s.user_prefix, uid_min=s.uid_min, uid_max=s.uid_max)

    def _write_lines(self, ledger: Ledger, user: str, home: Path) -> tuple[int, int, int, list[str]]:
        """Add whatever lines ``user`` lacks (all six for a new student); return (uid, gid, passwd offset, added).

        A user the ledger does not know has no line anywhere: nothing is searched for. A user it knows was cut
        half-way (or changed by someone else): each database is searched, and only what is missing is added.
        """
        s = self._settings
        mark = ledger.catch_up(self._db)
        known = ledger.knows(user)
        passwd = self._db.find("passwd", user) if known else None
        if passwd is not None:
            uid, gid = passwd.number(), passwd.number(3)
            if uid is None or gid is None or not s.uid_min <= uid <= s.uid_max:
                raise AccountUnavailable(
                    "Your account cannot be created; the administrators can find the details in the logs.",
                    log_detail=f"{user} exists with a uid outside {s.uid_min}..{s.uid_max}: {':'.join(passwd.fields)}",
                )
        else:
            if mark > s.uid_max:
                raise AccountUnavailable(
                    "No new account can be created on this server; please tell the course team.",
                    log_detail=f"every uid of {s.uid_min}..{s.uid_max} was given",
                )
            group = self._db.find("group", user) if known else None
            uid = mark
            group_gid = group.number() if group is not None else None
            gid = group_gid if group_gid is not None else uid  # a group left by a cut creation keeps its gid
            mark = uid + 1
            if not known:
                ledger.enter(user, uid)  # before the first line: a crash after it is found and finished
        subids = subid_range(uid, uid_min=s.uid_min, subid_base=s.subid_base, subid_count=s.subid_count)
        lines = student_lines(user, uid, gid, home, subids, days_since_epoch(time.time()))
        offset = passwd.offset if passwd is not None else -1  # set below: a missing passwd line is added first
        added = []
        for database in DATABASES:  # passwd first, as useradd
            present = passwd if database == "passwd" else self._db.find(database, user) if known else None
            if present is None:
                at = self._db.append(database, lines[database])
                offset = at if database == "passwd" else offset
                added.append(database)
        ledger.commit(self._db, mark)
        return uid, gid, offset, added
