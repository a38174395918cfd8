"""Work done inside a student's own running container, as them: rendering a notebook to HTML, trusting copies.

Both interpret what a student wrote (a notebook is theirs to craft) or write where they own (their notary's
signatures), so neither runs as root nor on the host: each is a ``podman exec`` through the student's own podman API
(:class:`~.userpodman.UserPodman`), in the container of their server, as the container's user (the student's uid),
with nothing else mounted than what their server has. Each is bounded in time (then killed); rendering keeps at
most ``max_bytes`` of HTML (the rest is cut in the container) and 2,000 bytes of error output.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import podman

from ..containers import TRUST_DB, TRUST_SECRET, WORKDIR
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


#: ``jupyter trust`` with the notary nbhosting configures in every server (see :func:`containers.jupyter_config`);
#: $1 the timeout, then the notebooks' paths in the container
TRUST_SCRIPT = (
    'PATH="/opt/conda/bin:/opt/jupyter/bin:$PATH"; export PATH PYTHONDONTWRITEBYTECODE=1; t="$1"; shift; '
    f'timeout -k 2 "$t" jupyter-trust --NotebookNotary.db_file={WORKDIR}/{TRUST_DB} '
    f'--NotebookNotary.secret_file={WORKDIR}/{TRUST_SECRET} "$@" 2>&1 | tail -c 2000'
)


def trust_notebooks(podman_: UserPodman, server: Server, notebooks: list[str], *, timeout: float) -> bool:
    """Sign ``notebooks`` (paths in the server's workspace) with the student's own notary, in ``server``.

    True if ``jupyter trust`` said it signed them; a failure is logged, never raised (the notebook then opens
    untrusted, as any unsigned notebook does).
    """
    paths = [f"{WORKDIR}/{validate_notebook_path(n)}" for n in notebooks]
    argv = ["sh", "-c", TRUST_SCRIPT, "sh", str(int(timeout)), *paths]
    started = time.monotonic()

    def run(client: podman.PodmanClient) -> Any:
        return client.containers.get(server.name).exec_run(argv, stdout=True, stderr=True)

    try:
        code, output = podman_.call(run)
    except (RuntimeUnavailable, podman.errors.NotFound) as exc:
        log.warning("trust user=%s course=%s: %s", server.user, server.course, exc)
        return False
    text = (output or b"").decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
    signed = text.count("Signing notebook") + text.count("already signed")
    log.info(
        "trust user=%s course=%s notebooks=%d -> exit %s, %d signed in %.3fs",
        server.user,
        server.course,
        len(paths),
        code,
        signed,
        time.monotonic() - started,
    )
    if signed < len(paths):
        log.warning("trust user=%s course=%s: %s", server.user, server.course, text[-500:])
    return signed == len(paths)
