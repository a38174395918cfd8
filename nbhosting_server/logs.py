"""What the app's processes log: never a capability that a URL carries.

A signed launch URL (``signature``), a progress page's poll token (``poll``) and a one-time ticket (``t``) open
a notebook until they expire or are spent; a share's token (``s``) opens a shared page until it is revoked.
uvicorn's access log writes each request's path and query: its records go through :class:`MaskCapabilities`,
which masks those values (the rest of the line is kept).
"""

from __future__ import annotations

import logging
import urllib.parse

#: the query parameters that are capabilities
CAPABILITIES = frozenset({"signature", "poll", "t", "s"})
MASK = "REDACTED"


def mask_query(target: str) -> str:
    """``target`` (a path with its query) with the value of every capability masked (pure)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        pairs.append(f"{name}={MASK}" if urllib.parse.unquote_plus(name) in CAPABILITIES else part)
    return f"{path}?{'&'.join(pairs)}"


class MaskCapabilities(logging.Filter):
    """A filter for uvicorn's access log: its records' arguments are (client, method, path with query, http
    version, status); the path's capabilities are masked. Records of another shape pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], mask_query(args[2]), args[3], args[4])
        return True


def mask_access_log() -> None:
    """Mask capabilities in uvicorn's access log, in this process (each worker calls it as it builds the app)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, MaskCapabilities) for f in logger.filters):
        logger.addFilter(MaskCapabilities())
