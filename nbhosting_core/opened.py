"""Which notebooks of a course each student has opened: what a course page shows beside its table of contents.

The web app records each launch it lets through (it is the app's own state, ``DATA_ROOT/opened/``, kept across
reboots): one line per opening appended to ``<user>/<course>.log`` with ``O_APPEND``, which the kernel keeps whole
between the app's worker processes. Only names are recorded (a student's notebook path), never content.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .naming import student_copy_path, user_name, validate_course

#: a student's record stops growing past this (a course page needs the set of names, not every opening)
MAX_RECORD = 256 * 1024


class OpenedLog:
    """The notebooks each student opened, per course, under ``folder``."""

    def __init__(self, folder: Path, *, user_prefix: str = "nbh-") -> None:
        self.folder = folder
        self._prefix = user_prefix

    def record(self, student_id: str, course: str, notebook: str) -> None:
        """Note that ``student_id`` opened ``notebook`` (their ``.ipynb``) in ``course``."""
        path = self._path(student_id, course)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = str(student_copy_path(PurePosixPath(notebook)))
        if name in self.opened(student_id, course):
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < MAX_RECORD:
                os.write(fd, (name + "\n").encode())
        finally:
            os.close(fd)

    def opened(self, student_id: str, course: str) -> set[str]:
        """The notebooks (their ``.ipynb`` paths) ``student_id`` opened in ``course``; empty if none."""
        try:
            fd = os.open(self._path(student_id, course), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return set()
        with os.fdopen(fd, "rb") as f:
            text = f.read(MAX_RECORD + 4096).decode("utf-8", "replace")
        return {line for line in text.splitlines() if line}

    def _path(self, student_id: str, course: str) -> Path:
        return self.folder / user_name(student_id, self._prefix) / f"{validate_course(course)}.log"
