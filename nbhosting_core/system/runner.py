"""Running host commands: one seam, so that tests can see (or replace) every command nbhosting runs."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..errors import CommandFailed


class CommandRunner(Protocol):
    """Runs a command to completion; raises CommandFailed on a non-zero exit."""

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
        """Run ``argv`` (never through a shell) and return its standard output."""
        ...


class SubprocessRunner:
    """The real runner: ``subprocess.run`` with no shell, captured output and a timeout."""

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
        try:
            done = subprocess.run(
                list(argv), env=dict(env) if env is not None else None, capture_output=True,
                text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandFailed(argv, -1, str(exc)) from exc
        if done.returncode != 0:
            raise CommandFailed(argv, done.returncode, done.stderr)
        return done.stdout
