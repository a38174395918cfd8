"""Running host commands: one seam, so that tests can see (or replace) every command nbhosting runs.

Every command runs without a shell, with its standard input closed and a timeout; a failure is a
:class:`~nbhosting_core.errors.CommandFailed` (or the subclass the caller asks for) carrying the command,
its exit status and the end of its output.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from ..errors import CommandFailed

log = logging.getLogger(__name__)
#: what a failure carries: the error class to raise (CommandFailed or a subclass) given argv, status, output
Failure = Callable[[Sequence[str], int, str], CommandFailed]


class CommandRunner(Protocol):
    """Runs commands to completion; raises CommandFailed on a non-zero exit."""

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
        """Run ``argv`` (never through a shell) and return its standard output."""
        ...

    def stream(
        self,
        argv: Sequence[str],
        *,
        on_line: Callable[[str], None],
        env: Mapping[str, str] | None = None,
        timeout: float = 3600,
        failure: Failure = CommandFailed,
    ) -> str:
        """Run ``argv``, passing each line it prints (stdout and stderr) to ``on_line``; return all of it."""
        ...


class SubprocessRunner:
    """The real runner: ``subprocess`` with no shell, captured output and a timeout."""

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
        """See :meth:`CommandRunner.run`."""
        try:
            done = subprocess.run(
                list(argv),
                env=dict(env) if env is not None else None,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandFailed(argv, -1, str(exc)) from exc
        if done.returncode != 0:
            raise CommandFailed(argv, done.returncode, done.stderr or done.stdout)
        return done.stdout

    def stream(
        self,
        argv: Sequence[str],
        *,
        on_line: Callable[[str], None],
        env: Mapping[str, str] | None = None,
        timeout: float = 3600,
        failure: Failure = CommandFailed,
    ) -> str:
        """See :meth:`CommandRunner.stream`: output is read as it comes (a full pipe never blocks the command)."""
        started = time.monotonic()
        lines: list[str] = []
        try:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            raise failure(argv, -1, str(exc)) from exc
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                on_line(line.rstrip("\n"))
            returncode = proc.wait()
        finally:
            timer.cancel()
        output = "".join(lines)
        if returncode != 0:
            if time.monotonic() - started >= timeout:
                output += f"\n(killed after {timeout:.0f} s)"
            raise failure(argv, returncode, output)
        return output
