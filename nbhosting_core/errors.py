"""Every error nbhosting raises, in one tree.

::

    NbhostingError                 root: catch this to catch them all
    ├── InvalidInput               a course, notebook path or student id that is refused (HTTP 400)
    ├── NotFound                   a course or notebook that does not exist (HTTP 404)
    ├── InvalidNotebook            a course notebook that nbformat cannot read (HTTP 422)
    ├── CommandFailed              a host command (useradd, podman, ...) exited non-zero
    ├── RuntimeUnavailable         the container engine cannot be reached or used
    └── StartFailed                a notebook server did not come up
        └── StartTimeout           ... within the configured time

Each error carries ``message``, a sentence safe to show to a student, and ``reason``, a short slug for
logs and metrics. Details for the admin (argv, stderr) stay in the exception's attributes and ``str()``.
"""

from __future__ import annotations

from collections.abc import Sequence


class NbhostingError(Exception):
    """Root of all nbhosting errors."""

    reason = "error"

    def __init__(self, message: str, *, log_detail: str = "") -> None:
        super().__init__(message if not log_detail else f"{message} ({log_detail})")
        self.message = message
        self.log_detail = log_detail


class InvalidInput(NbhostingError):
    """A course name, notebook path or student id was refused; nothing was created."""

    reason = "invalid-input"


class NotFound(NbhostingError):
    """The course or the notebook does not exist."""

    reason = "not-found"


class InvalidNotebook(NbhostingError):
    """A course notebook is not a valid Jupyter notebook."""

    reason = "invalid-notebook"


class CommandFailed(NbhostingError):
    """A host command exited with a non-zero status."""

    reason = "command-failed"

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-3:]
        super().__init__(
            "An internal command failed; the administrators can find the details in the logs.",
            log_detail=f"{' '.join(self.argv)} exited {returncode}: {' | '.join(tail)}",
        )


class RuntimeUnavailable(NbhostingError):
    """The container engine (a student's podman service) cannot be reached or used."""

    reason = "runtime-unavailable"


class StartFailed(NbhostingError):
    """A notebook server did not come up."""

    reason = "start-failed"


class StartTimeout(StartFailed):
    """A notebook server did not answer within the configured time."""

    reason = "start-timeout"
