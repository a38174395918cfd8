"""Notebooks copied from the course open as trusted for their owner.

Jupyter shows a notebook's outputs (HTML, scripts) as trusted only when the student's own notary signed it. nbhosting
gives each server a notary that lasts (its key and signatures in the workspace, see
:func:`~nbhosting_core.containers.jupyter_config`), and signs each notebook it copies from the course, as the student,
in their running container (``jupyter trust``: root never writes into the student's notary). A copy is made before
its server may run (a cold launch), so it is noted as pending (a file of root's, ``RUN_DIR/trust/<server name>/``) and
signed once the server answers, before the browser is sent to it. A copy the student changed is theirs: nbhosting never
signs anything but what it just copied from the course. A signing that fails is logged; the notebook opens untrusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable

from .models import Server
from .settings import Settings

log = logging.getLogger(__name__)
#: seconds ``jupyter trust`` may take in the student's container
TRUST_TIMEOUT = 20


@runtime_checkable
class NotebookTruster(Protocol):
    """Signs notebooks of a running server with its student's own notary, as the student."""

    def trust_notebooks(self, server: Server, notebooks: list[str], *, timeout: float) -> bool:
        """Sign ``notebooks`` (paths in the server's workspace); True if all were signed. Never raises."""
        ...


class Trust:
    """Notes the course copies to sign, and signs them once their server answers.

    Args:
        settings: where ``RUN_DIR`` is.
        truster: the backend, if it can sign (else nothing is ever signed: copies open untrusted).
    """

    def __init__(self, settings: Settings, truster: object) -> None:
        self._dir = settings.run_dir / "trust"
        self._truster = truster if isinstance(truster, NotebookTruster) else None

    def pending(self, server_name: str, notebook: PurePosixPath) -> None:
        """Note that ``notebook`` was just copied from the course for the server ``server_name``."""
        if self._truster is None:
            return
        folder = self._dir / server_name
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = hashlib.sha256(str(notebook).encode()).hexdigest()[:32]
        (folder / name).write_text(str(notebook))

    def settle(self, server: Server) -> None:
        """Sign what is pending for ``server`` (which answers now); one stat when nothing is."""
        folder = self._dir / server.name
        if self._truster is None or not folder.is_dir():
            return
        markers = sorted(folder.iterdir())
        notebooks = [m.read_text() for m in markers]
        for marker in markers:  # once: a failure is logged by the truster, and not tried at every launch
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
        if notebooks:
            self._truster.trust_notebooks(server, notebooks, timeout=TRUST_TIMEOUT)
