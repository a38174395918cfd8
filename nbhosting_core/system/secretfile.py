"""The server's signing secret, kept in one root-only file."""

from __future__ import annotations

import os
from pathlib import Path

from ..tokens import new_secret


def load_or_create_secret(path: Path) -> bytes:
    """Read the secret at ``path``, creating it (mode 0600, atomically) on first use."""
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(new_secret())
    try:
        os.link(tmp, path)  # the first process to get there wins; the others read its secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()
