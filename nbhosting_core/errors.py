"""Every error nbhosting raises, in one tree.

::

    NbhostingError                 root: catch this to catch them all
    ├── InvalidInput               a course, notebook path or student id that is refused (HTTP 400)
    ├── NotFound                   a course or notebook that does not exist (HTTP 404)
    ├── CourseArchived             a course that is archived: launches refused (HTTP 410), never pulled
    ├── InvalidNotebook            a course notebook that nbformat cannot read (HTTP 422)
    ├── LaunchRefused              a launch no trusted platform vouches for (HTTP 403): nothing is created
    ├── InvalidConfig              a configuration file that is refused (says the line and why)
    ├── PlatformUnavailable        a course platform nbhosting must ask (its LTI 1.3 keys) does not answer (HTTP 502)
    ├── OverQuota                  a student's workspace is full (HTTP 507): nothing new is started
    ├── AccountUnavailable         a student's Linux account cannot be made now (HTTP 503)
    ├── Busy                       a launch would make more than the door allows now (HTTP 503 + Retry-After)
    ├── LoginThrottled             too many failed staff logins for a user name or an address (HTTP 429 + Retry-After)
    ├── EgressUnfiltered           kernels' egress is on, and the host cannot filter it (no nft): not prepared
    ├── CommandFailed              a host command (podman, mount, ...) exited non-zero
    │   └── ImageBuildError        ... while building a notebook image
    ├── RuntimeUnavailable         the container engine cannot be reached or used
    └── StartFailed                a notebook server did not come up
        ├── StartTimeout           ... within the configured time
        └── LimitsNotApplied       ... under its resource limits (it was stopped)

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


class CourseArchived(NbhostingError):
    """The course is archived: its launches are refused and it is never pulled (its files are kept)."""

    reason = "course-archived"


class InvalidNotebook(NbhostingError):
    """A course notebook is not a valid Jupyter notebook."""

    reason = "invalid-notebook"


class LaunchRefused(NbhostingError):
    """A launch that no trusted platform vouches for (unsigned, expired, forged, not allowed): nothing is made."""

    reason = "launch-refused"

    def __init__(self, message: str, *, why: str, log_detail: str = "") -> None:
        super().__init__(message, log_detail=log_detail or why)
        #: a slug saying which check failed (unsigned, expired, bad-signature, ...), for logs and metrics
        self.why = why


class InvalidConfig(NbhostingError):
    """A configuration file (e.g. the platforms file) that nbhosting refuses; the message says where and why."""

    reason = "invalid-config"


class PlatformUnavailable(NbhostingError):
    """A course platform did not answer properly when nbhosting asked it (its LTI 1.3 key set): in time, in size,
    with a usable answer. Nothing was created; trying again later may help."""

    reason = "platform-unavailable"


class OverQuota(NbhostingError):
    """The student's workspace holds more than their disk quota allows."""

    reason = "over-quota"


class AccountUnavailable(NbhostingError):
    """A student's Linux account could not be made: the account databases stayed locked, the students'
    uid range is full, or they could not be written."""

    reason = "account-unavailable"


class Busy(NbhostingError):
    """A launch that would make something (an account, a container, a running server) beyond what the door
    allows now: a rate limit or the cap of running servers. Nothing was made; trying again later may work."""

    reason = "busy"

    def __init__(self, message: str, *, retry_after: float, why: str, log_detail: str = "") -> None:
        super().__init__(message, log_detail=log_detail or why)
        #: seconds until trying again may succeed
        self.retry_after = retry_after
        #: which limit refused: "cap", "platform:<name>", "client:<address>", or "counters" (they could not be read)
        self.why = why


class LoginThrottled(NbhostingError):
    """Too many failed staff logins lately for this user name or this client address: the password was not even
    checked. Trying again after ``retry_after`` seconds may work."""

    reason = "login-throttled"

    def __init__(self, message: str, *, retry_after: float, why: str) -> None:
        super().__init__(message, log_detail=why)
        #: seconds until a login may be tried again
        self.retry_after = retry_after
        #: which count refused: "user" or "address"
        self.why = why


class EgressUnfiltered(NbhostingError):
    """Kernels' network egress is on (``settings.egress``) but its filter cannot be installed on this host (no
    ``nft``, or it refused the rules): the host is not prepared. Install nftables, or turn egress off."""

    reason = "egress-unfiltered"


class CommandFailed(NbhostingError):
    """A host command exited with a non-zero status (or could not run, ``returncode`` -1)."""

    reason = "command-failed"
    message_text = "An internal command failed; the administrators can find the details in the logs."

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, *, tail_lines: int = 3) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-tail_lines:]
        super().__init__(self.message_text, log_detail=f"{' '.join(self.argv)} exited {returncode}: {' | '.join(tail)}")


class ImageBuildError(CommandFailed):
    """A step of a notebook image build failed: the command, its exit status and the end of its output."""

    reason = "image-build-failed"
    message_text = "The notebook image could not be built; the build's output says why."

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(argv, returncode, stderr, tail_lines=25)


class RuntimeUnavailable(NbhostingError):
    """The container engine (a student's podman service) cannot be reached or used."""

    reason = "runtime-unavailable"


class StartFailed(NbhostingError):
    """A notebook server did not come up."""

    reason = "start-failed"


class StartTimeout(StartFailed):
    """A notebook server did not answer within the configured time."""

    reason = "start-timeout"


class LimitsNotApplied(StartFailed):
    """A notebook server could not be put under its memory/process/CPU limits, so it was not let run."""

    reason = "limits-not-applied"
