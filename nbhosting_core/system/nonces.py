"""Nonces already seen, shared by every process of the host: a signed launch is accepted once.

An LTI launch carries a nonce (LTI 1.1: the platform's ``oauth_nonce``; LTI 1.3: the nonce nbhosting put in its
login redirect) and the time it was made (``oauth_timestamp``; the time in nbhosting's signed state). Launches
are only accepted within a window around now, so a nonce needs remembering for that window only.

One file per nonce, made with ``O_CREAT | O_EXCL``: the kernel decides which of two processes (uvicorn workers)
claiming the same nonce at the same instant wins, with no lock and no database. Files live in one folder per
minute of the launch's own time (``DATA_ROOT/lti/nonces/<minute>/<sha256>``): a replay carries the same signed
time, so it meets its first copy in the same folder, and a folder whose minute has left the window is removed
whole (no file is stat'ed). The store is on DATA_ROOT, not RUN_DIR: a reboot inside the window must not forget
which launches were already used. Names are hashes: a nonce never becomes a path as sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: seconds of launch time per folder
BUCKET = 60


class NonceStore:
    """Claims nonces once, across processes; forgets them ``keep`` seconds after their time.

    Args:
        root: the store's folder (made 0700 on first use).
        keep: seconds a nonce is remembered after its time; at least the window in which launches are accepted.
        clock: seconds since the epoch.
    """

    def __init__(self, root: Path, *, keep: float, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.keep = keep
        self.clock = clock
        self._swept = 0.0
        self._lock = threading.Lock()

    def claim(self, scope: str, issued: float, nonce: str) -> bool:
        """True the first time (``scope``, ``issued``, ``nonce``) is claimed on this host, False ever after.

        Args:
            scope: who made the nonce (e.g. ``"lti11:<consumer key>"``).
            issued: the time signed with the nonce (seconds since the epoch); the caller has checked it is recent.
            nonce: as received.
        """
        self.sweep()
        stamp = int(issued)
        name = hashlib.sha256("\0".join((scope, str(stamp), nonce)).encode()).hexdigest()
        folder = self.root / str(stamp // BUCKET)
        for _attempt in range(2):
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
            try:
                fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                return False
            except FileNotFoundError:  # the folder was swept between mkdir and open (a time at the window's edge)
                continue
            os.close(fd)
            return True
        return False  # swept twice: this time has left the window, so the launch would be refused anyway

    def sweep(self, *, force: bool = False) -> int:
        """Remove the folders of minutes that have left the window (at most once a minute per process unless
        ``force``); the number of folders removed."""
        now = self.clock()
        with self._lock:
            if not force and now - self._swept < BUCKET:
                return 0
            self._swept = now
        first_kept = int((now - self.keep) // BUCKET)  # the folders before it hold only forgotten nonces
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.isdigit() and int(entry.name) < first_kept and entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):  # another process swept it first
                    shutil.rmtree(entry.path)
                    removed += 1
        if removed:
            log.info("nonces: %d folder(s) of expired nonces removed", removed)
        return removed
