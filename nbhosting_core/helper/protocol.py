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

What students can do with their notebooks (:mod:`nbhosting_core.studentwork`) has its own operations: ``notebooks``
(added to version 1: an older helper refuses it as malformed), ``reset``, ``backups``, ``restore``, ``download``,
``download-workspace``, ``share``, ``unshare``, ``shares``. An answer may be longer than a request (a list of
backups, or of the notebooks of a workspace: at most 500 of ~1 KiB each): at most :data:`MAX_ANSWER` bytes. A
download's bytes do not go in the line: its answer names a :class:`Payload`, and exactly ``payload.size`` raw bytes
follow the line on the same connection (at most what the client accepts; it spools them, so the helper is never
held by a slow browser)::

    -> {"v": 1, "op": "download-workspace", "course": "python", "student_id": "edx:42"}
    <- {"v": 1, "ok": true, "payload": {"filename": "python.zip", "media_type": "application/zip", "size": 5120}}
    <- 5120 bytes of the zip

What admins do to students' servers (:class:`~nbhosting_core.serveradmin.ServerAdmin`) has its own operations,
added to version 1 (an older helper refuses them as malformed): ``servers`` (its answer a payload of
:class:`~nbhosting_core.models.ServerView` lines, one JSON object each: a host may have tens of thousands),
``server``, ``stop-server``, ``restart-server``, ``server-logs``. Each names a server by its course and student id,
never by a container's name::

    -> {"v": 1, "op": "server-logs", "course": "python", "student_id": "edx:42", "lines": 200}
    <- {"v": 1, "ok": true, "logs": "[I 2026-11-26 03:50:01 ServerApp] ..."}

Admins also read the courses (root's metadata, git's checkouts): ``courses`` (a payload of
:class:`~nbhosting_core.coursemodels.CourseView` lines, without pulls' logs) and ``course`` (one, with its last
pull's log and the end of its image's last build's log, read by root),
credentials in a remote never crossing (:func:`~nbhosting_core.serveradmin.redacted`); and ``student``: one
student's account, workspaces (summarized by descriptor) and servers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from ..coursemodels import CourseView
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
from ..models import Launch, Server, ServerView, StudentView
from ..naming import validate_course, validate_notebook_path, validate_staff_name, validate_student_id
from ..serveradmin import DEFAULT_LOG_LINES, MAX_LOG_BYTES, MAX_LOG_LINES
from ..shares import Share
from ..studentfiles import Backup, NotebookList, validate_backup_id
from ..studentwork import Reset
from ..throttle import Requester

#: the protocol's version: a request of another version is refused (the app and the helper are upgraded together)
VERSION: Literal[1] = 1
#: the longest line either side reads (a request is a few hundred bytes; a launch's answer under 2 KiB)
MAX_LINE = 16 * 1024
#: the longest answer line the client reads (a list of backups or shares; each list holds at most MAX_ITEMS)
MAX_ANSWER = 1024 * 1024
MAX_ITEMS = 1000


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = VERSION


class RequesterModel(BaseModel):
    """Who sent a launch in: the platform that vouched for it and the client's address (rate limits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: str = Field(min_length=1, max_length=64, pattern=r"^[!-~]+$")
    address: str = Field(min_length=1, max_length=64, pattern=r"^[!-~]+$")


class _Course(_Message):
    course: str = Field(max_length=64)
    student_id: str = Field(max_length=256)

    @field_validator("course")
    @classmethod
    def _course(cls, value: str) -> str:
        return validate_course(value)

    @field_validator("student_id")
    @classmethod
    def _student(cls, value: str) -> str:
        return validate_student_id(value)


class _Notebook(_Course):
    notebook: str = Field(max_length=1024)

    @field_validator("notebook")
    @classmethod
    def _notebook(cls, value: str) -> str:
        return str(validate_notebook_path(value))


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


class NotebooksRequest(_Course):
    """The student's notebooks in their workspace of ``course`` (see
    :meth:`~nbhosting_core.studentwork.StudentWork.notebooks`)."""

    op: Literal["notebooks"]


class ResetRequest(_Notebook):
    """Reset the student's copy to the course's version (see :meth:`~nbhosting_core.studentwork.StudentWork.reset`)."""

    op: Literal["reset"]


class BackupsRequest(_Course):
    """The student's backups of ``notebook``, or of the whole course."""

    op: Literal["backups"]
    notebook: str | None = Field(None, max_length=1024)

    @field_validator("notebook")
    @classmethod
    def _notebook(cls, value: str | None) -> str | None:
        return str(validate_notebook_path(value)) if value is not None else None


class RestoreRequest(_Notebook):
    """Make ``backup`` the student's copy again (the current one is backed up first)."""

    op: Literal["restore"]
    backup: str = Field(max_length=40)

    @field_validator("backup")
    @classmethod
    def _backup(cls, value: str) -> str:
        return validate_backup_id(value)


class DownloadRequest(_Notebook):
    """The student's copy of ``notebook``: a payload."""

    op: Literal["download"]


class WorkspaceRequest(_Course):
    """A zip of the student's workspace of ``course``: a payload."""

    op: Literal["download-workspace"]


class ShareRequest(_Notebook):
    """Render ``notebook`` in the student's server and share it (again)."""

    op: Literal["share"]


class UnshareRequest(_Notebook):
    """Revoke the share of ``notebook``."""

    op: Literal["unshare"]


class SharesRequest(_Message):
    """The student's shares in ``course``, or in every course (None)."""

    op: Literal["shares"]
    course: str | None = Field(None, max_length=64)
    student_id: str = Field(max_length=256)

    @field_validator("course")
    @classmethod
    def _course(cls, value: str | None) -> str | None:
        return validate_course(value) if value is not None else None

    @field_validator("student_id")
    @classmethod
    def _student(cls, value: str) -> str:
        return validate_student_id(value)


class ServersRequest(_Message):
    """Every server (of ``course``, if given), with details or not: a payload of ServerView lines."""

    op: Literal["servers"]
    course: str | None = Field(None, max_length=64)
    details: bool = Field(False, strict=True)

    @field_validator("course")
    @classmethod
    def _course(cls, value: str | None) -> str | None:
        return validate_course(value) if value is not None else None


class ServerRequest(_Course):
    """The server of ``student_id`` in ``course``, with its activity and usage."""

    op: Literal["server"]


class _ByStaff(_Course):
    """A request a staff member makes (``by``: their user name, recorded in the event; None: nobody named)."""

    by: str | None = Field(None, max_length=64)

    @field_validator("by")
    @classmethod
    def _by(cls, value: str | None) -> str | None:
        return validate_staff_name(value) if value is not None else None


class StopServerRequest(_ByStaff):
    """Stop the server of ``student_id`` in ``course`` (files kept)."""

    op: Literal["stop-server"]


class RestartServerRequest(_ByStaff):
    """Stop the server of ``student_id`` in ``course`` and start it again, on its course's newest image."""

    op: Literal["restart-server"]


class LogsRequest(_Course):
    """The last ``lines`` lines the server of ``student_id`` in ``course`` printed."""

    op: Literal["server-logs"]
    lines: int = Field(DEFAULT_LOG_LINES, ge=1, le=MAX_LOG_LINES, strict=True)


class StudentViewRequest(_Message):
    """A student's account, workspaces (of ``course``, if given) and servers."""

    op: Literal["student"]
    student_id: str = Field(max_length=256)
    course: str | None = Field(None, max_length=64)

    @field_validator("student_id")
    @classmethod
    def _student(cls, value: str) -> str:
        return validate_student_id(value)

    @field_validator("course")
    @classmethod
    def _course(cls, value: str | None) -> str | None:
        return validate_course(value) if value is not None else None


class CoursesRequest(_Message):
    """The host's courses (archived ones too with ``archived``), without their pulls' logs: a payload of lines."""

    op: Literal["courses"]
    archived: bool = Field(False, strict=True)


class CourseRequest(_Message):
    """One course, with its last pull's log and the end of its image's last build's log."""

    op: Literal["course"]
    course: str = Field(max_length=64)

    @field_validator("course")
    @classmethod
    def _course(cls, value: str) -> str:
        return validate_course(value)


AdminRequest = (
    ServersRequest
    | ServerRequest
    | StopServerRequest
    | RestartServerRequest
    | LogsRequest
    | CoursesRequest
    | CourseRequest
    | StudentViewRequest
)
StudentRequest = (
    NotebooksRequest
    | ResetRequest
    | BackupsRequest
    | RestoreRequest
    | DownloadRequest
    | WorkspaceRequest
    | ShareRequest
    | UnshareRequest
    | SharesRequest
)
AnyRequest = OpenRequest | StatusRequest | PingRequest | StudentRequest | AdminRequest
Request = Annotated[AnyRequest, Field(discriminator="op")]
REQUEST: TypeAdapter[AnyRequest] = TypeAdapter(Request)


class ErrorBody(BaseModel):
    """An error, as the app re-raises it: its class (by ``reason``), its student-safe message, details for logs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(max_length=64)
    message: str = Field(max_length=2000)
    detail: str = Field("", max_length=2000)
    retry_after: float | None = None
    why: str | None = Field(None, max_length=200)


class Payload(BaseModel):
    """What follows an answer's line: ``size`` bytes of a file named ``filename``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str = Field(max_length=300)
    media_type: str = Field(max_length=100)
    size: int = Field(ge=0)


class Response(_Message):
    """The answer to one request: a launch, a pong, what a student's or an admin's operation gave, or an error."""

    ok: bool
    launch: Launch | None = None
    notebooks: NotebookList | None = None
    reset: Reset | None = None
    backups: list[Backup] | None = Field(None, max_length=MAX_ITEMS)
    share: Share | None = None
    shares: list[Share] | None = Field(None, max_length=MAX_ITEMS)
    payload: Payload | None = None
    view: ServerView | None = None
    server: Server | None = None
    course: CourseView | None = None
    student: StudentView | None = None
    logs: str | None = Field(None, max_length=MAX_LOG_BYTES)
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
