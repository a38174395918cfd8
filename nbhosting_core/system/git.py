"""git, the command: clones and pulls of course repositories, through the :class:`CommandRunner` seam.

Every command runs without a shell, with a timeout, ``GIT_TERMINAL_PROMPT=0`` (a remote that asks for a password
fails at once instead of waiting for a terminal) and ``LC_ALL=C`` (its messages in the log are the same on every
host). Which remotes are accepted is a pure decision, :func:`check_remote`.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import CommandFailed, InvalidInput
from .runner import CommandRunner

#: how long one git command may take (a clone of a large course included)
GIT_TIMEOUT = 600.0
BRANCH_RE = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")
SCP_LIKE_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!/)[^\s]+$")


def check_remote(remote: str) -> str:
    """Return ``remote`` if nbhosting may clone it (pure), else raise.

    Accepted: ``https://``, ``ssh://`` and ``file://`` URLs, scp-like ``git@host:path``, and absolute local paths.
    Refused: plain ``http://``, ``git://`` (neither is authenticated), other transports (``ext::`` runs commands),
    anything beginning with ``-`` (an option), relative paths, and control characters.

    Raises:
        InvalidInput: saying which remotes are accepted.
    """
    accepted = "use an https://, ssh:// (or git@host:path), file:// URL, or an absolute path to a local repository"
    if not remote or remote.startswith("-") or any(ord(c) < 33 or ord(c) == 127 for c in remote):
        raise InvalidInput(f"Refused git remote {remote[:120]!r}: {accepted}.")
    if remote.startswith("/"):
        return remote
    if SCP_LIKE_RE.match(remote):
        return remote
    parts = urllib.parse.urlsplit(remote)
    if parts.scheme in ("https", "ssh") and parts.hostname:
        return remote
    if parts.scheme == "file" and parts.path.startswith("/") and parts.netloc in ("", "localhost"):
        return remote
    raise InvalidInput(f"Refused git remote {remote[:120]!r}: {accepted}.")


def check_branch(branch: str) -> str:
    """Return ``branch`` if it is a plain branch name (pure), else raise.

    Raises:
        InvalidInput: an empty name, an option, ``..``, or characters git refs do not take.
    """
    if not BRANCH_RE.match(branch) or branch.endswith(".lock") or "@{" in branch:
        raise InvalidInput(f"Invalid branch name {branch[:80]!r}.")
    return branch


def local_path(remote: str) -> Path | None:
    """The folder of a local remote (an absolute path or a ``file://`` URL), else None (pure)."""
    if remote.startswith("/"):
        return Path(remote)
    parts = urllib.parse.urlsplit(remote)
    return Path(urllib.parse.unquote(parts.path)) if parts.scheme == "file" else None


class Git:
    """The git commands a course needs, each one logged by the caller's ``progress`` as it runs."""

    def __init__(self, runner: CommandRunner, *, timeout: float = GIT_TIMEOUT) -> None:
        self._runner = runner
        self._timeout = timeout

    @staticmethod
    def environment() -> dict[str, str]:
        """The environment of every git command: never a prompt (a remote that wants a password fails at once),
        C messages; root's own git and ssh configuration (its keys, credential helpers) still apply."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
            "LC_ALL": "C",
        }

    def run(self, argv: Sequence[str], *, progress: Callable[[str], None] | None = None) -> str:
        """Run ``git argv`` and return its output (stdout and stderr together when ``progress`` is given).

        Raises:
            CommandFailed: git exited non-zero, could not run, or took longer than the timeout.
        """
        command = ["git", *argv]
        if progress is None:
            return self._runner.run(command, env=self.environment(), timeout=self._timeout)
        return self._runner.stream(command, on_line=progress, env=self.environment(), timeout=self._timeout)

    def check_repository(self, path: Path) -> None:
        """Return if ``path`` is a git repository git will read as this user, else raise.

        Run as root, git refuses a repository another user owns ("dubious ownership": its configuration could run
        commands as root) unless root's own git configuration lists it in ``safe.directory``.

        Raises:
            InvalidInput: saying which of the two it is.
        """
        if not path.is_dir():
            raise InvalidInput(f"{str(path)[:200]!r} is not a git repository on this host.")
        try:
            self.run(["-C", str(path), "rev-parse", "--git-dir"])
        except CommandFailed as exc:
            if "dubious ownership" in exc.stderr:
                raise InvalidInput(
                    f"{str(path)[:200]!r} belongs to another user, and git refuses to read it as root: clone it from "
                    f"a copy root owns, or add it to root's git configuration (git config --global --add "
                    f"safe.directory {str(path)[:200]}).",
                    log_detail=exc.stderr.strip()[-300:],
                ) from exc
            raise InvalidInput(
                f"{str(path)[:200]!r} is not a git repository on this host.", log_detail=exc.stderr.strip()[-300:]
            ) from exc

    def head(self, checkout: Path) -> str | None:
        """The commit ``checkout`` has out, or None (not a repository, or no commit)."""
        try:
            return self.run(["-C", str(checkout), "rev-parse", "--verify", "-q", "HEAD"]).strip() or None
        except CommandFailed:
            return None

    def current_branch(self, checkout: Path) -> str | None:
        """The branch ``checkout`` is on, or None (detached, or not a repository)."""
        try:
            name = self.run(["-C", str(checkout), "symbolic-ref", "--short", "-q", "HEAD"]).strip()
        except CommandFailed:
            return None
        return name or None
