"""What the hub writes in the host's journal of events (:mod:`nbhosting_core.events`) about launches: whose server
an event is about, a launch that failed, a start first seen ready."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import PurePosixPath

from .errors import InvalidInput, NbhostingError
from .events import EventJournal, EventKind
from .models import Launch, Server
from .naming import validate_course, validate_notebook_path, validate_student_id


def who(server: Server, notebook: PurePosixPath | None = None) -> dict[str, str | None]:
    """An event's course, student and notebook, from ``server``."""
    return {
        "course": server.course,
        "student_id": server.student_id,
        "notebook": str(notebook) if notebook else None,
    }


class LaunchRecords:
    """Records launches' failures and readiness in ``events``; ``clock``: seconds since the epoch."""

    def __init__(self, events: EventJournal, clock: Callable[[], float]) -> None:
        self.events = events
        self._clock = clock
        self._ready_seen: dict[str, float | None] = {}  # key -> the start whose readiness is recorded

    def failure(
        self, course: str, notebook: str, student_id: str, exc: NbhostingError, started: float, actor: str
    ) -> None:
        """Record a launch that failed with ``exc``; parts that are not valid are left out (never recorded)."""
        parts: dict[str, str | None] = {}
        for name, value, validate in (
            ("course", course, validate_course),
            ("notebook", notebook, validate_notebook_path),
            ("student_id", student_id, validate_student_id),
        ):
            try:
                parts[name] = str(validate(value))
            except InvalidInput:
                parts[name] = None
        self.events.record(
            EventKind.FAILURE, **parts, reason=exc.reason, duration=time.monotonic() - started, actor=actor
        )

    def ready(self, launch: Launch) -> None:
        """Record the moment a start is first seen ready (once per start), with how long it took."""
        if launch.started_at is None or self._ready_seen.get(launch.key) == launch.started_at:
            return
        if len(self._ready_seen) > 10_000:  # a long-running helper: forget the oldest half
            for key in list(self._ready_seen)[:5_000]:
                del self._ready_seen[key]
        self._ready_seen[launch.key] = launch.started_at
        self.events.record(
            EventKind.READY,
            course=launch.course,
            student_id=launch.student_id,
            notebook=launch.notebook,
            duration=max(0.0, self._clock() - launch.started_at),
        )
