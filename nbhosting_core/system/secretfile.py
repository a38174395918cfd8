"""The server's signing secret (and the LTI tool's private key), each kept in one file only its owner can read."""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path

from ..errors import NbhostingError
from ..tokens import new_secret

MIN_BYTES = 32


def secret_owners(app_user: str) -> frozenset[int]:
    """Who may own the secret: this process's user, and the app's (the helper, root, reads the app's secret)."""
    owners = {os.geteuid()}
    with contextlib.suppress(KeyError):
        owners.add(pwd.getpwnam(app_user).pw_uid)
    return frozenset(owners)


def load_or_create_secret(
    path: Path, make: Callable[[], bytes] = new_secret, *, owners: frozenset[int] | None = None
) -> bytes:
    """Read the secret at ``path``, creating it (mode 0600, atomically) on first use.

    ``make`` makes a new secret (default: 256 random bits); the first process to store one wins, every other
    process reads that one. ``owners``: the uids the file may belong to (default: this process's only).

    Raises:
        NbhostingError: the file exists but is not safe to use (a symlink, readable by others, owned by
            someone else, or shorter than 32 bytes): nbhosting refuses to sign with it.
    """
    owners = owners if owners is not None else frozenset({os.geteuid()})
    try:
        return _read_checked(path, owners)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(make())
    try:
        os.link(tmp, path)  # the first process to get there wins; the others read its secret
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return _read_checked(path, owners)


def _read_checked(path: Path, owners: frozenset[int]) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symlink
        raise NbhostingError(
            "nbhosting's signing secret is not safe to use.",
            log_detail=f"{path}: {exc.strerror}; it must be a plain file",
        ) from exc
    try:
        info = os.fstat(fd)
        problem = ""
        if not stat.S_ISREG(info.st_mode):
            problem = "it is not a regular file"
        elif info.st_uid not in owners:
            problem = f"it belongs to uid {info.st_uid}"
        elif info.st_mode & 0o077:
            problem = f"its mode is {info.st_mode & 0o777:o} (others may read it)"
        data = os.read(fd, 16384) if not problem else b""  # a PEM key fits
        if not problem and len(data) < MIN_BYTES:
            problem = f"it holds {len(data)} bytes, fewer than {MIN_BYTES}"
    finally:
        os.close(fd)
    if problem:
        raise NbhostingError(
            "nbhosting's signing secret is not safe to use.",
            log_detail=f"{path}: {problem}; fix it, or remove it to make a new one",
        )
    return data
