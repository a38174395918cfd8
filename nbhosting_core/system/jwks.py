"""Platforms' public keys (JSON Web Key Sets), fetched over HTTPS, bounded, cached: the one place nbhosting asks a
course platform something.

A fetch has ONE deadline for everything (connect, TLS, headers, body: a watchdog shuts the socket when it passes,
so a platform answering a byte a second cannot hold a launch) and reads at most ``max_bytes``. A key set is kept
``ttl`` seconds; a token signed with a key id the cached set does not hold makes nbhosting fetch the set again
(the platform rotated its keys), at most once per ``refetch_interval`` per set, so that invented key ids cannot
make it hammer a platform. When a fetch fails and an older copy of the set is cached, that copy keeps serving.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import math
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKSetError

from ..errors import LaunchRefused, PlatformUnavailable

log = logging.getLogger(__name__)

#: (url, timeout, max_bytes) -> the parsed JSON document; raises PlatformUnavailable
Fetch = Callable[[str, float, int], Any]
_UNAVAILABLE = "Your course platform did not answer nbhosting in time. Try again in a moment."


def fetch_json(url: str, timeout: float, max_bytes: int) -> Any:
    """GET ``url`` (https, or http for a platform on this host) and parse its JSON body, within ``timeout``
    seconds overall, reading at most ``max_bytes``; no redirects followed.

    Raises:
        PlatformUnavailable: no answer in time, not 200, too large, or not JSON (the admin's detail says which).
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    where = f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
    deadline = time.monotonic() + timeout
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    elif parts.scheme == "http":
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    else:
        raise PlatformUnavailable(_UNAVAILABLE, log_detail=f"key set URL {where!r} is neither https nor http")
    watchdog: threading.Timer | None = None
    try:
        conn.connect()
        sock = conn.sock
        assert sock is not None
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, args=(sock,))
        watchdog.daemon = True
        watchdog.start()
        target = parts.path or "/"
        conn.request("GET", target + (f"?{parts.query}" if parts.query else ""), headers=_HEADERS)
        response = conn.getresponse()
        if response.status != 200:
            raise PlatformUnavailable(_UNAVAILABLE, log_detail=f"{where} answered HTTP {response.status}")
        body = b""
        while len(body) <= max_bytes:
            chunk = response.read1(65536)
            if not chunk:
                break
            body += chunk
    except (OSError, http.client.HTTPException) as exc:
        late = time.monotonic() >= deadline
        detail = f"no answer within {timeout:g} s" if late else f"{type(exc).__name__}: {exc}"
        raise PlatformUnavailable(_UNAVAILABLE, log_detail=f"{where}: {detail}") from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
        conn.close()
    if time.monotonic() >= deadline:
        raise PlatformUnavailable(_UNAVAILABLE, log_detail=f"{where}: no answer within {timeout:g} s")
    if len(body) > max_bytes:
        raise PlatformUnavailable(_UNAVAILABLE, log_detail=f"{where}: more than {max_bytes} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise PlatformUnavailable(_UNAVAILABLE, log_detail=f"{where}: not JSON") from exc


_HEADERS = {"Accept": "application/json", "User-Agent": "nbhosting", "Connection": "close"}


def _cut(sock: socket.socket) -> None:
    """The deadline passed: end every read and write on ``sock`` now."""
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class _Cached:
    keys: dict[str, PyJWK]  # by kid ("" for a key without one)
    fetched: float


def parse_key_set(data: Any) -> dict[str, PyJWK]:
    """The RSA signing keys of a JWKS document, by key id (pure); keys of other types or uses are left out.

    Raises:
        ValueError: not a key set, or no usable RSA signing key in it.
    """
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JSON Web Key Set")
    try:
        found = PyJWKSet.from_dict(data)
    except PyJWKSetError as exc:
        raise ValueError(str(exc)) from exc
    keys = {}
    for key in found.keys:
        if key.key_type == "RSA" and key.public_key_use in ("sig", None) and key.algorithm_name in ("RS256", None):
            keys[key.key_id or ""] = key
    if not keys:
        raise ValueError("no RSA signing key")
    return keys


class KeySets:
    """The platforms' key sets this process has fetched, by URL; safe to share between threads."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        ttl: float,
        refetch_interval: float,
        clock: Callable[[], float] = time.time,
        fetch: Fetch = fetch_json,
    ) -> None:
        self.timeout, self.max_bytes, self.ttl, self.refetch_interval = timeout, max_bytes, ttl, refetch_interval
        self.clock = clock
        self._fetch = fetch
        self._cached: dict[str, _Cached] = {}
        self._tried: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, url: str, kid: str | None) -> PyJWK:
        """The key ``kid`` of the key set at ``url`` (without a kid: the set's only key).

        Raises:
            PlatformUnavailable: the set is needed and cannot be fetched.
            LaunchRefused: (``why`` unknown-key) the set, even fetched again, has no such key.
        """
        with self._lock:  # one fetch at a time per process: concurrent launches wait for it, not fetch it again
            cached = self._cached.get(url)
            now = self.clock()
            may_fetch = now - self._tried.get(url, -math.inf) >= self.refetch_interval
            if cached is None and not may_fetch:  # it failed a moment ago: fail fast, do not queue on a dead platform
                raise PlatformUnavailable(
                    _UNAVAILABLE, log_detail=f"{url}: fetching it failed {now - self._tried[url]:.0f} s ago"
                )
            if cached is None or (now - cached.fetched >= self.ttl and may_fetch):
                cached = self._refresh(url, cached, why="first use" if cached is None else "expired")
                may_fetch = False
            key = _find(cached, kid)
            if key is None and may_fetch:
                cached = self._refresh(url, cached, why=f"unknown key id {_shown(kid)}")
                key = _find(cached, kid)
        if key is None:
            raise LaunchRefused(
                "Your course platform signed this launch with a key nbhosting does not know. Try again in a moment.",
                why="unknown-key",
                log_detail=f"no key {_shown(kid)} in {url} (keys: {', '.join(map(_shown, cached.keys)) or 'none'})",
            )
        return key

    def _refresh(self, url: str, cached: _Cached | None, *, why: str) -> _Cached:
        self._tried[url] = self.clock()
        started = time.monotonic()
        try:
            keys = parse_key_set(self._fetch(url, self.timeout, self.max_bytes))
        except (PlatformUnavailable, ValueError) as exc:
            detail = exc.log_detail if isinstance(exc, PlatformUnavailable) else f"{url}: {exc}"
            if cached is not None:
                log.warning("key set %s not refreshed (%s): %s; the cached one stays in use", url, why, detail)
                return cached
            if isinstance(exc, PlatformUnavailable):
                raise
            raise PlatformUnavailable(_UNAVAILABLE, log_detail=detail) from exc
        fresh = _Cached(keys=keys, fetched=self.clock())
        self._cached[url] = fresh
        log.info(
            "key set %s fetched (%s): %d key(s) %s in %.3fs",
            url,
            why,
            len(keys),
            ", ".join(map(_shown, keys)),
            time.monotonic() - started,
        )
        return fresh


def _find(cached: _Cached, kid: str | None) -> PyJWK | None:
    if kid is None:
        return next(iter(cached.keys.values())) if len(cached.keys) == 1 else None
    return cached.keys.get(kid)


def _shown(kid: str | None) -> str:
    """A key id fit for a log line (it comes from the token: printable, bounded)."""
    if kid is None:
        return "(none)"
    return repr(kid[:64]) if kid.isprintable() else "(unprintable)"
