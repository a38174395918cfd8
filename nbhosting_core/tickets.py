"""One-time tickets: how a launch hands a server's access cookie over to the server's own origin (pure).

The launch happens on nbhosting's origin, but the access cookie must be set by the server's origin (a cookie set
there is host-only: sent to that server and no other). So the launch redirects the browser to
``<server origin>/_nbh/ticket?t=<ticket>``, and the app, reached through Caddy on that host, checks the ticket and
sets the cookie. A ticket::

    <key>.<user>.<expires>.<nonce>.<mac>        mac = base64url(HMAC-SHA256(secret,
                                                    "nbhosting-ticket-v1\\0" + key + "\\0" + user + "\\0"
                                                    + expires + "\\0" + nonce))

is bound to one server (``key``) and one student (``user``), lives :data:`TICKET_TTL` seconds, and is good
once: its nonce is spent when it is used (:class:`~nbhosting_core.system.spent.SpentNonces`, across every
worker process). A ticket is a capability until it is spent: it never goes into a log line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from .errors import LaunchRefused
from .naming import is_key

VERSION = "nbhosting-ticket-v1"
#: seconds a ticket may wait before it is used: a redirect is followed at once
TICKET_TTL = 60
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_USER_RE = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
_REFUSED = "This link has been used already, or it has expired. Open the notebook again from your course page."


@dataclass(frozen=True)
class Ticket:
    """A ticket's content, once its signature is checked."""

    key: str
    user: str
    expires: int
    nonce: str


def _mac(secret: bytes, key: str, user: str, expires: int, nonce: str) -> str:
    message = "\0".join([VERSION, key, user, str(expires), nonce]).encode()
    return base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()).rstrip(b"=").decode()


def make_ticket(secret: bytes, key: str, user: str, *, now: float, nonce: str | None = None) -> str:
    """A ticket for ``user`` to get the access cookie of the server ``key``, good until ``now`` + TTL (pure but
    for a random nonce; tests pass one)."""
    if not is_key(key) or not _USER_RE.match(user):
        raise ValueError("a ticket needs a server key and a student's user name")
    nonce = nonce or secrets.token_urlsafe(18)
    if not NONCE_RE.match(nonce):
        raise ValueError("a nonce is 22 to 64 URL-safe characters")
    expires = int(now) + TICKET_TTL
    return f"{key}.{user}.{expires}.{nonce}.{_mac(secret, key, user, expires, nonce)}"


def read_ticket(secret: bytes, text: str, *, now: float) -> Ticket:
    """The content of a well-formed, authentic, unexpired ticket (pure: whether it was spent is not checked here).

    Raises:
        LaunchRefused: ``why`` is ticket-malformed, ticket-forged or ticket-expired.
    """
    parts = text.split(".") if text.isascii() and len(text) <= 256 else []
    if len(parts) != 5:
        raise LaunchRefused(_REFUSED, why="ticket-malformed", log_detail="not a ticket")
    key, user, expires_text, nonce, mac = parts
    well_formed = is_key(key) and _USER_RE.match(user) and NONCE_RE.match(nonce)
    if not well_formed or not expires_text.isdigit() or len(expires_text) > 12:
        raise LaunchRefused(_REFUSED, why="ticket-malformed", log_detail="not a ticket")
    expires = int(expires_text)
    if not hmac.compare_digest(mac.encode(), _mac(secret, key, user, expires, nonce).encode()):
        raise LaunchRefused(_REFUSED, why="ticket-forged", log_detail=f"key={key[:8]}: signature does not match")
    if expires < now:
        raise LaunchRefused(_REFUSED, why="ticket-expired", log_detail=f"key={key[:8]}: {now - expires:.0f} s late")
    return Ticket(key=key, user=user, expires=expires, nonce=nonce)


def refused_spent(ticket: Ticket) -> LaunchRefused:
    """The error of a ticket whose nonce was spent already (a replay, or a second click on an old link)."""
    return LaunchRefused(_REFUSED, why="ticket-spent", log_detail=f"key={ticket.key[:8]}: used already")


def refused_host(ticket: Ticket, host_key: str | None) -> LaunchRefused:
    """The error of a ticket brought to another server's host than its own."""
    seen = host_key[:8] if host_key else "none"
    return LaunchRefused(_REFUSED, why="ticket-host", log_detail=f"key={ticket.key[:8]} on the host of {seen}")
