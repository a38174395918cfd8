"""Kernels started in the background for launches that find their server ready, so that the notebook's UI finds its
kernel running: at most :data:`KERNEL_PRESTARTS` at a time, never waited for."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

from .backend import NotebookBackend
from .courses import Courses
from .errors import NbhostingError
from .jupyterapi import kernel_name
from .models import Server
from .naming import short_key, student_copy_path
from .workspaces import Workspaces

log = logging.getLogger("nbhosting_core.hub")  # the hub's decisions, whichever module makes them
#: kernels started for launches at once (see KernelStarts.prestart); a launch that finds them all taken starts none
KERNEL_PRESTARTS = 4


class KernelStarts:
    """Starts notebooks' kernels in ready servers of ``backend``, each the kernel its course's notebook names."""

    def __init__(self, backend: NotebookBackend, courses: Courses, workspaces: Workspaces, *, enabled: bool) -> None:
        self.backend = backend
        self.courses = courses
        self.workspaces = workspaces
        self.enabled = enabled
        self._slots = threading.BoundedSemaphore(KERNEL_PRESTARTS)
        #: the background threads (tests wait for them with ``pool.shutdown``)
        self.pool = ThreadPoolExecutor(KERNEL_PRESTARTS, thread_name_prefix="nbh-kernel")

    def prestart(self, server: Server, course: str, notebook: PurePosixPath) -> None:
        """Start the kernel of ``notebook`` in the ready ``server`` in the background, so that the UI finds it running.

        Never waits: the launch answers at once. At most :data:`KERNEL_PRESTARTS` at a time, bounded in time by the
        backend; a launch that finds them all taken (a burst) starts none, and the UI starts its kernel as it would.
        The backend starts none for a notebook that has a session already (the student's UI, or an earlier launch).
        """
        if not self.enabled or not self._slots.acquire(blocking=False):
            return
        try:
            self.pool.submit(self._start, server, course, notebook)
        except RuntimeError:  # the pool is shut down: the process ends
            self._slots.release()

    def _start(self, server: Server, course: str, notebook: PurePosixPath) -> None:
        started = time.monotonic()
        copy = str(student_copy_path(notebook))
        try:
            with self.courses.reading(course):
                kernel = kernel_name(self.workspaces.read_course_notebook(course, notebook))
            done = self.backend.start_kernel(server, copy, kernel)
        except (NbhostingError, OSError) as exc:
            log.warning("kernel key=%s notebook=%s not started: %s", short_key(server.key), copy, exc)
            return
        finally:
            self._slots.release()
        if done:
            log.info(
                "kernel key=%s notebook=%s kernel=%s started in %.3fs",
                short_key(server.key),
                copy,
                kernel or "default",
                time.monotonic() - started,
            )
