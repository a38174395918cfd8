"""LTI 1.1 launches: an OAuth 1.0a HMAC-SHA1 signed form POST, verified with oauthlib.

The platform (the "tool consumer") signs the form with its consumer key and shared secret over the URL it posts
to. nbhosting checks, in this order:

1. the OAuth parameters are there and well-formed, the method is HMAC-SHA1 (or HMAC-SHA256; never PLAINTEXT);
2. ``oauth_timestamp`` is within ``window`` seconds of now, either side (this host's clock, not the platform's);
3. the consumer key is a platform's (``[platform.lti11] consumer_key``), and the signature is that platform's
   (oauthlib's :class:`SignatureOnlyEndpoint`: an unknown key is checked against a dummy secret, in the same time);
4. the nonce was never used with that key and timestamp: it is claimed in a store shared by every process
   (:class:`~nbhosting_core.system.nonces.NonceStore`) only now, so that unsigned requests never fill the store;
5. the form is a ``basic-lti-launch-request`` of ``LTI-1p0``, the platform uses method ``lti11``, and the user,
   course and notebook are as :func:`nbhosting_core.lti.launch_for` wants them.

The URL the platform signed is ``https://HOST/...``: behind Caddy the app cannot know it from the request, and
must not trust the client's ``Host`` or ``X-Forwarded-*`` headers for it. The caller rebuilds it from nbhosting's
public URL setting and the path and query as received.
"""

from __future__ import annotations

import logging
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from oauthlib.common import Request
from oauthlib.oauth1 import RequestValidator, SignatureOnlyEndpoint

from .errors import InvalidInput, LaunchRefused
from .lti import MISCONFIGURED, NOT_VERIFIED, LtiLaunch, Nonces, launch_for
from .platforms import Platforms

log = logging.getLogger(__name__)

MESSAGE_TYPE = "basic-lti-launch-request"
VERSION = "LTI-1p0"
SIGNATURE_METHODS = ("HMAC-SHA1", "HMAC-SHA256")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_PRINTABLE = {chr(c) for c in range(33, 127)}
_DUMMY_SECRET = secrets.token_urlsafe(32)  # what an unknown consumer key is checked against (never valid anyway)


class _Validator(RequestValidator):
    """What oauthlib asks a server: secrets by consumer key, the timestamp window, what keys and nonces look like.

    It remembers what it saw, so that a refusal can say why (oauthlib's answer is only a yes or a no).
    """

    def __init__(self, platforms: Platforms, *, now: float, window: float) -> None:
        super().__init__()
        self.platforms, self.now, self.window = platforms, now, window
        self.client_key = ""  # as sent (oauthlib swaps an unknown key for its dummy before checking the signature)
        self.timestamp_seen: float | None = None
        self.timestamp_ok = False

    @property
    def allowed_signature_methods(self) -> tuple[str, ...]:
        return SIGNATURE_METHODS

    @property
    def safe_characters(self) -> set[str]:
        return _PRINTABLE  # consumer keys and nonces are any printable ASCII (platforms choose them)

    @property
    def client_key_length(self) -> tuple[int, int]:
        return 1, 255

    @property
    def nonce_length(self) -> tuple[int, int]:
        return 1, 255

    @property
    def timestamp_lifetime(self) -> int:
        return 10**10  # the window is checked below, on nbhosting's clock

    @property
    def enforce_ssl(self) -> bool:
        return True

    @property
    def dummy_client(self) -> str:
        return "nbhosting-dummy-consumer"

    def validate_client_key(self, client_key: str, request: Request) -> bool:
        return self.platforms.by_consumer_key(client_key) is not None

    def get_client_secret(self, client_key: str, request: Request) -> str:
        platform = self.platforms.by_consumer_key(client_key)
        if platform is None or platform.lti11 is None:
            return _DUMMY_SECRET
        return platform.lti11.shared_secret.get_secret_value()

    def validate_timestamp_and_nonce(
        self,
        client_key: str,
        timestamp: Any,
        nonce: str,
        request: Request,
        request_token: str | None = None,
        access_token: str | None = None,
    ) -> bool:
        self.client_key = client_key
        self.timestamp_seen = float(int(timestamp))  # ten digits: checked by oauthlib before
        self.timestamp_ok = abs(self.now - self.timestamp_seen) <= self.window
        return self.timestamp_ok  # the nonce is claimed once the signature is known good


def verify_lti11(url: str, body: str, platforms: Platforms, *, now: float, window: float, nonces: Nonces) -> LtiLaunch:
    """Verify an LTI 1.1 launch and say who and what it names.

    Args:
        url: the URL the platform signed: nbhosting's public URL, then the path and query as received.
        body: the form, as received (``application/x-www-form-urlencoded``).
        now: seconds since the epoch; window: seconds either side of ``now`` a timestamp may be.
        nonces: where each (consumer key, timestamp, nonce) is claimed once, across processes.

    Raises:
        InvalidInput: (400) not a signed LTI 1.1 launch form, or it lacks its user, course or notebook.
        LaunchRefused: (403) ``why`` one of insecure, stale, unknown-consumer, bad-signature, replayed, method,
            course.
    """
    if not url.lower().startswith("https://"):
        raise LaunchRefused(
            MISCONFIGURED, why="insecure", log_detail="NBH_PUBLIC_URL is not https: LTI 1.1 launches need TLS"
        )
    validator = _Validator(platforms, now=now, window=window)
    try:
        valid, request = SignatureOnlyEndpoint(validator).validate_request(url, "POST", body, FORM)
    except ValueError as exc:  # a body oauthlib cannot decode at all
        raise InvalidInput(NOT_VERIFIED, log_detail=f"not a form oauthlib can read: {exc}") from exc
    if request is None or validator.timestamp_seen is None:
        raise InvalidInput(
            NOT_VERIFIED,
            log_detail="not an OAuth 1.0a HMAC-SHA1 signed form (oauth_* parameters missing or malformed; "
            "oauthlib's log line says which)",
        )
    key = validator.client_key
    shown = repr(key[:60])
    if not validator.timestamp_ok:
        raise LaunchRefused(
            NOT_VERIFIED,
            why="stale",
            log_detail=f"consumer {shown}: oauth_timestamp {now - validator.timestamp_seen:+.0f} s from now "
            f"(window {window:g} s either side: is a clock off?)",
        )
    if not request.validator_log.get("client"):
        raise LaunchRefused(MISCONFIGURED, why="unknown-consumer", log_detail=f"no platform has consumer key {shown}")
    if not valid:
        raise LaunchRefused(
            NOT_VERIFIED,
            why="bad-signature",
            log_detail=f"consumer {shown}: the signature does not match (shared secret, or the launch URL "
            f"the platform signed is not {url.split('?')[0]!r})",
        )
    platform = platforms.by_consumer_key(key)
    assert platform is not None  # validator_log["client"]
    if not nonces.claim(f"lti11:{key}", validator.timestamp_seen, str(request.nonce)):
        raise LaunchRefused(NOT_VERIFIED, why="replayed", log_detail=f"{platform.name}: this launch was already used")
    form = _single_values(body)
    if form.get("lti_message_type") != MESSAGE_TYPE or form.get("lti_version") != VERSION:
        raise InvalidInput(
            NOT_VERIFIED,
            log_detail=f"{platform.name}: lti_message_type {form.get('lti_message_type', '')[:40]!r}, "
            f"lti_version {form.get('lti_version', '')[:20]!r}: not a {MESSAGE_TYPE} of {VERSION}",
        )
    if not platform.uses("lti11"):
        raise LaunchRefused(MISCONFIGURED, why="method", log_detail=f"{platform.name} may not launch by LTI 1.1")
    custom = {name.removeprefix("custom_"): value for name, value in form.items() if name.startswith("custom_")}
    return launch_for(platform, "lti11", form.get("user_id"), custom, url)


def _single_values(body: str) -> Mapping[str, str]:
    """The form's fields; a field sent twice is dropped (ambiguous, whichever copy was meant)."""
    fields: dict[str, str] = {}
    twice: set[str] = set()
    for name, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
        if name in fields:
            twice.add(name)
        fields[name] = value
    for name in twice:
        del fields[name]
    return fields
