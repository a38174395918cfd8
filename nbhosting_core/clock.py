"""Time as nbhosting reads it: a clock that tests can replace, and the timestamps engines write (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

#: seconds since the epoch; ``time.time`` for real, a fake in tests
Clock = Callable[[], float]


def parse_time(text: object) -> float | None:
    """Epoch seconds of an ISO 8601 / RFC 3339 time (``2026-11-25T21:08:02.123456789Z``), or None.

    Podman's "zero time" (year 1) and anything unreadable give None.
    """
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None
