"""What happened on the host, as events: every open, failure, stop and cull, and periodic samples of the host.

The hub (root: the privileged helper, or a root script) appends each event it takes as one JSON line to a journal,
``DATA_ROOT/events/<YYYY-MM-DD>.jsonl`` (UTC days), with ``O_APPEND``: one ``write`` per line, which the kernel
keeps whole between processes. The journal is root's, readable by the app's group: the app (unprivileged) reads it
into its database (see :mod:`nbhosting_core.eventstore`) from where it last stopped, and never writes to it. The
journal holds names and figures only (course, student id, notebook path, durations), never content.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

#: a journal line longer than this is not an event (read side: a line is skipped, never half-read)
MAX_LINE = 8192
#: journal files are named for their UTC day
_NAME_LEN = len("YYYY-MM-DD.jsonl")


class EventKind(str, Enum):
    """What an event records."""

    OPEN = "open"  # a launch that got a server (``action``: create, start, reuse, replace)
    READY = "ready"  # a server's start first seen answering (``duration``: from its start)
    FAILURE = "failure"  # a launch or a start that failed (``reason``: the error's slug)
    STOP = "stop"  # an admin stopped a server
    RESTART = "restart"  # an admin restarted a server
    CULL = "cull"  # the culler stopped a server (``reason``: idle, max-age, over-quota)
    SAMPLE = "sample"  # the host's figures at a moment (``data``: running, kernels, memory, load, disk)


class Event(BaseModel):
    """One event: when, what, where, who, and how long it took."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    time: float = Field(description="Seconds since the epoch.")
    kind: EventKind
    course: str | None = None
    student_id: str | None = None
    notebook: str | None = None
    action: str | None = Field(None, description="For opens: create, start, reuse, replace.")
    reason: str | None = Field(None, description="For failures: the error's slug; for culls: why.")
    duration: float | None = Field(None, description="Seconds the operation took.")
    actor: str | None = Field(None, description="Who asked: 'student', 'admin', 'culler', a staff name.")
    data: dict[str, float | int | str | None] = Field(default_factory=dict, description="A sample's figures.")


def journal_name(when: float) -> str:
    """The journal file of the UTC day of ``when``."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d") + ".jsonl"


def is_journal_name(name: str) -> bool:
    """True for a name :func:`journal_name` makes."""
    if len(name) != _NAME_LEN or not name.endswith(".jsonl"):
        return False
    try:
        datetime.strptime(name[:10], "%Y-%m-%d")
    except ValueError:
        return False
    return True


class EventJournal:
    """The host's journal of events under ``folder`` (one file per UTC day).

    ``group``: as root, the group given read access to new files (the app's); None leaves the process's.
    Writing never raises: an event that cannot be written is logged and dropped (a launch never fails for its
    statistics).
    """

    def __init__(self, folder: Path, *, group: int | None = None, clock: Any = time.time) -> None:
        self.folder = folder
        self._group = group
        self._clock = clock

    def record(self, kind: EventKind, **fields: Any) -> Event | None:
        """Append an event of ``kind`` now, with ``fields`` (see :class:`Event`); the event, or None if not written."""
        try:
            event = Event(time=self._clock(), kind=kind, **fields)
        except ValidationError as exc:
            log.error("event %s not recorded: %s", kind.value, exc)
            return None
        line = event.model_dump_json(exclude_none=True, exclude_defaults=True).encode() + b"\n"
        if len(line) > MAX_LINE:
            log.error("event %s not recorded: %d bytes", kind.value, len(line))
            return None
        try:
            self._append(journal_name(event.time), line)
        except OSError as exc:
            log.error("event %s not recorded in %s: %s", kind.value, self.folder, exc)
            return None
        return event

    def _append(self, name: str, line: bytes) -> None:
        self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)  # where no layout was made (scripts, tests)
        dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = os.open(
                name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640, dir_fd=dir_fd
            )
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                    raise OSError(f"{name} is not this process's plain file")
                if self._group is not None and info.st_gid != self._group:
                    os.fchown(fd, -1, self._group)
                    os.fchmod(fd, 0o640)
                os.write(fd, line)
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)

    def prune(self, keep_days: int) -> list[str]:
        """Remove the files of days older than ``keep_days`` (UTC days before today's); the names removed.

        The app has read them into its database long before (it reads the journal every minute): the journal is
        a hand-over, the database the record.
        """
        if keep_days <= 0:
            return []
        oldest = journal_name(self._clock() - keep_days * 86400)
        removed = []
        for name in self.files():
            if name < oldest:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.folder / name)
                    removed.append(name)
        if removed:
            log.info(
                "journal: removed %d files older than %d days (%s..%s)",
                len(removed),
                keep_days,
                removed[0],
                removed[-1],
            )
        return removed

    def files(self) -> list[str]:
        """The journal's files, oldest first."""
        try:
            return sorted(name for name in os.listdir(self.folder) if is_journal_name(name))
        except FileNotFoundError:
            return []

    def read(self, name: str, offset: int = 0, *, limit: int = 1 << 20) -> Iterator[tuple[int, int, Event | None]]:
        """The events of file ``name`` from byte ``offset``: (offset, next offset, event or None if unreadable).

        Reads at most ``limit`` bytes; stops before a line not yet ended (being written). A line that is not an
        event (too long, not JSON, not valid) gives None, so that a cursor can move past it.
        """
        if not is_journal_name(name):
            raise ValueError(f"not a journal file: {name!r}")
        try:
            fd = os.open(self.folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return
            f.seek(offset)
            chunk = f.read(limit)
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if start == 0 and len(chunk) >= limit:  # no line ends in a whole read: not events, move past
                    yield offset, offset + len(chunk), None
                return
            line = chunk[start:end]
            event = None
            if len(line) <= MAX_LINE:
                with contextlib.suppress(ValidationError, ValueError):
                    event = Event.model_validate(json.loads(line))
            yield offset + start, offset + end + 1, event
            start = end + 1
