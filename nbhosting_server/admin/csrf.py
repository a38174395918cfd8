"""CSRF tokens and origin checks of the admin surface (pure).

A session's CSRF token is ``HMAC(secret, "staff-csrf", SHA-256(session))``: every worker derives the same one,
nothing is stored, and it changes with the session. A form carries it in its ``csrf`` field, a script that calls
the API with the session's cookie in an ``X-CSRF-Token`` header. A bearer token needs none: nothing ambient
(no cookie) carries it, so no other site can make a browser send it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

#: the form field and the header that carry a session's CSRF token
FIELD = "csrf"
HEADER = "x-csrf-token"
#: Sec-Fetch-Site values of a request a page of this site (or the user, typing) made
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


def csrf_for(secret: bytes, session: str) -> str:
    """The CSRF token of the session whose cookie holds ``session``."""
    session_hash = hashlib.sha256(session.encode()).hexdigest()
    digest = hmac.new(secret, f"staff-csrf\x00{session_hash}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_ok(secret: bytes, session: str, given: str | None) -> bool:
    """Whether ``given`` is the CSRF token of ``session`` (compared in constant time)."""
    if not given or not given.isascii():
        return False
    return hmac.compare_digest(given.encode(), csrf_for(secret, session).encode())


def same_origin(own_origin: str, origin: str | None, fetch_site: str | None) -> bool:
    """Whether a write may come from where the browser says it does: ``Origin`` (when sent) is the site's own,
    and ``Sec-Fetch-Site`` (when sent) is same-origin or none. Clients that send neither (scripts) pass: the CSRF
    token (or a bearer token) is what they must have."""
    if origin is not None and origin != own_origin:
        return False
    return fetch_site is None or fetch_site.lower() in SAME_SITE_FETCHES
