"""LTI launches: who and what a verified launch names, and how it continues as a click (pure).

A course platform can send a student in by LTI instead of a signed launch URL:

* **LTI 1.1** (:mod:`nbhosting_core.lti11`): a form POST signed with OAuth 1.0a (HMAC-SHA1) with the consumer
  key and shared secret of ``[platform.lti11]``;
* **LTI 1.3** (:mod:`nbhosting_core.lti13`): an OpenID Connect login started by the platform, then a form POST of
  an ``id_token`` (a JWT the platform signs with a key of its JWKS, ``[platform.lti13]``).

Once verified, both name the same things:

* **who**: the platform's user id (LTI 1.1 ``user_id``, LTI 1.3 ``sub``; Open edX sends the per-course anonymous
  user id), scoped by the platform as every student is (``edx:<id>``);
* **what**: the course and notebook, from the link's custom parameters ``course`` and ``notebook`` (LTI 1.1 sends
  them as ``custom_course`` and ``custom_notebook``; LTI 1.3 in its ``.../claim/custom`` claim). Failing those,
  from the query of the URL the link points to (``...?course=python101&notebook=w1/intro.ipynb``: part of what the
  platform signs in both versions). The resource link id is opaque (Open edX makes it from the block's usage key),
  so nbhosting cannot map it to a notebook without a table the admin would have to keep: it is not used.

The course must be one the platform may launch, and all three are validated as for a click. The verified launch
then continues exactly as a click: a redirect to the launch URL with nbhosting's own short-lived admission token
(:func:`nbhosting_core.launches.admission_token`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from .errors import InvalidInput, LaunchRefused
from .launches import Admission, admission_token
from .naming import validate_course, validate_notebook_path, validate_student_id
from .platforms import Platform

LtiMethod = Literal["lti11", "lti13"]
#: seconds the admission token of a verified launch lives: the time of one redirect
ADMISSION_TTL = 60
NOT_VERIFIED = "This launch from your course could not be verified. Open the notebook again from your course page."
MISCONFIGURED = "Your course's link to its notebooks is not set up correctly. Please tell your course staff."
NO_TARGET = (
    "This course link does not say which notebook to open. Its custom parameters must name the course and the "
    'notebook, e.g. ["course=python101", "notebook=w1/intro.ipynb"].'
)


class Nonces(Protocol):
    """Where nonces are claimed once across processes (:class:`nbhosting_core.system.nonces.NonceStore`)."""

    def claim(self, scope: str, issued: float, nonce: str) -> bool:
        """True the first time (``scope``, ``issued``, ``nonce``) is claimed, False ever after."""
        ...


@dataclass(frozen=True)
class LtiLaunch:
    """A verified LTI launch: the platform, the method, its user (unscoped) and the notebook to open."""

    platform: str
    method: LtiMethod
    user_id: str
    course: str
    notebook: str

    @property
    def student_id(self) -> str:
        """nbhosting's student: the platform's user, scoped by the platform."""
        return f"{self.platform}:{self.user_id}"

    def admission(self) -> Admission:
        """The door's admission of this launch."""
        return Admission(platform=self.platform, method=self.method, student_id=self.student_id)


def launch_for(
    platform: Platform,
    method: LtiMethod,
    user_id: object,
    custom: Mapping[str, object],
    target_url: object = None,
) -> LtiLaunch:
    """Who and what a verified launch of ``platform`` names (pure).

    Args:
        user_id: the launch's user (``user_id``, ``sub``), as received.
        custom: its custom parameters, without the ``custom_`` prefix of LTI 1.1.
        target_url: the URL the link points to (LTI 1.1: the launch URL; 1.3: ``target_link_uri``), whose query
            may name the course and notebook instead.

    Raises:
        InvalidInput: no user, no course or notebook, or one that is not valid (as for a click).
        LaunchRefused: (``why`` course) the platform may not launch that course.
    """
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput(
            "This launch does not say who you are: your course must send its LTI user id.",
            log_detail=f"{platform.name}: {method} launch without a user id",
        )
    validate_student_id(user_id)
    course, notebook = _named(custom, "course"), _named(custom, "notebook")
    if (course is None or notebook is None) and isinstance(target_url, str):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target_url).query))
        course, notebook = course or query.get("course"), notebook or query.get("notebook")
    if not course or not notebook:
        raise InvalidInput(NO_TARGET, log_detail=f"{platform.name}: {method} launch names no course or notebook")
    validate_course(course)
    validate_notebook_path(notebook)
    if not platform.may_launch(course):
        raise LaunchRefused(
            "This course cannot be opened from here.",
            why="course",
            log_detail=f"{platform.name} may not launch course {course[:80]!r}",
        )
    return LtiLaunch(platform=platform.name, method=method, user_id=user_id, course=course, notebook=notebook)


def _named(custom: Mapping[str, object], name: str) -> str | None:
    value = custom.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def continue_path(secret: bytes, launch: LtiLaunch, *, now: float, prefix: str = "notebookLazyCopy") -> str:
    """The launch URL (path and query) that continues a verified launch as a click, admitted by nbhosting's own
    token for :data:`ADMISSION_TTL` seconds (pure)."""
    token = admission_token(
        secret, launch.admission(), launch.course, launch.notebook, launch.user_id, int(now) + ADMISSION_TTL
    )
    quote = urllib.parse.quote
    path = f"/{prefix}/{quote(launch.course, safe='')}/{quote(launch.notebook)}/{quote(launch.user_id, safe='')}"
    return f"{path}?{urllib.parse.urlencode({'admit': token})}"
