"""What an admin may see and do on the host: the courses, and students' servers (list and show them, stop,
restart, read their logs).

The admin pages and JSON API (in the unprivileged app) program against :class:`ServerAdmin`; two implementations
satisfy it, as for :class:`~nbhosting_core.launcher.Launcher`: :class:`~nbhosting_core.hub.Hub` in one process
(root's scripts, the CLI, tests), and :class:`~nbhosting_core.helper.client.HelperClient` over the privileged
helper's socket. A server is named by its (course, student id), both validated as everywhere else
(:mod:`nbhosting_core.naming`), never by a container name or a path: the server is the one of that student in that
course, found in the backend's records, or :class:`~nbhosting_core.errors.NotFound`.

A log is a bounded tail: 1 to :data:`MAX_LOG_LINES` lines, at most :data:`MAX_LOG_BYTES` bytes (the last ones, from
the first whole line), decoded as UTF-8 with undecodable bytes replaced (:func:`log_tail`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from .coursemodels import CourseView
from .errors import InvalidInput
from .models import Server, ServerView, StudentView

#: the most lines a log's tail may ask for
MAX_LOG_LINES = 2000
#: the most bytes of a log's tail returned (the last ones)
MAX_LOG_BYTES = 256 * 1024
DEFAULT_LOG_LINES = 200
#: the most workspaces a student's view summarizes (the first, by course name)
MAX_WORKSPACES = 50
NEWLINE = ord("\n")


class ServerAdmin(Protocol):
    """The host's courses and students' servers, as an admin sees and acts on them."""

    def list_courses(self, *, archived: bool = False) -> list[CourseView]:
        """The host's courses (archived ones too with ``archived``), as :func:`redacted` views: without git's log
        of their last pull (see :meth:`course_view`)."""
        ...

    def course_view(self, course: str) -> CourseView:
        """One course, as a :func:`redacted` view, with git's log of its last pull and the end of its image's last
        build's log (``last_build``; None if it was never built).

        Raises:
            InvalidInput: not a course's name.
            NotFound: no such course.
        """
        ...

    def list_servers(self, *, course: str | None = None, details: bool = False) -> list[ServerView]:
        """Every server on the host (of ``course`` only, if given); see :meth:`nbhosting_core.hub.Hub.list_servers`.

        With ``details``, each running server's activity (kernels, last activity) and usage (memory, processes,
        CPU, disk) too: one bounded probe per server. Each view says its image's version (``image_label``) and
        whether new servers of its course get another one (``old_image``).

        Raises:
            InvalidInput: ``course`` is not a course's name.
        """
        ...

    def student_view(self, student_id: str, *, course: str | None = None) -> StudentView:
        """A student's account, workspaces (of ``course`` only, if given: at most :data:`MAX_WORKSPACES`) and
        servers (with their activity and usage). A student with no account here has none of them (not an error).

        Raises:
            InvalidInput: a bad student id or course.
        """
        ...

    def server_view(self, course: str, student_id: str) -> ServerView:
        """The server of ``student_id`` in ``course``, with its activity and usage.

        Raises:
            InvalidInput: a bad course or student id.
            NotFound: that student has no server in that course.
        """
        ...

    def stop_server(self, course: str, student_id: str, *, by: str | None = None) -> Server:
        """Stop the server of ``student_id`` in ``course``, as it is once stopped: their files stay, and their next
        launch starts it again with the same key. A stopped server: nothing to do. ``by``: the staff member who
        asks (their user name, recorded in the event), None: an admin's shell.

        Raises:
            InvalidInput, NotFound: as :meth:`server_view`.
        """
        ...

    def restart_server(self, course: str, student_id: str, *, by: str | None = None) -> Server:
        """Stop the server of ``student_id`` in ``course`` and start it again, on the image new servers of its course
        get (a server on an older image is replaced: a new key); no notebook is copied. Returns it running.
        ``by``: as for :meth:`stop_server`.

        Raises:
            InvalidInput, NotFound: as :meth:`server_view`.
            Busy: it was not running, and the cap of running servers refuses one more (nothing was done).
            RuntimeUnavailable, StartFailed: it could not be started again (it stays stopped; files kept).
        """
        ...

    def server_logs(self, course: str, student_id: str, *, lines: int = DEFAULT_LOG_LINES) -> str:
        """The last ``lines`` lines the server of ``student_id`` in ``course`` printed (running or stopped), at most
        :data:`MAX_LOG_BYTES` bytes of them.

        Raises:
            InvalidInput: as :meth:`server_view`, or ``lines`` outside 1..:data:`MAX_LOG_LINES`.
            NotFound: as :meth:`server_view`.
            RuntimeUnavailable: the student's container engine cannot be reached.
        """
        ...


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it left out (``https://user:token@host/`` reads
    ``https://host/``): a course's remote may carry a deploy token, which never leaves root's side (pure)."""
    return _USERINFO.sub(r"\1", text)


def redacted(view: CourseView, *, with_log: bool = True) -> CourseView:
    """``view`` as an admin's page or the app may see it: credentials out of its remote and its pull's log, and
    without the log unless ``with_log`` (pure)."""
    course = view.course
    remote = redact_credentials(course.remote) if course.remote is not None else None
    pull = course.last_pull
    if pull is not None:
        pull = pull.model_copy(update={"log": redact_credentials(pull.log) if with_log else ""})
    return view.model_copy(update={"course": course.model_copy(update={"remote": remote, "last_pull": pull})})


def validate_log_lines(lines: int) -> int:
    """``lines`` if it is a number of lines a log's tail may ask for (1..:data:`MAX_LOG_LINES`).

    Raises:
        InvalidInput: anything else (a bool too).
    """
    if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= MAX_LOG_LINES:
        raise InvalidInput(
            f"A log's tail is 1 to {MAX_LOG_LINES} lines.", log_detail=f"lines={str(lines)[:20]!r} refused"
        )
    return lines


#: control characters (C0 but tab and newline, DEL, C1) become U+FFFD: a student's program writes its server's
#: log, and an admin's terminal or page shows it (no escape sequence, no carriage return hiding a line)
_CONTROLS = {c: "\ufffd" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]}


def log_tail(chunks: Iterable[bytes], max_bytes: int = MAX_LOG_BYTES) -> str:
    """The end of the log read as ``chunks``, at most ``max_bytes`` bytes in UTF-8, from the first whole line when
    some were cut; undecodable bytes and control characters (but tab and newline) replaced by U+FFFD (pure).

    Read as the chunks come: never more than twice ``max_bytes`` and one chunk held.
    """
    kept = bytearray()
    whole = True  # what is kept starts a line
    for chunk in chunks:
        kept += chunk
        if len(kept) > 2 * max_bytes:
            whole = kept[len(kept) - max_bytes - 1] == NEWLINE
            del kept[: len(kept) - max_bytes]
    text = bytes(kept).decode("utf-8", "replace").translate(_CONTROLS)
    data = text.encode()
    if len(data) > max_bytes:
        whole = data[len(data) - max_bytes - 1] == NEWLINE
        data = data[len(data) - max_bytes :]
    elif whole:
        return text
    newline = -1 if whole else data.find(b"\n")
    if newline < len(data) - 1:  # else one cut line is all there is: kept
        data = data[newline + 1 :]
    return data.decode("utf-8", "ignore")  # only a character cut at the start can be undecodable
