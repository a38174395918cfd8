"""Pure crypto helpers: random access keys, per-container Jupyter tokens, signed access cookies.

A container's URL key is random (160 bits) and stored as a podman label. Its Jupyter token is
``HMAC(secret, key)``, so nothing secret is stored beside the container and every server process can
recompute it. The browser holds a cookie scoped to ``/<prefix>/<key>/`` whose value is signed by the
server and binds the key, the student's user and an expiry date; it never sees the Jupyter token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from .naming import is_key

KEY_BYTES = 20


def new_key() -> str:
    """A fresh, unguessable container key: 160 random bits as 40 hex digits."""
    return secrets.token_hex(KEY_BYTES)


def new_secret() -> bytes:
    """A new server secret (256 bits)."""
    return secrets.token_bytes(32)


def _mac(secret: bytes, *parts: str) -> str:
    digest = hmac.new(secret, "\x00".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def jupyter_token(secret: bytes, key: str) -> str:
    """The Jupyter token of the container with ``key``: derived, never stored."""
    return _mac(secret, "jupyter-token", key)


def sign_access(secret: bytes, key: str, user: str, expires: int) -> str:
    """A cookie value granting ``user`` access to the container ``key`` until ``expires`` (epoch s)."""
    return f"{user}.{expires}.{_mac(secret, 'access', key, user, str(expires))}"


def verify_access(secret: bytes, key: str, value: str, now: float) -> str | None:
    """The user named in a valid, unexpired access cookie for ``key``; None for anything else."""
    if not is_key(key):
        return None
    try:
        user, expires_text, mac = value.split(".")
        expires = int(expires_text)
    except ValueError:
        return None
    if expires < now:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(secret, "access", key, user, str(expires)).encode()):
        return None
    return user
