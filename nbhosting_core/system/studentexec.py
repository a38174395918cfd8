"""Work done inside a student's own running container, as them: rendering a notebook to HTML (nbconvert).

It interprets what a student wrote (a notebook is theirs to craft), so it never runs as root nor on the host: it is
a ``podman exec`` through the student's own podman API (:class:`~.userpodman.UserPodman`), in the container of their
server, as the container's user (the student's uid), with nothing else mounted than what their server has. It is
bounded: ``timeout`` seconds (then killed), at most ``max_bytes`` of HTML kept (the rest is cut in the container),
2,000 bytes of error output.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import podman

from ..containers import WORKDIR
from ..errors import InvalidInput, RuntimeUnavailable
from ..models import Server
from ..naming import validate_notebook_path
from .userpodman import UserPodman

log = logging.getLogger(__name__)
#: run by ``sh -c`` in the container; $1 timeout, $2 the byte cap (+1), $3 the notebook's path in the container.
#: The path is an argument, never part of the script. Jupyter is where nbhosting-jupyter finds it.
SCRIPT = (
    'PATH="/opt/conda/bin:/opt/jupyter/bin:$PATH"; export PATH PYTHONDONTWRITEBYTECODE=1; '
    'err=$(mktemp); timeout -k 2 "$1" jupyter-nbconvert --to html --stdout --log-level=ERROR "$3" 2>"$err" '
    '| head -c "$2"; head -c 2000 "$err" >&2; rm -f "$err"'
)


def render_html(podman_: UserPodman, server: Server, notebook: str, *, timeout: float, max_bytes: int) -> bytes:
    """``notebook`` (a path in the server's workspace) as a standalone HTML page, rendered in ``server``.

    Raises:
        InvalidInput: nbconvert gave no page (not a notebook, too slow), or a page over ``max_bytes``.
        RuntimeUnavailable: the student's podman cannot be reached, or the container does not run.
    """
    path = f"{WORKDIR}/{validate_notebook_path(notebook)}"
    argv = ["sh", "-c", SCRIPT, "sh", str(int(timeout)), str(max_bytes + 1), path]
    started = time.monotonic()

    def run(client: podman.PodmanClient) -> Any:
        try:
            return client.containers.get(server.name).exec_run(argv, stdout=True, stderr=True, demux=True)
        except podman.errors.NotFound as exc:
            raise RuntimeUnavailable("Your notebook server is not running.", log_detail=server.name) from exc

    code, output = podman_.call(run)
    out, err = output if isinstance(output, tuple) else (output, b"")
    html: bytes = out or b""
    errors = (err or b"").decode("utf-8", "replace")[-2000:]
    log.info(
        "render user=%s course=%s notebook=%s -> exit %s, %d bytes in %.3fs",
        server.user,
        server.course,
        notebook,
        code,
        len(html),
        time.monotonic() - started,
    )
    if len(html) > max_bytes:
        raise InvalidInput("This notebook is too large to share.", log_detail=f"over {max_bytes} bytes of HTML")
    if not html.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        raise InvalidInput(
            "This notebook could not be rendered for sharing (is it a valid notebook?).",
            log_detail=f"{server.name}: exit {code}: {errors}",
        )
    return html
