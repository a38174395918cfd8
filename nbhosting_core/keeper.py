"""Students' servers as the host keeps them: each student's lock, and stopping or removing a server then releasing
what its student held (a mounted workspace, a container engine's namespace) once none of theirs runs.

Launches, admins' operations and the host's upkeep all go through one :class:`Keeper`, so that they take the same
lock (a file per student, shared between processes) and release in the same way.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager

from .activity import ActivityLog
from .backend import NotebookBackend
from .models import Server, ServerState
from .naming import short_key
from .settings import Settings
from .system.locks import student_lock
from .system.quota import Quota

log = logging.getLogger("nbhosting_core.hub")  # the hub's decisions, whichever module makes them


class Keeper:
    """Locks, stops, removes and releases students' servers on ``backend``, with their storage on ``quota``."""

    def __init__(self, settings: Settings, backend: NotebookBackend, quota: Quota, activity: ActivityLog) -> None:
        self.settings = settings
        self.backend = backend
        self.quota = quota
        self.activity = activity

    def student_lock(self, user: str) -> AbstractContextManager[None]:
        """Held while a student's storage is prepared or released and their servers start or stop."""
        return student_lock(self.settings.locks_dir, user)

    def stop_and_release(self, server: Server) -> None:
        """Stop ``server``, and release its student's resources if it was their last (under their lock)."""
        self.backend.stop(server)
        self.release_if_idle(server.user)

    def release_if_idle(self, user: str) -> bool:
        """Release the student's storage if none of their servers runs (call under their lock); True if released."""
        if any(s.user == user and s.state is ServerState.RUNNING for s in self.backend.list_servers()):
            return False
        storage = self.quota.release(user)
        engine = self.backend.release(user)
        return storage or engine

    def discard(self, server: Server, why: str) -> None:
        """Remove ``server`` (its files stay) and forget its activity; ``why`` is logged."""
        started = time.monotonic()
        with self.student_lock(server.user):
            self.backend.remove(server)
            self.release_if_idle(server.user)
        self.activity.forget(server.key)
        log.info(
            "remove user=%s course=%s key=%s reason=%r in %.3fs",
            server.user,
            server.course,
            short_key(server.key),
            why,
            time.monotonic() - started,
        )
