"""Locks that hold across threads and server processes: ``flock`` on files under RUN_DIR/locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the duration of the block; with ``shared``, a
    shared one (any number of holders, none while an exclusive one is held).

    Each call opens its own file description, so two threads of one process exclude each other too.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def student_lock(locks_dir: Path, user: str) -> contextlib.AbstractContextManager[None]:
    """The lock of student ``user`` (their storage, servers, backups and shares change under it): one file per
    student under ``locks_dir``."""
    return file_lock(locks_dir / f"student-{user}.lock")
