"""Who may reach which notebook server: the pure half of Caddy's ``forward_auth`` check."""

from __future__ import annotations

from dataclasses import dataclass

from .naming import is_key
from .tokens import jupyter_token, sign_access, verify_access

COOKIE_NAME = "nbh_access"


@dataclass(frozen=True)
class AccessDecision:
    """Whether a request may go through, and if so the Authorization header Caddy injects."""

    allowed: bool
    status: int
    reason: str
    key: str = ""
    user: str = ""
    authorization: str = ""


def key_from_uri(uri: str, prefix: str) -> str | None:
    """The container key in a proxied URI ``/<prefix>/<key>/...``, or None."""
    head = f"/{prefix}/"
    if not uri.startswith(head):
        return None
    key = uri[len(head) :].split("/", 1)[0].split("?", 1)[0]
    return key if is_key(key) else None


def cookie_path(prefix: str, key: str) -> str:
    """The path an access cookie is scoped to: only that container's URLs carry it."""
    return f"/{prefix}/{key}/"


def access_cookie_value(secret: bytes, key: str, user: str, now: float, max_age: int) -> str:
    """A signed cookie value granting ``user`` the container ``key`` for ``max_age`` seconds."""
    return sign_access(secret, key, user, int(now) + max_age)


def decide(secret: bytes, prefix: str, uri: str, cookie_values: list[str], now: float) -> AccessDecision:
    """Decide on a request for ``uri`` carrying the given access cookie values (pure).

    Allowed only when one cookie is a valid, unexpired signature for the key in the URI.
    """
    key = key_from_uri(uri, prefix)
    if key is None:
        return AccessDecision(False, 404, "not-a-notebook-url")
    if not cookie_values:
        return AccessDecision(False, 401, "no-cookie", key=key)
    for value in cookie_values:
        user = verify_access(secret, key, value, now)
        if user is not None:
            return AccessDecision(
                True, 200, "ok", key=key, user=user, authorization=f"token {jupyter_token(secret, key)}"
            )
    return AccessDecision(False, 403, "bad-cookie", key=key)
