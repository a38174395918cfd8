"""Students' subordinate ids in /etc/subuid and /etc/subgid: there while their podman lives, and only then.

Rootless podman needs the student's range when it makes their user namespace (``newuidmap``/``newgidmap``, and
podman's own reading of the files), and each of those reads the whole file: at 100,000 students it cost a new
student ~0.2 s of their first open. So the lines are granted when a student's podman starts (account creation
writes them too) and revoked once the student has no running server and their podman processes are gone
(:meth:`~nbhosting_core.system.podman.PodmanBackend.release`): the files hold the students who work now, not
every student of the term. The range itself never changes: it is derived from the uid (:func:`naming.subid_range`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..naming import subid_range
from .userdb import UserDb

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
FILES = ("subuid", "subgid")


class SubordinateIds:
    """Grants and revokes students' subordinate ranges."""

    def __init__(self, settings: Settings, db: UserDb | None = None) -> None:
        self._settings = settings
        self._db = db or UserDb()

    def line(self, user: str, uid: int) -> str:
        """The /etc/subuid (and /etc/subgid) line of ``user`` (pure)."""
        s = self._settings
        first, count = subid_range(uid, uid_min=s.uid_min, subid_base=s.subid_base, subid_count=s.subid_count)
        return f"{user}:{first}:{count}"

    def grant(self, user: str, uid: int) -> bool:
        """Make sure ``user`` has their range in both files; True if a line was added."""
        added = False
        with self._db.locked():
            for name in FILES:
                if self._db.find(name, user) is None:
                    self._db.append(name, self.line(user, uid))
                    added = True
        if added:
            log.info("subordinate ids granted to user=%s", user)
        return added

    def revoke(self, users: Iterable[str]) -> list[str]:
        """Take the ranges of ``users`` (students only: the prefix is checked) out of both files; who lost one."""
        wanted = {u for u in users if u.startswith(self._settings.user_prefix)}
        if not wanted:
            return []
        gone: set[str] = set()
        with self._db.locked():
            for name in FILES:
                gone.update(self._db.remove(name, wanted))
        if gone:
            log.info("subordinate ids revoked from %d students: %s", len(gone), ", ".join(sorted(gone)[:10]))
        return sorted(gone)

    def granted(self) -> list[str]:
        """Students who hold a range now (from /etc/subuid)."""
        prefix = self._settings.user_prefix
        try:
            text = self._db.path("subuid").read_text(errors="replace")
        except FileNotFoundError:
            return []
        return sorted({line.split(":", 1)[0] for line in text.splitlines() if line.startswith(prefix)})
