"""The app's side of the helper: a :class:`~nbhosting_core.launcher.Launcher` that asks over the Unix socket.

One connection per call (a Unix socket connects in microseconds), an overall deadline, a bounded answer. The
helper's errors come back as the exceptions the hub raised, so the app treats both launchers alike.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

from pydantic import ValidationError

from ..errors import RuntimeUnavailable
from ..models import Launch
from ..throttle import Requester
from .protocol import (
    MAX_LINE,
    OpenRequest,
    PingRequest,
    Response,
    StatusRequest,
    error_of,
    requester_model,
)

log = logging.getLogger("nbhosting_core.helper")
UNAVAILABLE = "The notebook service is not available right now; please retry in a moment."


class HelperClient:
    """Asks the privileged helper listening at ``path`` (see :mod:`nbhosting_core.helper.server`).

    Args:
        path: the helper's socket (``settings.helper_socket``).
        timeout: the overall deadline of one call, in seconds (the helper's own, plus a little).
    """

    def __init__(self, path: Path, *, timeout: float) -> None:
        self.path = path
        self.timeout = timeout

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

    def _launch(self, request: OpenRequest | StatusRequest) -> Launch:
        response = self._call(request)
        if response.launch is None:
            raise RuntimeUnavailable(UNAVAILABLE, log_detail="helper: an answer without a launch")
        return response.launch

    def _call(self, request: OpenRequest | StatusRequest | PingRequest, *, quiet: bool = False) -> Response:
        deadline = time.monotonic() + self.timeout
        line = self._exchange(request.model_dump_json(exclude_none=True).encode() + b"\n", deadline, quiet)
        try:
            response = Response.model_validate_json(line)
        except ValidationError as exc:
            raise RuntimeUnavailable(UNAVAILABLE, log_detail=f"helper: a malformed answer: {exc}") from exc
        if not response.ok:
            if response.error is None:
                raise RuntimeUnavailable(UNAVAILABLE, log_detail="helper: a refusal without an error")
            raise error_of(response.error)
        return response

    def _exchange(self, data: bytes, deadline: float, quiet: bool) -> bytes:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.connect(str(self.path))
            sock.sendall(data)
            answer = bytearray()
            while not answer.endswith(b"\n"):
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the helper hung up")
                answer += chunk
                if len(answer) > MAX_LINE:
                    raise ConnectionError(f"an answer longer than {MAX_LINE} bytes")
            return bytes(answer)
        except OSError as exc:  # refused, absent, timed out, hung up: the helper is not there for us now
            if not quiet:
                log.error("helper %s: %r", self.path, exc)
            raise RuntimeUnavailable(UNAVAILABLE, log_detail=f"helper {self.path}: {exc!r}") from exc
        finally:
            sock.close()
