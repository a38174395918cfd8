"""The one table that maps nbhosting errors to HTTP statuses and page titles."""

from __future__ import annotations

from nbhosting_core import errors
from nbhosting_core.throttle import retry_after_header

STATUS: list[tuple[type[errors.NbhostingError], int, str]] = [
    (errors.InvalidInput, 400, "This link is not valid"),
    (errors.LaunchRefused, 403, "This link cannot open a notebook"),
    (errors.NotFound, 404, "Notebook not found"),
    (errors.CourseArchived, 410, "This course is closed"),
    (errors.InvalidNotebook, 422, "This notebook cannot be opened"),
    (errors.OverQuota, 507, "Your workspace is full"),
    (errors.PlatformUnavailable, 502, "Your course platform is not answering"),
    (errors.StartTimeout, 504, "Your notebook server is taking too long"),
    (errors.StartFailed, 503, "Your notebook server could not start"),
    (errors.RuntimeUnavailable, 503, "Notebooks are unavailable right now"),
    (errors.AccountUnavailable, 503, "Notebooks are unavailable right now"),
    (errors.Busy, 503, "Notebooks are busy right now"),
    (errors.CommandFailed, 500, "Something went wrong on the server"),
    (errors.NbhostingError, 500, "Something went wrong on the server"),
]


def http_status(exc: errors.NbhostingError) -> tuple[int, str]:
    """The (status, title) of an error: the first matching row of :data:`STATUS`."""
    for kind, status, title in STATUS:
        if isinstance(exc, kind):
            return status, title
    return 500, "Something went wrong on the server"


def retry_after(exc: errors.NbhostingError) -> int | None:
    """The Retry-After of an error (whole seconds), for those that say when to try again."""
    return retry_after_header(exc.retry_after) if isinstance(exc, errors.Busy) else None


def retryable(status: int) -> bool:
    """Whether trying again may help (server-side trouble, not a bad link nor a full workspace)."""
    return status >= 500 and status != 507
