"""How the staff pages write figures, moments and names (pure): durations, sizes, UTC moments, path segments."""

from __future__ import annotations

import html
import urllib.parse
from datetime import UTC, datetime


def esc(value: object) -> str:
    """``value`` as text safe inside HTML (an element's content or a quoted attribute)."""
    return html.escape(str(value), quote=True)


def segment(value: str) -> str:
    """``value`` as one segment of a URL's path: every character but letters, digits and ``-._~`` percent-encoded
    (a student id may hold ``?``, ``#``, ``%``, ``:``)."""
    return urllib.parse.quote(value, safe="")


def query(**params: str | int | None) -> str:
    """``?a=1&b=2`` of the params given (None and "" left out), or "" when none is left."""
    kept = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    return "?" + urllib.parse.urlencode(kept) if kept else ""


def duration(seconds: float | None) -> str:
    """``seconds`` as people read a span: ``42 s``, ``5 min``, ``3 h 20 min``, ``2 d 4 h``; ``–`` when unknown."""
    if seconds is None:
        return "–"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(s // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def size(count: int | None) -> str:
    """A number of bytes as people read it (``512 B``, ``3.2 MiB``); ``–`` when unknown."""
    if count is None:
        return "–"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


def moment(when: float | None) -> str:
    """Seconds since the epoch as a UTC moment to the minute (``2026-11-26 03:46 UTC``); ``–`` when unknown."""
    if when is None:
        return "–"
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


def short_commit(commit: str | None) -> str:
    """A commit's first 10 characters, or ``–``."""
    return commit[:10] if commit else "–"
