"""Proxied activity: when a request for a server last went through Caddy.

Every request for a notebook server passes Caddy's forward-auth check, so the app sees them all. Writing
something per request would cost a disk write per static file; instead each app process remembers in memory
when it last recorded a key and touches ``RUN_DIR/activity/<key>`` (its mtime is the record) at most once per
``flush`` seconds. The culler reads the mtimes: they are at most ``flush`` seconds behind, which is nothing
next to an idle timeout of hours, and they are shared by every worker process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .naming import is_key


class ActivityLog:
    """Records and reads the last proxied request of each server key."""

    def __init__(self, directory: Path, *, flush: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self._dir = directory
        self._flush = flush
        self._clock = clock
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, key: str) -> bool:
        """Note a request for ``key`` now; True if it was written (at most once per ``flush`` s per process)."""
        if not is_key(key):
            return False
        now = self._clock()
        with self._lock:
            last = self._written.get(key)
            if last is not None and now - last < self._flush:
                return False
            self._written[key] = now
            if len(self._written) > 10_000:  # forget keys not seen for a while
                horizon = now - 2 * self._flush
                self._written = {k: t for k, t in self._written.items() if t >= horizon}
        path = self._dir / key
        try:
            os.utime(path, (now, now), follow_symlinks=False)
        except FileNotFoundError:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                if os.geteuid() == 0:  # the helper's touch at a launch: the folder's owner (the app) touches it next
                    folder = os.stat(self._dir)
                    os.fchown(fd, folder.st_uid, folder.st_gid)
            finally:
                os.close(fd)
            os.utime(path, (now, now), follow_symlinks=False)
        return True

    def last_seen(self, key: str) -> float | None:
        """When a request for ``key`` was last recorded by any process, or None."""
        if not is_key(key):
            return None
        try:
            return os.stat(self._dir / key, follow_symlinks=False).st_mtime
        except FileNotFoundError:
            return None

    def forget(self, key: str) -> None:
        """Drop the record of ``key`` (its server is gone)."""
        if is_key(key):
            with self._lock:
                self._written.pop(key, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._dir / key)
