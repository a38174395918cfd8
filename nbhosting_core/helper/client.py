"""The app's side of the helper: a :class:`~nbhosting_core.launcher.Launcher` that asks over the Unix socket,
the :class:`~nbhosting_core.studentwork.StudentActions` of students' notebooks, and the
:class:`~nbhosting_core.serveradmin.ServerAdmin` of students' servers.

One connection per call (a Unix socket connects in microseconds), an overall deadline, a bounded answer. The
helper's errors come back as the exceptions the hub raised, so the app treats both launchers alike. A download's
bytes follow its answer's line (see :mod:`.protocol`): they are spooled into a temporary file of the app's
(memory up to 1 MiB, then its private /tmp), bounded by ``max_payload``, before the browser gets any.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast

from pydantic import BaseModel, ValidationError

from ..coursemodels import CourseView
from ..errors import InvalidInput, RuntimeUnavailable
from ..models import Launch, Server, ServerView, StudentView
from ..serveradmin import DEFAULT_LOG_LINES, MAX_LOG_LINES, ServerAdmin
from ..shares import Share
from ..studentfiles import Backup, NotebookList
from ..studentwork import Download, Reset, StudentActions
from ..throttle import Requester
from .protocol import (
    MAX_ANSWER,
    AnyRequest,
    BackupsRequest,
    CourseRequest,
    CoursesRequest,
    DownloadRequest,
    LogsRequest,
    NotebooksRequest,
    OpenRequest,
    PingRequest,
    ResetRequest,
    Response,
    RestartServerRequest,
    RestoreRequest,
    ServerRequest,
    ServersRequest,
    ShareRequest,
    SharesRequest,
    StatusRequest,
    StopServerRequest,
    StudentViewRequest,
    UnshareRequest,
    WorkspaceRequest,
    error_of,
    requester_model,
)

log = logging.getLogger("nbhosting_core.helper")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
UNAVAILABLE = "The notebook service is not available right now; please retry in a moment."
#: the largest list of servers accepted (a ServerView with details is ~1 KiB: some 60,000 servers)
MAX_SERVERS_PAYLOAD = 64 * 2**20


class HelperClient:
    """Asks the privileged helper listening at ``path`` (see :mod:`nbhosting_core.helper.server`).

    Args:
        path: the helper's socket (``settings.helper_socket``).
        timeout: the overall deadline of one call, in seconds (the helper's own, plus a little).
        max_payload: the largest download accepted (e.g. ``workspace_quota`` and a margin).
    """

    def __init__(self, path: Path, *, timeout: float, max_payload: int = 4 * 2**30) -> None:
        self.path = path
        self.timeout = timeout
        self.max_payload = max_payload

    def open_notebook(
        self, course: str, notebook: str, student_id: str, *, requester: Requester | None = None
    ) -> Launch:
        """See :meth:`nbhosting_core.hub.Hub.open_notebook` (same errors)."""
        request = OpenRequest(
            op="open", course=course, notebook=notebook, student_id=student_id, requester=requester_model(requester)
        )
        return self._launch(request)

    def launch_status(self, course: str, notebook: str, student_id: str) -> Launch:
        """See :meth:`nbhosting_core.hub.Hub.launch_status` (same errors)."""
        return self._launch(StatusRequest(op="status", course=course, notebook=notebook, student_id=student_id))

    def ping(self) -> None:
        """Raise :class:`RuntimeUnavailable` unless the helper answers, in this protocol's version (not logged:
        who pings expects it may not be there yet)."""
        self._call(PingRequest(op="ping"), quiet=True)

    # ------------------------------------------------------------------ students' notebooks (StudentActions)

    def notebooks(self, course: str, student_id: str) -> NotebookList:
        """See :meth:`nbhosting_core.studentwork.StudentWork.notebooks` (same errors)."""
        return _need(self._call(NotebooksRequest(op="notebooks", course=course, student_id=student_id)).notebooks)

    def reset(self, course: str, notebook: str, student_id: str) -> Reset:
        """See :meth:`nbhosting_core.studentwork.StudentWork.reset` (same errors)."""
        request = ResetRequest(op="reset", course=course, notebook=notebook, student_id=student_id)
        return _need(self._call(request).reset)

    def backups(self, course: str, notebook: str | None, student_id: str) -> list[Backup]:
        """See :meth:`nbhosting_core.studentwork.StudentWork.backups` (same errors)."""
        request = BackupsRequest(op="backups", course=course, notebook=notebook, student_id=student_id)
        return _need(self._call(request).backups)

    def restore(self, course: str, notebook: str, student_id: str, backup: str) -> Reset:
        """See :meth:`nbhosting_core.studentwork.StudentWork.restore` (same errors)."""
        request = RestoreRequest(op="restore", course=course, notebook=notebook, student_id=student_id, backup=backup)
        return _need(self._call(request).reset)

    def download_notebook(self, course: str, notebook: str, student_id: str) -> Download:
        """See :meth:`nbhosting_core.studentwork.StudentWork.download_notebook` (same errors)."""
        return self._download(DownloadRequest(op="download", course=course, notebook=notebook, student_id=student_id))

    def download_workspace(self, course: str, student_id: str) -> Download:
        """See :meth:`nbhosting_core.studentwork.StudentWork.download_workspace` (same errors)."""
        return self._download(WorkspaceRequest(op="download-workspace", course=course, student_id=student_id))

    def share(self, course: str, notebook: str, student_id: str) -> Share:
        """See :meth:`nbhosting_core.studentwork.StudentWork.share` (same errors)."""
        request = ShareRequest(op="share", course=course, notebook=notebook, student_id=student_id)
        return _need(self._call(request).share)

    def unshare(self, course: str, notebook: str, student_id: str) -> Share | None:
        """See :meth:`nbhosting_core.studentwork.StudentWork.unshare` (same errors)."""
        request = UnshareRequest(op="unshare", course=course, notebook=notebook, student_id=student_id)
        return self._call(request).share

    def shares(self, course: str | None, student_id: str) -> list[Share]:
        """See :meth:`nbhosting_core.studentwork.StudentWork.shares` (same errors)."""
        return _need(self._call(SharesRequest(op="shares", course=course, student_id=student_id)).shares)

    # ------------------------------------------------------------------ students' servers (ServerAdmin)

    def list_servers(self, *, course: str | None = None, details: bool = False) -> list[ServerView]:
        """See :meth:`nbhosting_core.hub.Hub.list_servers` (same errors)."""
        return self._lines(ServersRequest(op="servers", course=course, details=details), ServerView)

    def _lines(self, request: ServersRequest | CoursesRequest, model: type[M]) -> list[M]:
        """The answer to ``request``: a payload of JSON lines, each a ``model``."""
        spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=2**20, prefix="nbh-lines-"))  # noqa: SIM115
        with spool:
            _need(self._call(request, spool=spool, max_payload=min(self.max_payload, MAX_SERVERS_PAYLOAD)).payload)
            spool.seek(0)
            try:
                return [model.model_validate_json(line) for line in spool if line.strip()]
            except ValidationError as exc:
                raise RuntimeUnavailable(UNAVAILABLE, log_detail=f"helper: a malformed {request.op}: {exc}") from exc

    def list_courses(self, *, archived: bool = False) -> list[CourseView]:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.list_courses` (same errors)."""
        return self._lines(CoursesRequest(op="courses", archived=archived), CourseView)

    def student_view(self, student_id: str, *, course: str | None = None) -> StudentView:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.student_view` (same errors)."""
        try:
            request = StudentViewRequest(op="student", student_id=student_id, course=course)
        except ValidationError as exc:  # refused as the hub refuses it
            raise InvalidInput("Invalid student id or course.", log_detail=str(exc)[:500]) from exc
        return _need(self._call(request).student)

    def course_view(self, course: str) -> CourseView:
        """See :meth:`nbhosting_core.serveradmin.ServerAdmin.course_view` (same errors)."""
        try:
            request = CourseRequest(op="course", course=course)
        except ValidationError as exc:  # refused as the hub refuses it
            raise InvalidInput(f"There is no course named {course[:80]!r}.", log_detail=str(exc)[:500]) from exc
        return _need(self._call(request).course)

    def server_view(self, course: str, student_id: str) -> ServerView:
        """See :meth:`nbhosting_core.hub.Hub.server_view` (same errors)."""
        return _need(self._call(ServerRequest(op="server", course=course, student_id=student_id)).view)

    def stop_server(self, course: str, student_id: str, *, by: str | None = None) -> Server:
        """See :meth:`nbhosting_core.hub.Hub.stop_server` (same errors)."""
        request = StopServerRequest(op="stop-server", course=course, student_id=student_id, by=by)
        return _need(self._call(request).server)

    def restart_server(self, course: str, student_id: str, *, by: str | None = None) -> Server:
        """See :meth:`nbhosting_core.hub.Hub.restart_server` (same errors)."""
        request = RestartServerRequest(op="restart-server", course=course, student_id=student_id, by=by)
        return _need(self._call(request).server)

    def server_logs(self, course: str, student_id: str, *, lines: int = DEFAULT_LOG_LINES) -> str:
        """See :meth:`nbhosting_core.hub.Hub.server_logs` (same errors)."""
        try:
            request = LogsRequest(op="server-logs", course=course, student_id=student_id, lines=lines)
        except ValidationError as exc:  # lines out of range: refused as the hub refuses it
            raise InvalidInput(f"A log's tail is 1 to {MAX_LOG_LINES} lines.", log_detail=str(exc)[:500]) from exc
        return _need(self._call(request).logs)

    def _download(self, request: DownloadRequest | WorkspaceRequest) -> Download:
        spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=2**20, prefix="nbh-download-"))  # noqa: SIM115
        try:
            payload = _need(self._call(request, spool=spool).payload)
            spool.seek(0)
            return Download(filename=payload.filename, media_type=payload.media_type, size=payload.size, stream=spool)
        except BaseException:
            spool.close()
            raise

    def _launch(self, request: OpenRequest | StatusRequest) -> Launch:
        response = self._call(request)
        if response.launch is None:
            raise RuntimeUnavailable(UNAVAILABLE, log_detail="helper: an answer without a launch")
        return response.launch

    def _call(
        self, request: AnyRequest, *, quiet: bool = False, spool: BinaryIO | None = None, max_payload: int | None = None
    ) -> Response:
        deadline = time.monotonic() + self.timeout
        data = request.model_dump_json(exclude_none=True).encode() + b"\n"
        line = self._exchange(data, deadline, quiet, spool, self.max_payload if max_payload is None else max_payload)
        try:
            response = Response.model_validate_json(line)
        except ValidationError as exc:
            raise RuntimeUnavailable(UNAVAILABLE, log_detail=f"helper: a malformed answer: {exc}") from exc
        if not response.ok:
            if response.error is None:
                raise RuntimeUnavailable(UNAVAILABLE, log_detail="helper: a refusal without an error")
            raise error_of(response.error)
        return response

    def _exchange(
        self, data: bytes, deadline: float, quiet: bool, spool: BinaryIO | None = None, max_payload: int = 0
    ) -> bytes:
        """Send ``data``, return the answer's line; with ``spool``, the payload that follows goes into it (at most
        ``max_payload`` bytes)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.connect(str(self.path))
            sock.sendall(data)
            answer = bytearray()
            while b"\n" not in answer:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the helper hung up")
                answer += chunk
                if len(answer) > MAX_ANSWER:
                    raise ConnectionError(f"an answer longer than {MAX_ANSWER} bytes")
            line, _, rest = bytes(answer).partition(b"\n")
            if spool is not None:
                self._receive(sock, line, rest, spool, deadline, max_payload)
            return line + b"\n"
        except OSError as exc:  # refused, absent, timed out, hung up: the helper is not there for us now
            if not quiet:
                log.error("helper %s: %r", self.path, exc)
            raise RuntimeUnavailable(UNAVAILABLE, log_detail=f"helper {self.path}: {exc!r}") from exc
        finally:
            sock.close()

    def _receive(
        self, sock: socket.socket, line: bytes, rest: bytes, spool: BinaryIO, deadline: float, max_payload: int
    ) -> None:
        """The payload the answer ``line`` declares, into ``spool``: exactly its size, at most ``max_payload``."""
        try:
            declared = Response.model_validate_json(line).payload
        except ValidationError:
            return  # the caller reports the malformed answer
        if declared is None:
            return  # a refusal: no payload
        if declared.size > max_payload:
            raise ConnectionError(f"a payload of {declared.size} bytes, over {max_payload}")
        left = declared.size - len(rest)
        if left < 0:
            raise ConnectionError("more bytes than the payload declared")
        spool.write(rest)
        while left > 0:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(min(left, 1 << 20))
            if not chunk:
                raise ConnectionError("the helper hung up in the middle of a payload")
            spool.write(chunk)
            left -= len(chunk)


def _need(value: T | None) -> T:
    """A part of the helper's answer that must be there."""
    if value is None:
        raise RuntimeUnavailable(UNAVAILABLE, log_detail="helper: an answer without what was asked")
    return value


if TYPE_CHECKING:  # mypy checks that the client is what the app's admin and student code program against

    def _is_server_admin(client: HelperClient) -> ServerAdmin:
        return client

    def _is_student_actions(client: HelperClient) -> StudentActions:
        return client
