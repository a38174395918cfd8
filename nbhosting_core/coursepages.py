"""The door of course pages: a signed link to a student's table of contents of one course (pure).

A platform links a student to ``/course/<course>/<student>?platform=<name>&expires=<epoch>&signature=<sig>``, signed
as a launch URL is (:mod:`nbhosting_core.launches`) but over its own prefix and no notebook::

    sig = base64url(HMAC-SHA256(platform secret,
                                "nbhosting-course-v1\\0" + platform + "\\0" + course + "\\0" + student
                                + "\\0" + expires))        # no "=" padding

The page lists the course's tracks; each notebook links to its launch URL, signed by nbhosting for the same
platform, student and course, expiring when the page's link does: what the platform vouched for, and no more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping

from .errors import LaunchRefused
from .launches import PARAMS, Admission, signed_launch_path
from .platforms import Platform, Platforms

COURSE_VERSION = b"nbhosting-course-v1"
COURSE_PREFIX = "course"
_REFUSED = "This link does not come from your course, or it has expired. Open the course again from your course page."


def course_page_signature(secret: str, platform: str, course: str, student: str, expires: int) -> str:
    """The signature of a course page link (see the module docstring) (pure)."""
    message = b"\0".join([COURSE_VERSION, *(p.encode() for p in (platform, course, student, str(expires)))])
    return base64.urlsafe_b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).rstrip(b"=").decode()


def signed_course_page_path(platform: Platform, course: str, student: str, expires: int) -> str:
    """The path and query of a course page link signed for ``platform`` (what a platform's code builds) (pure)."""
    if platform.secret is None:
        raise ValueError(f"platform {platform.name!r} has no secret: it cannot sign links")
    signature = course_page_signature(platform.secret.get_secret_value(), platform.name, course, student, expires)
    quote = urllib.parse.quote
    path = f"/{COURSE_PREFIX}/{quote(course, safe='')}/{quote(student, safe='')}"
    return path + "?" + urllib.parse.urlencode({"platform": platform.name, "expires": expires, "signature": signature})


def admit_course_page(
    platforms: Platforms, course: str, student: str, query: Mapping[str, str], *, now: float, max_ttl: float
) -> tuple[Admission, Platform, int]:
    """The admission, platform and expiry of a signed course page link, else refuse it (pure).

    Raises:
        LaunchRefused: unsigned, unknown-platform, method, course, malformed, expired, too-far, bad-signature.
    """
    name, expires_text, signature = (query.get(p, "") for p in PARAMS)
    if not (name or expires_text or signature):
        raise LaunchRefused(_REFUSED, why="unsigned", log_detail="an unsigned course page link")
    platform = platforms.get(name)
    if platform is None or not platform.uses("signed") or platform.secret is None:
        raise LaunchRefused(_REFUSED, why="unknown-platform", log_detail=f"no signing platform {name[:40]!r}")
    if not platform.may_launch(course):
        raise LaunchRefused("This course cannot be opened from here.", why="course", log_detail=f"{name}: {course}")
    if not expires_text.isascii() or not expires_text.isdigit() or len(expires_text) > 12 or not signature:
        raise LaunchRefused(_REFUSED, why="malformed", log_detail="expires or signature missing or malformed")
    expires = int(expires_text)
    if expires < now:
        raise LaunchRefused(_REFUSED, why="expired", log_detail=f"expired {now - expires:.0f} s ago")
    if expires > now + max_ttl:
        raise LaunchRefused(_REFUSED, why="too-far", log_detail=f"expires {expires - now:.0f} s ahead")
    expected = course_page_signature(platform.secret.get_secret_value(), name, course, student, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise LaunchRefused(_REFUSED, why="bad-signature", log_detail=f"{name}: signature does not match")
    return Admission(platform=name, method="signed", student_id=platform.student(student)), platform, expires


def notebook_link(platform: Platform, course: str, notebook: str, student: str, expires: int) -> str:
    """The launch URL of ``notebook`` on a course page: signed for the page's platform, student and expiry (pure)."""
    return signed_launch_path(platform, course, notebook, student, expires)
