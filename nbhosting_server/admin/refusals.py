"""The one exception the admin surface raises to refuse a request (answered by ``auth.refused_response``)."""

from __future__ import annotations


class AdminRefused(Exception):
    """A request the admin surface refuses.

    ``status``: 400 (unreadable), 401 (no principal), 403 (not allowed, no CSRF token, another origin), 413 (too
    large), 415 (not a form), 429 (too many logins); ``message``: a sentence for the person or the script;
    ``headers``: e.g. Retry-After.
    """

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.headers = headers or {}
