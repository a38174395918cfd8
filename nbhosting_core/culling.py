"""Idle culling: which servers to stop (a pure decision), and the loop that applies it once per host.

A server is idle when its student shows no sign of life: no request proxied to it (Caddy's forward-auth
records them, see :mod:`nbhosting_core.activity`) and no kernel activity reported by Jupyter itself. A kernel
that is executing is never idle, however long it runs. Stopping a server never loses work: the files are
in the workspace, and the next click starts the server again with the same key.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from .models import CullDecision, CullReason, Server, ServerActivity, ServerState

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger(__name__)
#: what one pass returns (the culler's decisions; the course puller's results)
T = TypeVar("T")


@dataclass(frozen=True)
class CullPolicy:
    """When servers are stopped (seconds): see the settings of the same names."""

    idle_timeout: float = 2 * 3600
    max_age: float = 24 * 3600
    max_age_idle: float = 10 * 60

    @classmethod
    def from_settings(cls, settings: Settings) -> CullPolicy:
        """The policy the settings describe."""
        return cls(idle_timeout=settings.idle_timeout, max_age=settings.max_age, max_age_idle=settings.max_age_idle)


def last_seen(server: Server, proxied: float | None, activity: ServerActivity | None) -> float | None:
    """The latest sign of life of ``server``: its start, a proxied request, or Jupyter's own activity."""
    signs = [server.started_at, proxied, activity.last_activity if activity else None]
    known = [t for t in signs if t is not None]
    return max(known) if known else None


def should_cull(
    server: Server, *, now: float, proxied: float | None, activity: ServerActivity | None, policy: CullPolicy
) -> CullDecision:
    """Decide whether to stop ``server`` now (pure).

    Args:
        now: seconds since the epoch.
        proxied: when a request for this server last went through the proxy (None: never seen).
        activity: what its Jupyter reports (None: it did not answer).
        policy: the timeouts.

    A server that is not running is left alone; one with a busy kernel is kept; one idle for
    ``idle_timeout`` is stopped; one older than ``max_age`` is stopped once idle for ``max_age_idle``.
    """
    if server.state is not ServerState.RUNNING:
        return CullDecision(name=server.name, cull=False, reason=CullReason.NOT_RUNNING)
    seen = last_seen(server, proxied, activity)
    idle = max(0.0, now - seen) if seen is not None else None
    age = max(0.0, now - server.started_at) if server.started_at is not None else None

    def decision(cull: bool, reason: CullReason) -> CullDecision:
        return CullDecision(name=server.name, cull=cull, reason=reason, idle_seconds=idle, age_seconds=age)

    if activity is not None and activity.busy_kernels > 0:
        return decision(False, CullReason.BUSY)
    if idle is None or idle >= policy.idle_timeout:
        return decision(True, CullReason.IDLE)
    if age is not None and age >= policy.max_age and idle >= policy.max_age_idle:
        return decision(True, CullReason.MAX_AGE)
    return decision(False, CullReason.ACTIVE)


class Culler(Generic[T]):
    """Runs ``cull`` every ``interval`` seconds, in at most one process per host.

    Every app worker process may start one; they compete for ``lock_path`` (a non-blocking ``flock``) and
    only its holder culls. When the holder dies the kernel releases the lock and another worker takes over
    at its next attempt. Any other periodic task of the host runs the same way under its own lock and ``name``
    (the automatic pull of courses: see :mod:`nbhosting_core.courses`).
    """

    def __init__(self, cull: Callable[[], list[T]], *, lock_path: Path, interval: float, name: str = "culler") -> None:
        self._cull = cull
        self._lock_path = lock_path
        self._interval = interval
        self._name = name
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        """True if this process holds the host's culler lock."""
        return self._fd is not None

    def try_lead(self) -> bool:
        """Take the host's culler lock if nobody holds it; True if this process now holds it."""
        if self._fd is not None:
            return True
        self._lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        log.info(
            "%s: this process (pid %d) runs it for the host, every %.0f s", self._name, os.getpid(), self._interval
        )
        return True

    def run_once(self) -> list[T]:
        """One pass, if this process leads; logs what it stopped and why."""
        if not self.try_lead():
            return []
        return self._cull()

    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop` (the lock is tried at once: the log says who leads)."""
        self.try_lead()
        self._thread = threading.Thread(
            target=self._loop, name=f"nbhosting-{self._name.replace(' ', '-')}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and release the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception:  # the loop must outlive one bad pass; the traceback says why
                log.exception("%s: a pass failed; next one in %.0f s", self._name, self._interval)
