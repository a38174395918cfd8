"""Nonces that may be spent once, across every process of the host: what makes a ticket good for one use.

A spent nonce is a file ``<folder>/<expires>-<nonce>``, created with ``O_EXCL``: of all the processes that try
to spend the same nonce, the kernel lets exactly one create it. A nonce needs remembering only until its ticket
expires (an expired ticket is refused anyway), so each spend also forgets the nonces whose time is well past
(:data:`GRACE` seconds after it: a ticket read just before it expires may be spent just after): the folder holds
the tickets of the last minutes. It lives in RUN_DIR (a tmpfs): a reboot forgets them all, and
takes longer than a ticket lives.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..tickets import NONCE_RE, TICKET_TTL

#: how long after its expiry a nonce is still remembered
GRACE = TICKET_TTL


class SpentNonces:
    """The nonces spent in ``folder`` (made on first use, root's, mode 0700)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def spend(self, nonce: str, expires: int, *, now: float) -> bool:
        """Spend ``nonce`` (good until ``expires``); True the first time, False for every later try."""
        if not NONCE_RE.match(nonce):
            raise ValueError("not a nonce")
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._forget(now)
        try:
            fd = os.open(
                self.folder / f"{expires}-{nonce}", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
            )
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def _forget(self, now: float) -> None:
        """Forget the nonces of tickets expired :data:`GRACE` seconds before ``now`` (another process may be
        forgetting them at the same time)."""
        for name in os.listdir(self.folder):
            expires, _, _ = name.partition("-")
            if expires.isdigit() and int(expires) < now - GRACE:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.folder / name)
