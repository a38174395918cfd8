"""Root's record of the course copies it vouched for: ``DATA_ROOT/trust/<server name>``, one signature a line.

A copy nbhosting made of a course notebook opens trusted because its signature is in the server's
``trusted-digests`` (see :mod:`nbhosting_core.trust`). A start lists the course as it is then; this record lists
what root copied before: a copy of a version a pull has since replaced, a reset made while the server was stopped.
A start lists both, so such a copy, untouched by the student, stays trusted across pulls and restarts.

The folder is root's (0700) and holds no student's path: a server's name (``<user>-<course>``) is its file. A file
keeps its last :data:`MAX_LINES` signatures.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .tree import write_atomic

#: signatures kept per server (a line is ~72 bytes: 2000 make 144 KB)
MAX_LINES = 2000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")


class VouchedCopies:
    """The signatures root vouched for, per server name, in ``folder`` (root's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, name: str, line: bytes) -> bool:
        """Record ``line`` (``<algorithm> <signature>``) for server ``name``; False if it is there already. Callers
        hold the server's lock."""
        lines = self.lines(name).splitlines()
        if line in lines:
            return False
        kept = [*lines, line][-MAX_LINES:]
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.folder, name, b"".join(item + b"\n" for item in kept), mode=0o600)
        return True

    def lines(self, name: str) -> bytes:
        """What was recorded for server ``name`` (empty if nothing); never follows a link."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return b""
        with os.fdopen(fd, "rb") as source:
            return source.read(MAX_LINES * 200)

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a server's name: {name!r}")
        return self.folder / name
