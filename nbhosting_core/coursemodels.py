"""What nbhosting knows of a course from git: its metadata, a clone's or pull's result, its image's last build, an
admin's view of it, and a deletion's plan (plain, immutable pydantic models; :mod:`nbhosting_core.courses` makes and
stores them)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from .courseconfig import CourseConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CourseState(str, Enum):
    """Whether a course is in service."""

    ACTIVE = "active"
    ARCHIVED = "archived"  # hidden from lists, never pulled, launches refused (HTTP 410)


class PullResult(_Frozen):
    """One clone or pull of a course: when, whether it worked, what it checked out, and git's own words."""

    course: str
    at: float  # seconds since the epoch, when it began
    seconds: float
    ok: bool
    commit: str | None = None  # what the course serves after it (the previous commit when it failed)
    log: str  # git's output (its end)
    config_error: str | None = None  # the course's .nbhosting/course.toml, refused after this pull (line, reason)


class Course(_Frozen):
    """nbhosting's metadata of a course (what ``DATA_ROOT/course-meta/<name>.json`` holds)."""

    name: str
    remote: str | None = None  # a git URL or a local repository; None: a local folder, never pulled
    branch: str | None = None
    state: CourseState = CourseState.ACTIVE
    created_at: float | None = None
    last_pull: PullResult | None = None


class BuildLog(_Frozen):
    """The log of one build of a course's own image (root's file), as an admin reads it: its end only."""

    course: str
    path: str  # root's file, named by the build's time
    at: float  # when it was last written (seconds since the epoch)
    version: int | None = None  # the version this log published (asked by number), None: the last build's log
    outcome: str  # "published", "up to date", or "failed or unfinished" (read from its last line)
    log: str  # its end, at most the bytes asked; control characters replaced
    truncated: bool  # the file is longer than what ``log`` holds


class CourseView(_Frozen):
    """A course as an admin sees it: its metadata, where it is, what it serves, and its configuration."""

    course: Course
    path: Path
    commit: str | None = None  # None: a local folder that is not a git checkout
    config: CourseConfig  # the defaults when its file is refused
    config_error: str | None = None  # why its .nbhosting/course.toml is refused (line, reason)
    last_build: BuildLog | None = None  # its image's last build (only in one course's view, for admins)

    @property
    def local(self) -> bool:
        """True for a folder with no remote (never pulled)."""
        return self.course.remote is None


class DeletePlan(_Frozen):
    """What deleting a course removes, and what it keeps; ``done``: whether it was carried out."""

    course: str
    done: bool
    removes: list[str]
    keeps: list[str]
    servers: list[str]  # servers of this course: a deletion waits until they are removed (`nbh rm`)
