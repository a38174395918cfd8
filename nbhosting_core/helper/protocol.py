"""The helper's protocol: one JSON object per line each way, pydantic models, versioned.

A request names an operation and its arguments, never a path or a command: a course slug, a notebook path inside
the course, a student id, and who asked (a platform's name and a client address, for the door's rate limits).
Each is validated here, when the request is read, and again by the hub that acts on it. A line holds at most
:data:`MAX_LINE` bytes.

::

    -> {"v": 1, "op": "open", "course": "python", "notebook": "w1/intro.ipynb", "student_id": "edx:42",
        "requester": {"platform": "edx", "address": "203.0.113.7"}}
    <- {"v": 1, "ok": true, "launch": {...}}
    <- {"v": 1, "ok": false, "error": {"reason": "busy", "message": "...", "retry_after": 3.0, "why": "cap"}}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from ..errors import (
    AccountUnavailable,
    Busy,
    CommandFailed,
    CourseArchived,
    InvalidInput,
    InvalidNotebook,
    LaunchRefused,
    LimitsNotApplied,
    NbhostingError,
    NotFound,
    OverQuota,
    RuntimeUnavailable,
    StartFailed,
    StartTimeout,
)
from ..models import Launch
from ..naming import validate_course, validate_notebook_path, validate_student_id
from ..throttle import Requester

#: the protocol's version: a request of another version is refused (the app and the helper are upgraded together)
VERSION: Literal[1] = 1
#: the longest line either side reads (a request is a few hundred bytes; a launch's answer under 2 KiB)
MAX_LINE = 16 * 1024


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = VERSION


class RequesterModel(BaseModel):
    """Who sent a launch in: the platform that vouched for it and the client's address (rate limits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: str = Field(min_length=1, max_length=64, pattern=r"^[!-~]+$")
    address: str = Field(min_length=1, max_length=64, pattern=r"^[!-~]+$")


class _Notebook(_Message):
    course: str = Field(max_length=64)
    notebook: str = Field(max_length=1024)
    student_id: str = Field(max_length=256)

    @field_validator("course")
    @classmethod
    def _course(cls, value: str) -> str:
        return validate_course(value)

    @field_validator("notebook")
    @classmethod
    def _notebook(cls, value: str) -> str:
        return str(validate_notebook_path(value))

    @field_validator("student_id")
    @classmethod
    def _student(cls, value: str) -> str:
        return validate_student_id(value)


class OpenRequest(_Notebook):
    """Open ``notebook`` of ``course`` for ``student_id`` (see :meth:`~nbhosting_core.hub.Hub.open_notebook`)."""

    op: Literal["open"]
    requester: RequesterModel | None = None


class StatusRequest(_Notebook):
    """Where the launch stands (see :meth:`~nbhosting_core.hub.Hub.launch_status`)."""

    op: Literal["status"]


class PingRequest(_Message):
    """Is the helper there, and does it speak this version?"""

    op: Literal["ping"]


Request = Annotated[OpenRequest | StatusRequest | PingRequest, Field(discriminator="op")]
REQUEST: TypeAdapter[OpenRequest | StatusRequest | PingRequest] = TypeAdapter(Request)


class ErrorBody(BaseModel):
    """An error, as the app re-raises it: its class (by ``reason``), its student-safe message, details for logs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(max_length=64)
    message: str = Field(max_length=2000)
    detail: str = Field("", max_length=2000)
    retry_after: float | None = None
    why: str | None = Field(None, max_length=200)


class Response(_Message):
    """The answer to one request: a launch, a pong, or an error."""

    ok: bool
    launch: Launch | None = None
    error: ErrorBody | None = None


def requester_of(model: RequesterModel | None) -> Requester | None:
    """The door's :class:`~nbhosting_core.throttle.Requester` of a request's model."""
    return Requester(platform=model.platform, address=model.address) if model is not None else None


def requester_model(requester: Requester | None) -> RequesterModel | None:
    """The model of a :class:`~nbhosting_core.throttle.Requester` (the client's side)."""
    return RequesterModel(platform=requester.platform, address=requester.address) if requester else None


def error_body(exc: NbhostingError) -> ErrorBody:
    """What the helper answers for ``exc``."""
    return ErrorBody(
        reason=exc.reason[:64],
        message=exc.message[:2000],
        detail=exc.log_detail[-2000:],
        retry_after=getattr(exc, "retry_after", None),
        why=getattr(exc, "why", None),
    )


_SIMPLE: dict[str, type[NbhostingError]] = {
    cls.reason: cls
    for cls in (
        InvalidInput,
        NotFound,
        CourseArchived,
        InvalidNotebook,
        OverQuota,
        AccountUnavailable,
        RuntimeUnavailable,
        StartFailed,
        StartTimeout,
        LimitsNotApplied,
    )
}


def error_of(body: ErrorBody) -> NbhostingError:
    """The exception the helper's answer stands for, of the class the hub raised (the app maps it to a page)."""
    detail = f"helper: {body.detail}" if body.detail else "helper"
    if body.reason == Busy.reason:
        return Busy(body.message, retry_after=body.retry_after or 1.0, why=body.why or "busy", log_detail=detail)
    if body.reason == LaunchRefused.reason:
        return LaunchRefused(body.message, why=body.why or "refused", log_detail=detail)
    if body.reason in (CommandFailed.reason, "image-build-failed"):
        return CommandFailed(["(helper)"], -1, body.detail)
    cls = _SIMPLE.get(body.reason, NbhostingError)
    return cls(body.message, log_detail=detail)
