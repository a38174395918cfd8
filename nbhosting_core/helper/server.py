"""The privileged helper: the hub, served on a Unix socket to the web app's user alone.

It runs as root (or the narrowest rights the host allows) and does what needs privileges for a launch: an
account, a workspace and its copy of the notebook, a server started or reused. It answers two operations
(:mod:`.protocol`: ``open`` and ``status``), ``ping``, what students can do with their notebooks (``notebooks``,
``reset``, ``backups``, ``restore``, ``download``, ``download-workspace``, ``share``, ``unshare``, ``shares``: see
:mod:`nbhosting_core.studentwork`), and what admins do to students' servers (``servers``, ``server``,
``stop-server``, ``restart-server``, ``server-logs``: see :mod:`nbhosting_core.serveradmin`); nothing runs a command,
reads a file or names a path the app chose. Every request is checked before anything is done:

* the peer's uid (``SO_PEERCRED``) must be the app's, or root's; the socket is 0660, root's, in the app's group;
* a line is at most :data:`~.protocol.MAX_LINE` bytes, a connection idle ``IDLE_TIMEOUT`` seconds is closed,
  at most ``MAX_CONNECTIONS`` are open at once;
* the request must parse as a model of the current version, whose course, notebook and student id pass the
  same validation as the hub's (which checks them again);
* the work runs in a pool of ``helper_workers`` threads, under an overall deadline of ``helper_timeout``: a slow
  engine never holds the event loop, and a request never waits longer than that.

Every request is logged with the peer, the operation, its arguments (never a share's token), the outcome and how
long it took (``ping``, the app's health check, at debug level). The helper
also runs the host's culler. Stopping it (or the app) leaves every student's server running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, cast

from pydantic import BaseModel, ValidationError

from ..errors import Busy, NbhostingError, RuntimeUnavailable
from ..launcher import Launcher
from ..models import Launch
from ..serveradmin import ServerAdmin
from ..studentwork import StudentActions
from ..throttle import Requester
from .protocol import (
    MAX_ITEMS,
    MAX_LINE,
    REQUEST,
    AdminRequest,
    BackupsRequest,
    CourseRequest,
    CoursesRequest,
    DownloadRequest,
    ErrorBody,
    LogsRequest,
    NotebooksRequest,
    OpenRequest,
    Payload,
    PingRequest,
    ResetRequest,
    Response,
    RestoreRequest,
    ServerRequest,
    ServersRequest,
    ShareRequest,
    StatusRequest,
    StopServerRequest,
    StudentRequest,
    StudentViewRequest,
    UnshareRequest,
    WorkspaceRequest,
    error_body,
    requester_of,
)

log = logging.getLogger("nbhosting_core.helper")
IDLE_TIMEOUT = 30.0  # seconds a connection may stay silent
MAX_CONNECTIONS = 512
#: requests in flight (served or waiting for a worker) per worker before the helper answers Busy: a lecture's
#: first launches all wait their turn (100 at once, ~20 s of work for 16 workers) rather than meet a busy page
QUEUED_PER_WORKER = 16
WRITE_TIMEOUT = 10.0
CHUNK = 256 * 1024
#: a request's arguments, as its log line names them (the ones it has)
LOGGED = {
    "course": "course",
    "notebook": "notebook",
    "student": "student_id",
    "details": "details",
    "lines": "lines",
    "by": "by",
}


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


def bind_socket(path: Path, group: int | None) -> socket.socket:
    """A listening socket at ``path`` (root's folder), mode 0660, group ``group``: the app may connect."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a previous helper's (the folder is root's: nobody else names things in it)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)  # never connectable by others, even for a moment
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    if group is not None:
        os.chown(path, 0 if os.geteuid() == 0 else -1, group, follow_symlinks=False)
    os.chmod(path, 0o660)
    sock.listen(128)
    sock.setblocking(False)
    return sock


class HelperServer:
    """Serves ``launcher`` on a Unix socket to the uids in ``allowed``.

    Args:
        launcher: the hub (or anything with its ``open_notebook`` and ``launch_status``).
        allowed: the uids that may ask (the app's, root's).
        workers: requests served at once; the others wait their turn (up to QUEUED_PER_WORKER times as many in all,
            then Busy).
        timeout: the overall deadline of one request, in seconds.
        work: what students can do with their notebooks (the hub's ``work``); None: those operations are refused.
        admin: what admins do to students' servers (the hub); None: those operations are refused.
    """

    def __init__(
        self,
        launcher: Launcher,
        *,
        allowed: frozenset[int],
        workers: int,
        timeout: float,
        work: StudentActions | None = None,
        admin: ServerAdmin | None = None,
    ) -> None:
        self.launcher = launcher
        self.work = work
        self.admin = admin
        self.allowed = allowed
        self.timeout = timeout
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nbh-helper")
        self._connections = 0
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()  # open connections, ended when the helper stops

    async def serve(self, sock: socket.socket, stop: asyncio.Event) -> None:
        """Answer connections on the listening ``sock`` until ``stop`` is set."""
        server = await asyncio.start_unix_server(self._connection, sock=sock, limit=MAX_LINE)
        log.info(
            "helper: serving uids %s, %d workers, %.0fs per request", sorted(self.allowed), self._workers, self.timeout
        )
        try:
            await stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else -1
        try:
            if uid not in self.allowed:
                log.warning("helper: refused a connection from uid %d (not the app's)", uid)
                await self._send(writer, _refusal("forbidden", "This socket is the nbhosting app's."))
                return
            if self._connections >= MAX_CONNECTIONS:
                log.warning("helper: refused a connection from uid %d: %d open already", uid, self._connections)
                await self._send(writer, _refusal(Busy.reason, "The host is busy; please retry.", retry_after=1.0))
                return
            self._connections += 1
            try:
                await self._requests(reader, writer, uid)
            finally:
                self._connections -= 1
        except (ConnectionError, TimeoutError) as exc:
            log.info("helper: connection of uid %d ended: %r", uid, exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT)

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, uid: int) -> None:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
            except TimeoutError:
                return
            except ValueError:  # longer than MAX_LINE: the stream is out of step, answer and hang up
                log.warning("helper: refused a request of uid %d: longer than %d bytes", uid, MAX_LINE)
                await self._send(writer, _refusal("invalid-input", "The request is too long."))
                return
            if not line.endswith(b"\n"):  # end of stream (maybe mid-line): nothing to answer
                return
            response, payload = await self.answer_with_payload(line, uid)
            try:
                await self._send(writer, response)
                if payload is not None:
                    await self._stream(writer, payload)
            finally:
                if payload is not None:
                    payload.close()

    async def answer(self, line: bytes, uid: int) -> Response:
        """The response to one request line from ``uid``; never raises for what a client sends."""
        response, payload = await self.answer_with_payload(line, uid)
        if payload is not None:
            payload.close()
        return response

    async def answer_with_payload(self, line: bytes, uid: int) -> tuple[Response, BinaryIO | None]:
        """The response to one request line from ``uid``, and the file whose bytes follow it (a download's)."""
        started = time.monotonic()
        try:
            request = REQUEST.validate_json(line)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            log.warning("helper: refused a malformed request of uid %d: %s", uid, problems[:500])
            return _refusal("invalid-input", "The request is malformed.", detail=problems), None
        except NbhostingError as exc:  # a course, notebook or student id refused by naming's validation
            log.warning("helper: refused a request of uid %d: %s", uid, exc)
            return Response(ok=False, error=error_body(exc)), None
        what = f"op={request.op}" + "".join(
            f" {name}={'-' if (value := getattr(request, attr)) in (None, '') else value}"
            for name, attr in LOGGED.items()
            if hasattr(request, attr)
        )
        if isinstance(request, PingRequest):  # a liveness check (`nbh serve` waits for one): at debug only
            log.debug("helper: uid=%d %s -> ok in %.3fs", uid, what, time.monotonic() - started)
            return Response(ok=True), None
        if self._inflight >= QUEUED_PER_WORKER * self._workers:
            log.warning("helper: refused %s of uid %d: %d requests in flight", request.op, uid, self._inflight)
            return _refusal(Busy.reason, "The host is busy; please retry.", retry_after=1.0, why="helper"), None
        self._inflight += 1
        try:
            loop = asyncio.get_running_loop()
            response, payload, outcome = await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._call, request), self.timeout
            )
        except TimeoutError:
            log.error("helper: uid=%d %s: no answer within %.1fs", uid, what, self.timeout)
            slow = RuntimeUnavailable("The host is too slow to answer right now; please retry.")
            return Response(ok=False, error=error_body(slow)), None
        except NbhostingError as exc:
            log.info("helper: uid=%d %s -> %s in %.3fs", uid, what, exc.reason, time.monotonic() - started)
            return Response(ok=False, error=error_body(exc)), None
        except Exception as exc:  # a bug: logged whole, answered as such, and the helper goes on serving
            log.exception("helper: uid=%d %s failed unexpectedly", uid, what)
            return _refusal("error", "Something went wrong on the host.", detail=repr(exc)[:500]), None
        finally:
            self._inflight -= 1
        log.info("helper: uid=%d %s -> %s in %.3fs", uid, what, outcome, time.monotonic() - started)
        return response, payload

    def _call(
        self, request: OpenRequest | StatusRequest | StudentRequest | AdminRequest
    ) -> tuple[Response, BinaryIO | None, str]:
        """Do what ``request`` asks (in a worker thread): the answer, a payload, and a word for the log."""
        if isinstance(request, OpenRequest | StatusRequest):
            launch = self._launch(request)
            return Response(ok=True, launch=launch), None, f"{launch.state.value} key={launch.key[:8]}"
        if isinstance(request, AdminRequest):
            if self.admin is None:
                raise RuntimeUnavailable(
                    "This operation is not available here.", log_detail=f"helper: no admin for {request.op}"
                )
            return _admin_call(self.admin, request)
        if self.work is None:
            raise RuntimeUnavailable(
                "This operation is not available here.", log_detail=f"helper: no work for {request.op}"
            )
        return _student_call(self.work, request)

    def _launch(self, request: OpenRequest | StatusRequest) -> Launch:
        if isinstance(request, OpenRequest):
            requester: Requester | None = requester_of(request.requester)
            return self.launcher.open_notebook(
                request.course, request.notebook, request.student_id, requester=requester
            )
        return self.launcher.launch_status(request.course, request.notebook, request.student_id)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, response: Response) -> None:
        writer.write(response.model_dump_json(exclude_none=True).encode() + b"\n")
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    @staticmethod
    async def _stream(writer: asyncio.StreamWriter, payload: BinaryIO) -> None:
        """The payload's bytes after its answer's line (a local temporary file: each read is quick)."""
        while chunk := payload.read(CHUNK):
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)


def _student_call(work: StudentActions, request: StudentRequest) -> tuple[Response, BinaryIO | None, str]:
    """One of the students' operations, on ``work`` (see :mod:`nbhosting_core.studentwork`)."""
    r = request
    if isinstance(r, NotebooksRequest):
        listed = work.notebooks(r.course, r.student_id)
        more = " (truncated)" if listed.truncated else ""
        return Response(ok=True, notebooks=listed), None, f"{len(listed.notebooks)} notebooks{more}"
    if isinstance(r, ResetRequest | RestoreRequest):
        if isinstance(r, ResetRequest):
            reset = work.reset(r.course, r.notebook, r.student_id)
        else:
            reset = work.restore(r.course, r.notebook, r.student_id, r.backup)
        kept = reset.backup.id if reset.backup is not None else "none"
        return Response(ok=True, reset=reset), None, f"ok backup={kept}"
    if isinstance(r, BackupsRequest):
        backups = work.backups(r.course, r.notebook, r.student_id)[-MAX_ITEMS:]
        return Response(ok=True, backups=backups), None, f"{len(backups)} backups"
    if isinstance(r, DownloadRequest | WorkspaceRequest):
        if isinstance(r, DownloadRequest):
            download = work.download_notebook(r.course, r.notebook, r.student_id)
        else:
            download = work.download_workspace(r.course, r.student_id)
        payload = Payload(filename=download.filename, media_type=download.media_type, size=download.size)
        return Response(ok=True, payload=payload), download.stream, f"{download.size} bytes"
    if isinstance(r, ShareRequest):
        share = work.share(r.course, r.notebook, r.student_id)
        return Response(ok=True, share=share), None, f"shared {share.size} bytes"  # the token is never logged
    if isinstance(r, UnshareRequest):
        gone = work.unshare(r.course, r.notebook, r.student_id)
        return Response(ok=True, share=gone), None, "revoked" if gone is not None else "nothing shared"
    shares = work.shares(r.course, r.student_id)[-MAX_ITEMS:]
    return Response(ok=True, shares=shares), None, f"{len(shares)} shares"


def _admin_call(admin: ServerAdmin, request: AdminRequest) -> tuple[Response, BinaryIO | None, str]:
    """One of the admins' operations on students' servers, on ``admin`` (see :mod:`nbhosting_core.serveradmin`)."""
    r = request
    if isinstance(r, ServersRequest):
        views = admin.list_servers(course=r.course, details=r.details)
        payload, spool = _json_lines(views, "servers.jsonl")
        return Response(ok=True, payload=payload), spool, f"{len(views)} servers"
    if isinstance(r, CoursesRequest):
        courses = admin.list_courses(archived=r.archived)
        payload, spool = _json_lines(courses, "courses.jsonl")
        return Response(ok=True, payload=payload), spool, f"{len(courses)} courses"
    if isinstance(r, StudentViewRequest):
        student = admin.student_view(r.student_id, course=r.course)
        return Response(ok=True, student=student), None, f"{len(student.workspaces)} workspaces"
    if isinstance(r, CourseRequest):
        course = admin.course_view(r.course)
        return Response(ok=True, course=course), None, f"commit={(course.commit or '-')[:12]}"
    if isinstance(r, ServerRequest):
        view = admin.server_view(r.course, r.student_id)
        return Response(ok=True, view=view), None, f"{view.server.state.value} key={view.server.key[:8]}"
    if isinstance(r, LogsRequest):
        text = admin.server_logs(r.course, r.student_id, lines=r.lines)
        return Response(ok=True, logs=text), None, f"{len(text)} characters"
    if isinstance(r, StopServerRequest):
        server = admin.stop_server(r.course, r.student_id, by=r.by)
    else:
        server = admin.restart_server(r.course, r.student_id, by=r.by)
    return Response(ok=True, server=server), None, f"{server.state.value} key={server.key[:8]}"


def _json_lines(models: Sequence[BaseModel], filename: str) -> tuple[Payload, BinaryIO]:
    """``models`` as a payload of JSON lines: its description, and its bytes (spooled, at the start)."""
    spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=2**20, prefix="nbh-lines-"))  # noqa: SIM115
    for model in models:
        spool.write(model.model_dump_json().encode() + b"\n")
    size = spool.tell()
    spool.seek(0)
    return Payload(filename=filename, media_type="application/x-ndjson", size=size), spool


def _refusal(
    reason: str, message: str, *, detail: str = "", retry_after: float | None = None, why: str | None = None
) -> Response:
    error = ErrorBody(reason=reason, message=message, detail=detail[:2000], retry_after=retry_after, why=why)
    return Response(ok=False, error=error)
