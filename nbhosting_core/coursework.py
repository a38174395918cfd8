"""Students' work of one course on the host, as deleting the course sees it: their workspaces of it, their backups of
its notebooks, the pages they shared of them (see :mod:`nbhosting_core.studentfiles` and
:mod:`nbhosting_core.shares` for where each lives), and root's record of the copies it made for them
(:mod:`nbhosting_core.system.vouched`).

:meth:`CourseWork.find` lists it (a read-only walk that never follows a symlink); :meth:`CourseWork.remove` removes
what it found, the shares under each student's lock (their index holds other courses' shares too). Used by
:meth:`nbhosting_core.courses.Courses.delete` when no server of the course exists.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings
from .shares import Share, ShareStore, page_name, shares_dir
from .studentfiles import BACKUPS, HIDDEN
from .system.locks import student_lock

log = logging.getLogger("nbhosting_core.courses")


@dataclass(frozen=True)
class Found:
    """A course's students' work: workspaces and backups folders, (user, share) of their shared pages, and root's
    records of the copies it vouched for."""

    course: str
    workspaces: list[Path]
    backups: list[Path]
    shares: list[tuple[str, Share]]
    vouched: list[Path]

    def describe(self, settings: Settings) -> list[str]:
        """Each item as a deletion's plan lists it: a folder, or a shared page's file and whose it is."""
        pages = shares_dir(settings) / "pages"
        return [
            *(str(w) for w in self.workspaces),
            *(str(b) for b in self.backups),
            *(f"{pages / page_name(s.token)} (the page {user} shared of {s.notebook})" for user, s in self.shares),
            *(f"{v} (the copies root vouched for)" for v in self.vouched),
        ]


class CourseWork:
    """Finds and removes students' work of a course (as root).

    Args:
        settings: where students' homes (``students_dir``), shares and locks are.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._shares = ShareStore(settings)

    def find(self, course: str) -> Found:
        """Students' work of ``course`` (a course name already validated)."""
        homes = self._homes()
        workspaces = [home / course for home in homes if _plain_dir(home / course)]
        backups = [
            home / HIDDEN / BACKUPS / course
            for home in homes
            if all(_plain_dir(p) for p in (home / HIDDEN, home / HIDDEN / BACKUPS, home / HIDDEN / BACKUPS / course))
        ]
        vouched = [self.settings.trust_dir / f"{home.name}-{course}" for home in homes]
        vouched = [v for v in vouched if v.is_file() and not v.is_symlink()]
        return Found(course, workspaces, backups, self._shares_of(course), vouched)

    def remove(self, found: Found) -> None:
        """Remove what :meth:`find` found: folders (never following a symlink inside), then shared pages."""
        for folder in [*found.workspaces, *found.backups]:
            shutil.rmtree(folder, ignore_errors=True)  # rmtree never follows a symlink inside
        for record in found.vouched:  # root's own folder
            record.unlink(missing_ok=True)
        for user in sorted({user for user, _ in found.shares}):
            with student_lock(self.settings.locks_dir, user):
                for share in [s for s in self._shares.of(user) if s.course == found.course]:
                    self._shares.remove(user, found.course, share.notebook)

    def _shares_of(self, course: str) -> list[tuple[str, Share]]:
        owners = shares_dir(self.settings) / "owners"
        if not owners.is_dir():
            return []
        found = []
        for index in sorted(owners.glob("*.json")):
            if index.name.startswith("."):  # a write in progress
                continue
            try:
                found += [(index.stem, s) for s in self._shares.of(index.stem) if s.course == course]
            except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
                log.error("course %s: the shares of %s cannot be read (%s): left as they are", course, index.stem, exc)
        return found

    def _homes(self) -> list[Path]:
        """Students' homes (plain folders only; a symlink is never followed)."""
        students = self.settings.students_dir
        if not students.is_dir():
            return []
        return [home for home in sorted(students.iterdir()) if _plain_dir(home)]


def _plain_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()
