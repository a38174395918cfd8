"""The backend seam: what the hub needs of whatever runs students' notebook servers.

It sits at the height of JupyterHub's Spawner: "make this student's server for this course run and tell me
where it answers; is it ready; stop it; remove it; list them all; what do they use". Everything below it
(engine sockets, readiness probes, socket folders, locks, resource limits) is the backend's business; the hub
and the web layer only see :class:`NotebookBackend`.

Two implementations ship with the library:

* :class:`nbhosting_core.system.podman.PodmanBackend`: rootless Podman, one Linux user per student, Jupyter
  on a Unix socket that Caddy reaches with one static route;
* :class:`nbhosting_core.fake.FakeBackend`: in memory, for tests and for projects that embed the hub.

One contract suite (``tests/contract``) runs against both. ``docs/kubernetes.md`` shows how a pod-per-server
backend fits behind the same interface.

The contract, which every implementation keeps:

* There is at most one server per (student's user, course), named deterministically; ``ensure_running`` is
  idempotent and safe to call concurrently from threads and processes.
* ``ensure_running`` returns as soon as the server's processes run; it never waits for Jupyter to answer
  (that is :meth:`NotebookBackend.is_ready`, which answers at once).
* A server keeps its ``key`` for as long as it exists: stopping and starting it again keeps it.
  A running server is reused even when the image asked for changed; a stopped one on another image or a
  broken one is replaced (new key). The student's files are never touched by any of this.
* ``stop`` and ``remove`` of something already stopped or absent are no-ops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .models import Account, Ensured, ReconcileReport, Server, ServerActivity, Usage


class NotebookBackend(Protocol):
    """Runs one notebook server per (course, student). See the module docstring for the contract."""

    def ensure_running(self, account: Account, course: str, workspace: Path, image: str | None = None) -> Ensured:
        """Reuse, start or create the server of (``account``, ``course``) with ``workspace`` as its files.

        ``image``: what a new server runs (for podman, the path of a root filesystem; the hub chooses it per
        course); None: the backend's own default (podman: ``settings.image_rootfs``). A running server is reused
        whatever its image; a stopped one on another image is replaced. Returns once its processes run, with what
        was done (:class:`~nbhosting_core.models.Action`).

        Raises:
            RuntimeUnavailable: the engine cannot be used.
            StartFailed: the server could not be created or started.
        """
        ...

    def get(self, account: Account, course: str) -> Server | None:
        """The server of (``account``, ``course``) as the engine sees it now, or None."""
        ...

    def find(self, key: str) -> Server | None:
        """The server whose key is ``key``, from the backend's own records (cheap: no engine call)."""
        ...

    def is_ready(self, server: Server) -> bool:
        """True if Jupyter answers in ``server`` (a bounded probe: never blocks for long)."""
        ...

    def activity(self, server: Server) -> ServerActivity | None:
        """What Jupyter in ``server`` says of its kernels and last activity; None if it does not answer."""
        ...

    def start_kernel(self, server: Server, notebook: str, kernel: str | None) -> bool:
        """Start a kernel for ``notebook`` (its path under the server's root) in the ready ``server``, as the UIs
        do (a Jupyter session), unless that notebook has a session already; ``kernel``: the kernel's name, None
        for Jupyter's default. Bounded in time (never waits for a slow server for long). True if one started.

        The hub asks it once a launch is ready, in the background, so that the UI finds the kernel running.
        """
        ...

    def stop(self, server: Server) -> None:
        """Stop ``server``'s processes; it can be started again with the same key."""
        ...

    def remove(self, server: Server) -> None:
        """Remove ``server`` entirely (stopping it first); the student's files stay."""
        ...

    def list_servers(self) -> list[Server]:
        """Every server on the host, running or stopped, from every student (cheap: no call per student)."""
        ...

    def list_running(self) -> list[Server]:
        """Every server that runs now (cheap: reads nothing of the servers that do not run; the door counts them
        before each launch that would start one)."""
        ...

    def usage(self, server: Server) -> Usage:
        """Memory, processes, CPU and disk ``server`` uses, with its limits (None where unknown)."""
        ...

    def logs(self, server: Server, tail: int = 50) -> str:
        """The last ``tail`` lines ``server`` printed, running or stopped (for admins), at most
        :data:`~nbhosting_core.serveradmin.MAX_LOG_BYTES` of them, decoded with undecodable bytes replaced; each line
        ends with a newline. A server keeps its log while it exists (stopped and started again too); "" for one
        that does not exist."""
        ...

    def release(self, user: str) -> bool:
        """Free what the backend keeps for student ``user``, none of whose servers runs; True if it freed any.

        The hub calls it under the student's lock once their last server stopped (podman: their API service,
        user namespace and subordinate ids). The next ``ensure_running`` takes it all again.
        """
        ...

    def held(self) -> list[str]:
        """Students for whom the backend keeps something now (see :meth:`release`)."""
        ...

    def reconcile(self) -> ReconcileReport:
        """Bring the backend's records in line with the truth after a crash or a reboot.

        Running servers are adopted, half-made ones finished or removed, stale runtime files cleared.
        """
        ...
