"""The door: which launches a trusted platform vouches for (pure; the web layer asks, the hub then opens).

A **signed launch URL** is the launch URL with three query parameters::

    /notebookLazyCopy/<course>/<notebook>/<student>?platform=<name>&expires=<epoch>&signature=<sig>

    sig = base64url(HMAC-SHA256(platform secret,
                                "nbhosting-launch-v1\\0" + platform + "\\0" + course + "\\0" + notebook
                                + "\\0" + student + "\\0" + expires))        # no "=" padding

where ``notebook`` and ``student`` are the decoded path parts. It opens that notebook for that student only, until
it expires (at most ``signed_launch_max_ttl`` ahead). A **legacy** launch (no parameters: a bare student id) is let
in only for the one platform allowed to send them, and only when the browser says (``Referer``) it comes from that
platform's origins. Whatever the method, the platform must be allowed the course. Students are scoped by their
platform: ``edx`` student ``4f8a`` is nbhosting student ``edx:4f8a``.

Once admitted, a launch's progress page follows the start with a **poll token**: nbhosting's own short-lived
signature over (student, course, notebook), so that polls need neither the platform's signature nor its origin.

An **admission token** is the same kind of signature, made by nbhosting itself once it has verified a launch that
did not come as a launch URL (an LTI 1.1 or 1.3 launch, see :mod:`nbhosting_core.lti`): the verified launch is
answered with a redirect to the launch URL carrying ``?admit=<token>``, so that it continues exactly as a click
(progress page, polls, cookie). It names the platform and the method, and lives a minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import LaunchRefused
from .platforms import Platform, Platforms, origin_of

VERSION = b"nbhosting-launch-v1"
PARAMS = ("platform", "expires", "signature")


def launch_signature(secret: str, platform: str, course: str, notebook: str, student: str, expires: int) -> str:
    """The signature of a launch URL (see the module docstring) (pure)."""
    message = b"\0".join([VERSION, *(part.encode() for part in (platform, course, notebook, student, str(expires)))])
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_launch_path(
    platform: Platform, course: str, notebook: str, student: str, expires: int, *, prefix: str = "notebookLazyCopy"
) -> str:
    """The path and query of a launch URL signed for ``platform`` (what a platform's code builds) (pure)."""
    if platform.secret is None:
        raise ValueError(f"platform {platform.name!r} has no secret: it cannot sign launch URLs")
    signature = launch_signature(platform.secret.get_secret_value(), platform.name, course, notebook, student, expires)
    quote = urllib.parse.quote
    path = f"/{prefix}/{quote(course, safe='')}/{quote(notebook)}/{quote(student, safe='')}"
    return path + "?" + urllib.parse.urlencode({"platform": platform.name, "expires": expires, "signature": signature})


@dataclass(frozen=True)
class Admission:
    """A launch the door lets in: who vouched, by which method, and the student as nbhosting knows them."""

    platform: str
    method: str
    student_id: str


_REFUSED = "This link does not come from your course, or it has expired. Open the notebook again from your course page."


def admit(
    platforms: Platforms,
    course: str,
    notebook: str,
    student: str,
    query: Mapping[str, str],
    *,
    now: float,
    max_ttl: float,
    referer: str | None = None,
    fetch_site: str | None = None,
) -> Admission:
    """Let a launch in if a trusted platform vouches for it, else refuse it (pure).

    Args:
        query: the launch URL's query parameters (``platform``, ``expires``, ``signature``).
        now: seconds since the epoch.
        max_ttl: how far ahead of ``now`` a signed URL may expire.
        referer, fetch_site: the request's ``Referer`` and ``Sec-Fetch-Site`` headers (for legacy launches).

    Raises:
        LaunchRefused: with ``why`` one of unsigned, unknown-platform, method, course, malformed, expired,
            too-far, bad-signature, legacy-origin.
    """
    if not any(query.get(p) for p in PARAMS):
        return _legacy(platforms, course, student, referer, fetch_site)
    name, expires_text, signature = (query.get(p, "") for p in PARAMS)
    platform = platforms.get(name)
    if platform is None:
        raise LaunchRefused(_REFUSED, why="unknown-platform", log_detail=f"no platform {name[:40]!r}")
    if not platform.uses("signed"):
        raise LaunchRefused(_REFUSED, why="method", log_detail=f"{name} may not send signed launches")
    if not platform.may_launch(course):
        raise LaunchRefused(
            "This course cannot be opened from here.",
            why="course",
            log_detail=f"{name} may not launch course {course[:80]!r}",
        )
    if not expires_text.isascii() or not expires_text.isdigit() or len(expires_text) > 12 or not signature:
        raise LaunchRefused(_REFUSED, why="malformed", log_detail="expires or signature missing or malformed")
    expires = int(expires_text)
    if expires < now:
        raise LaunchRefused(
            "This link has expired. Open the notebook again from your course page.",
            why="expired",
            log_detail=f"expired {now - expires:.0f} s ago",
        )
    if expires > now + max_ttl:
        raise LaunchRefused(_REFUSED, why="too-far", log_detail=f"expires {expires - now:.0f} s ahead")
    assert platform.secret is not None  # a platform with method "signed" has one (validated)
    expected = launch_signature(platform.secret.get_secret_value(), name, course, notebook, student, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise LaunchRefused(_REFUSED, why="bad-signature", log_detail=f"{name}: signature does not match")
    return Admission(platform=name, method="signed", student_id=platform.student(student))


def _legacy(platforms: Platforms, course: str, student: str, referer: str | None, fetch_site: str | None) -> Admission:
    platform = platforms.legacy()
    if platform is None:
        raise LaunchRefused(_REFUSED, why="unsigned", log_detail="an unsigned launch, and no platform may send them")
    if not platform.may_launch(course):
        raise LaunchRefused(
            "This course cannot be opened from here.",
            why="course",
            log_detail=f"{platform.name} may not launch course {course[:80]!r}",
        )
    came_from = origin_of(referer) if referer else None
    if came_from not in platform.origins:
        raise LaunchRefused(
            _REFUSED,
            why="legacy-origin",
            log_detail=f"unsigned launch from {came_from or 'nowhere'} (Sec-Fetch-Site {fetch_site})",
        )
    return Admission(platform=platform.name, method="legacy", student_id=platform.student(student))


def poll_token(secret: bytes, admission: Admission, course: str, notebook: str, student: str, expires: int) -> str:
    """nbhosting's token for following the start of ``admission`` until ``expires`` (pure).

    ``student`` is the student id as the launch URL gives it (the platform's); the token names the platform.
    """
    return (
        f"{admission.platform}.{expires}.{_poll_digest(secret, admission.platform, course, notebook, student, expires)}"
    )


def check_poll_token(
    secret: bytes, platforms: Platforms, token: str, course: str, notebook: str, student: str, *, now: float
) -> Admission:
    """The admission a valid, unexpired poll token for this launch was made for (pure).

    Raises:
        LaunchRefused: the token is malformed, expired, made for another launch, or its platform is gone.
    """
    name, _, rest = token.partition(".")
    expires_text, _, digest = rest.partition(".")
    platform = platforms.get(name)
    if platform is None or not expires_text.isascii() or not expires_text.isdigit() or len(expires_text) > 12:
        raise LaunchRefused(_REFUSED, why="malformed", log_detail="poll token malformed or of an unknown platform")
    expires = int(expires_text)
    if expires < now:
        raise LaunchRefused(_REFUSED, why="expired", log_detail="poll token expired")
    expected = _poll_digest(secret, name, course, notebook, student, expires)
    if not hmac.compare_digest(expected.encode(), digest.encode("utf-8", "replace")):
        raise LaunchRefused(_REFUSED, why="bad-signature", log_detail="poll token does not match this launch")
    return Admission(platform=name, method="poll", student_id=platform.student(student))


#: the methods whose launches nbhosting verifies itself, then admits with an admission token
ADMISSION_METHODS = ("lti11", "lti13")


def admission_token(secret: bytes, admission: Admission, course: str, notebook: str, student: str, expires: int) -> str:
    """nbhosting's token admitting ``admission`` (verified by nbhosting, e.g. an LTI launch) until ``expires`` (pure).

    ``student`` is the platform's student id (unscoped), as the launch URL gives it.
    """
    if admission.method not in ADMISSION_METHODS:
        raise ValueError(f"method {admission.method!r} is not admitted by token")
    digest = _admission_digest(secret, admission.platform, admission.method, course, notebook, student, expires)
    return f"{admission.platform}.{admission.method}.{expires}.{digest}"


def check_admission_token(
    secret: bytes, platforms: Platforms, token: str, course: str, notebook: str, student: str, *, now: float
) -> Admission:
    """The admission a valid, unexpired admission token for this launch was made for (pure).

    Raises:
        LaunchRefused: the token is malformed, expired, made for another launch, or its platform is gone or no
            longer uses the token's method.
    """
    name, method, expires_text, digest = (token.split(".", 3) + ["", "", ""])[:4]
    platform = platforms.get(name)
    well_formed = expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12
    if platform is None or method not in ADMISSION_METHODS or not well_formed:
        raise LaunchRefused(_REFUSED, why="malformed", log_detail="admission token malformed or of an unknown platform")
    expires = int(expires_text)
    if expires < now:
        raise LaunchRefused(_REFUSED, why="expired", log_detail="admission token expired")
    expected = _admission_digest(secret, name, method, course, notebook, student, expires)
    if not hmac.compare_digest(expected.encode(), digest.encode("utf-8", "replace")):
        raise LaunchRefused(_REFUSED, why="bad-signature", log_detail="admission token does not match this launch")
    if method not in platform.methods:
        raise LaunchRefused(_REFUSED, why="method", log_detail=f"{name} may not launch by {method} any more")
    return Admission(platform=name, method=method, student_id=platform.student(student))


def _admission_digest(
    secret: bytes, platform: str, method: str, course: str, notebook: str, student: str, expires: int
) -> str:
    message = "\0".join(["nbhosting-admit-v1", platform, method, course, notebook, student, str(expires)]).encode()
    return base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()).rstrip(b"=").decode()


def _poll_digest(secret: bytes, platform: str, course: str, notebook: str, student: str, expires: int) -> str:
    message = "\0".join(["nbhosting-poll-v1", platform, course, notebook, student, str(expires)]).encode()
    return base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()).rstrip(b"=").decode()
