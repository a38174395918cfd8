"""nbhosting's own system users: the web app's (``app_user``) and Caddy's (``caddy_user``), never root.

Made by root before the processes start (``nbh serve``, or ``nbh systemd`` on production hosts): system accounts
with no home and no login shell, each in a group of its own. Students' accounts never share a group with them.
"""

from __future__ import annotations

import grp
import pwd
from dataclasses import dataclass

from ..errors import NbhostingError
from .runner import CommandRunner

NOLOGIN = "/usr/sbin/nologin"


@dataclass(frozen=True)
class ServiceUser:
    """A service user as the host knows it."""

    name: str
    uid: int
    gid: int


def service_user(name: str) -> ServiceUser | None:
    """The system user ``name``, or None if the host has none."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return ServiceUser(name, entry.pw_uid, entry.pw_gid)


def service_group(name: str) -> int | None:
    """The primary group of the system user ``name``, or None if the host has no such user."""
    found = service_user(name)
    return found.gid if found is not None else None


def ensure_service_user(name: str, runner: CommandRunner, *, comment: str) -> ServiceUser:
    """The system user ``name``, made if missing (``useradd --system``, own group, no home, no shell); idempotent.

    Raises:
        CommandFailed: useradd refused.
    """
    found = service_user(name)
    if found is not None:
        return found
    group = ["--gid", name] if _group_exists(name) else ["--user-group"]
    runner.run(
        ["useradd", "--system", *group, "--no-create-home", "--home-dir", "/nonexistent"]
        + ["--shell", NOLOGIN, "--comment", comment, name]
    )
    made = service_user(name)
    if made is None:  # useradd said yes, yet the user is not there: nscd, or a foreign user database
        raise NbhostingError(
            f"The system user {name!r} could not be made.", log_detail="useradd succeeded; the host does not know it"
        )
    return made


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
