"""Students' Linux accounts: created on first sight, never changed afterwards.

Each student gets a user named from a hash of their id (see :func:`naming.user_name`), a uid in the
students' range, no login shell, a home under DATA_ROOT/students, and a narrow subuid/subgid range
derived from the uid (so ranges never overlap and a host holds far more than 65,536 students).
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
import time
from pathlib import Path
from typing import Protocol

from .models import Account
from .naming import subid_range, user_name
from .settings import Settings
from .system.locks import file_lock
from .system.runner import CommandRunner
from .system.tree import chown_tree, ensure_dir

log = logging.getLogger(__name__)
NOLOGIN = "/usr/sbin/nologin"


class AccountStore(Protocol):
    """Finds and creates students' accounts (the real one makes Linux users; tests may use a fake)."""

    def find(self, student_id: str) -> Account | None:
        """The complete account of ``student_id``, or None."""
        ...

    def ensure(self, student_id: str) -> Account:
        """The account of ``student_id``, created (or its creation finished) if needed."""
        ...


class Accounts:
    """Creates and finds students' Linux accounts (needs root to create)."""

    def __init__(self, settings: Settings, runner: CommandRunner) -> None:
        self._settings = settings
        self._runner = runner

    def home_of(self, user: str) -> Path:
        """The home folder of ``user``."""
        return self._settings.students_dir / user

    def find(self, student_id: str) -> Account | None:
        """The account of ``student_id`` if it is complete, else None."""
        user = user_name(student_id, self._settings.user_prefix)
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            return None
        home = Path(entry.pw_dir)
        try:
            info = os.lstat(home)
        except FileNotFoundError:
            return None  # a creation was interrupted: ensure() finishes it
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != entry.pw_uid:
            return None  # cut between making the home and giving it to the student: ensure() finishes it
        return Account(student_id=student_id, user=user, uid=entry.pw_uid, gid=entry.pw_gid, home=home)

    def ensure(self, student_id: str) -> Account:
        """The account of ``student_id``, created (or its creation finished) if needed.

        Idempotent: running it again never duplicates the user nor changes its uid or ranges.
        """
        found = self.find(student_id)
        if found is not None:
            return found
        with file_lock(self._settings.locks_dir / "accounts.lock"):
            found = self.find(student_id)
            if found is not None:
                return found
            started = time.monotonic()
            account = self._create(student_id)
            log.info("account created: user=%s uid=%d in %.3fs", account.user, account.uid, time.monotonic() - started)
            return account

    def _create(self, student_id: str) -> Account:
        s = self._settings
        user = user_name(student_id, self._settings.user_prefix)
        home = self.home_of(user)
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            self._runner.run(
                [
                    "useradd",
                    "--no-create-home",
                    "--home-dir",
                    str(home),
                    "--shell",
                    NOLOGIN,
                    "--user-group",
                    "--comment",
                    "nbhosting student",
                    "-K",
                    f"UID_MIN={s.uid_min}",
                    "-K",
                    f"UID_MAX={s.uid_max}",
                    "-K",
                    f"GID_MIN={s.uid_min}",
                    "-K",
                    f"GID_MAX={s.uid_max}",
                    "-K",
                    "SUB_UID_COUNT=0",
                    "-K",
                    "SUB_GID_COUNT=0",
                    user,
                ]
            )
            entry = pwd.getpwnam(user)
        first, count = subid_range(entry.pw_uid, uid_min=s.uid_min, subid_base=s.subid_base, subid_count=s.subid_count)
        if not _has_subid(Path("/etc/subuid"), user) or not _has_subid(Path("/etc/subgid"), user):
            span = f"{first}-{first + count - 1}"
            self._runner.run(["usermod", "--add-subuids", span, "--add-subgids", span, user])
        ensure_dir(s.students_dir, 0, 0, 0o711)
        if home.is_dir() and os.lstat(home).st_uid != entry.pw_uid:
            # the user was deleted and made again (new uid): give the student their files back
            chown_tree(home, entry.pw_uid, entry.pw_gid)
        ensure_dir(home, entry.pw_uid, entry.pw_gid, 0o700)
        return Account(student_id=student_id, user=user, uid=entry.pw_uid, gid=entry.pw_gid, home=home)


def _has_subid(path: Path, user: str) -> bool:
    prefix = f"{user}:"
    try:
        with path.open() as lines:
            return any(line.startswith(prefix) for line in lines)
    except FileNotFoundError:
        return False
