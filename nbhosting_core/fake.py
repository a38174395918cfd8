"""An in-memory :class:`~nbhosting_core.backend.NotebookBackend`, for tests and for projects embedding the hub.

It keeps the same contract as the podman backend (the contract suite in ``tests/contract`` runs against both),
answers in microseconds, and has knobs to make servers slow, crash or fail, so that every path of the hub
(including the failures) can be exercised without root or podman::

    from nbhosting_core import FakeBackend, Hub, Settings

    backend = FakeBackend(ready_after=2.0)          # Jupyter "takes" 2 s to answer
    hub = Hub(settings, backend=backend, accounts=..., clock=...)
"""

from __future__ import annotations

import html
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInput, RuntimeUnavailable
from .models import Account, Action, Ensured, ReconcileReport, Server, ServerActivity, ServerState, Usage
from .naming import USER_PREFIX, container_name, user_name
from .serveradmin import log_tail
from .tokens import new_key


@dataclass
class _Record:
    server: Server
    workspace: Path
    activity: ServerActivity | None = None
    usage: Usage = field(default_factory=Usage)
    log: list[str] = field(default_factory=list)
    sessions: dict[str, str | None] = field(default_factory=dict)  # notebook -> kernel name
    vouched: list[tuple[str, bytes]] = field(default_factory=list)  # copies trusted while it runs: (notebook, bytes)


class FakeBackend:
    """Notebook servers that exist only in memory.

    Args:
        image: what new servers run when ``ensure_running`` is given no image; change :attr:`image` to simulate
            an image upgrade.
        ready_after: seconds (by ``clock``) between a start and Jupyter answering; ``float("inf")``: never.
        clock: seconds since the epoch; pass the same fake clock as the hub's.
    """

    def __init__(
        self, *, image: str = "fake-image", ready_after: float = 0.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.image = image
        self.ready_after = ready_after
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        #: exceptions the next ``ensure_running`` calls raise, in order (e.g. RuntimeUnavailable)
        self.fail_next: list[Exception] = []
        #: every action taken, as (verb, server name or user): what a test can assert on
        self.journal: list[tuple[str, str]] = []
        self._engines: set[str] = set()  # students whose "engine" runs (as a student's podman would)
        self._vouched: dict[str, list[tuple[str, bytes]]] = {}  # what trust_copy recorded, per server name

    # ------------------------------------------------------------------------------------- the contract

    def ensure_running(self, account: Account, course: str, workspace: Path, image: str | None = None) -> Ensured:
        """See :meth:`NotebookBackend.ensure_running`: ``image`` None is :attr:`image`."""
        name = container_name(account.user, course)
        image = image if image is not None else self.image
        with self._lock:
            if self.fail_next:
                raise self.fail_next.pop(0)
            self._engines.add(account.user)
            record = self._records.get(name)
            if record is not None and record.server.state is ServerState.RUNNING:
                return Ensured(server=record.server, action=Action.REUSE)
            if record is not None and record.server.state is ServerState.STOPPED and record.server.image == image:
                record.server = record.server.model_copy(
                    update={"state": ServerState.RUNNING, "started_at": self._clock()}
                )
                record.workspace = workspace
                record.vouched = list(self._vouched.get(name, []))  # root's record of earlier copies, listed
                record.log.append(f"[fake] {name} started again, key {record.server.key[:8]}, image {image}")
                self.journal.append(("start", name))
                return Ensured(server=record.server, action=Action.START)
            action = Action.CREATE if record is None else Action.REPLACE
            if record is not None:
                self.journal.append(("remove", name))
            server = Server(
                name=name,
                course=course,
                student_id=account.student_id,
                user=account.user,
                uid=account.uid,
                key=new_key(),
                image=image,
                state=ServerState.RUNNING,
                started_at=self._clock(),
            )
            self._records[name] = _Record(server=server, workspace=workspace, vouched=list(self._vouched.get(name, [])))
            self._records[name].log.append(f"[fake] {name} started, key {server.key[:8]}, image {image}")
            self.journal.append(("create", name))
            return Ensured(server=server, action=action)

    def get(self, account: Account, course: str) -> Server | None:
        """See :meth:`NotebookBackend.get`."""
        record = self._records.get(container_name(account.user, course))
        return None if record is None else record.server

    def find(self, key: str) -> Server | None:
        """See :meth:`NotebookBackend.find`."""
        return next((r.server for r in list(self._records.values()) if r.server.key == key), None)

    def is_ready(self, server: Server) -> bool:
        """See :meth:`NotebookBackend.is_ready`: running, and started at least ``ready_after`` ago."""
        current = self._current(server)
        if current is None or current.state is not ServerState.RUNNING or current.started_at is None:
            return False
        return self._clock() - current.started_at >= self.ready_after

    def activity(self, server: Server) -> ServerActivity | None:
        """See :meth:`NotebookBackend.activity`; set it with :meth:`set_activity`."""
        if not self.is_ready(server):
            return None
        record = self._records[server.name]
        return record.activity or ServerActivity(last_activity=record.server.started_at, kernels=len(record.sessions))

    def start_kernel(self, server: Server, notebook: str, kernel: str | None) -> bool:
        """See :meth:`NotebookBackend.start_kernel`; :meth:`sessions` lists what started."""
        if not self.is_ready(server):
            return False
        with self._lock:
            sessions = self._records[server.name].sessions
            if notebook in sessions:
                return False
            sessions[notebook] = kernel
            return True

    def stop(self, server: Server) -> None:
        """See :meth:`NotebookBackend.stop`."""
        with self._lock:
            record = self._records.get(server.name)
            if record is None or record.server.state is not ServerState.RUNNING:
                return
            record.server = record.server.model_copy(update={"state": ServerState.STOPPED, "started_at": None})
            record.activity = None
            record.sessions.clear()  # its kernels stopped with it
            record.vouched.clear()  # its next start lists the course again
            record.log.append(f"[fake] {server.name} received SIGTERM: stopped")
            self.journal.append(("stop", server.name))

    def remove(self, server: Server) -> None:
        """See :meth:`NotebookBackend.remove`."""
        with self._lock:
            if self._records.pop(server.name, None) is not None:
                self.journal.append(("remove", server.name))

    def list_servers(self) -> list[Server]:
        """See :meth:`NotebookBackend.list_servers`."""
        return sorted((r.server for r in list(self._records.values())), key=lambda s: s.name)

    def list_running(self) -> list[Server]:
        """See :meth:`NotebookBackend.list_running`."""
        return [s for s in self.list_servers() if s.state is ServerState.RUNNING]

    def usage(self, server: Server) -> Usage:
        """See :meth:`NotebookBackend.usage`; set it with :meth:`set_usage`."""
        record = self._records.get(server.name)
        return Usage() if record is None else record.usage

    def logs(self, server: Server, tail: int = 50) -> str:
        """See :meth:`NotebookBackend.logs`: what the server "printed" since it was made (a line at each start and
        stop, what :meth:`crash` and :meth:`emit` add), kept while it exists, as podman keeps a container's log;
        each line ends with a newline; at most ``MAX_LOG_BYTES``."""
        record = self._records.get(server.name)
        if record is None or tail < 1:
            return ""
        return log_tail([(line + "\n").encode() for line in record.log[-tail:]])

    def release(self, user: str) -> bool:
        """See :meth:`NotebookBackend.release`: the student's engine is forgotten until their next start."""
        with self._lock:
            if any(r.server.user == user and r.server.state is ServerState.RUNNING for r in self._records.values()):
                return False
            if user not in self._engines:
                return False
            self._engines.discard(user)
            self.journal.append(("release", user))
            return True

    def held(self) -> list[str]:
        """See :meth:`NotebookBackend.held`: students whose engine was started and not released."""
        return sorted(self._engines)

    def reconcile(self) -> ReconcileReport:
        """See :meth:`NotebookBackend.reconcile`: memory cannot go stale, there is nothing to repair."""
        return ReconcileReport(checked=len(self._records))

    def render_html(self, server: Server, notebook: str, *, timeout: float, max_bytes: int) -> bytes:
        """See :class:`~nbhosting_core.studentwork.HtmlRenderer`: the notebook's text in a page (no nbconvert)."""
        record = self._records.get(server.name)
        if record is None or record.server.state is not ServerState.RUNNING:
            raise RuntimeUnavailable("Your notebook server is not running.", log_detail=f"{server.name} (fake)")
        text = (record.workspace / notebook).read_text(errors="replace")
        page = f"<!DOCTYPE html>\n<html><body><pre>{html.escape(text)}</pre></body></html>\n".encode()
        if len(page) > max_bytes:
            raise InvalidInput("This notebook is too large to share.", log_detail=f"{len(page)} bytes (fake)")
        return page

    def trust_copy(self, account: Account, course: str, notebook: str, content: bytes) -> bool:
        """See :class:`~nbhosting_core.trust.CopyTrust`: recorded for the server's later starts, and in the running
        server's list (see :meth:`vouched`)."""
        name = container_name(account.user, course)
        with self._lock:
            recorded = self._vouched.setdefault(name, [])
            if (notebook, content) not in recorded:
                recorded.append((notebook, content))
            record = self._records.get(name)
            if record is None or record.server.state is not ServerState.RUNNING:
                return False
            if (notebook, content) in record.vouched:
                return False
            record.vouched.append((notebook, content))
            return True

    # ------------------------------------------------------------------------------------ test knobs

    def vouched(self, name: str) -> list[tuple[str, bytes]]:
        """The copies server ``name`` trusts beyond the course as it was at its start: (notebook, content), those
        :meth:`trust_copy` vouched for before its start, then since."""
        record = self._records.get(name)
        return [] if record is None else list(record.vouched)

    def crash(self, name: str, output: str = "") -> None:
        """Make server ``name`` die, as if its Jupyter exited (``output``: what it printed)."""
        with self._lock:
            record = self._records[name]
            record.server = record.server.model_copy(update={"state": ServerState.STOPPED})
            record.sessions.clear()
            record.log.extend(output.splitlines())

    def emit(self, name: str, output: str) -> None:
        """Make server ``name`` print ``output`` (one line per line of it) into its log."""
        with self._lock:
            self._records[name].log.extend(output.splitlines())

    def break_server(self, name: str) -> None:
        """Put server ``name`` in a state the engine cannot use (it is replaced at the next launch)."""
        with self._lock:
            record = self._records[name]
            record.server = record.server.model_copy(update={"state": ServerState.BROKEN, "started_at": None})

    def set_activity(self, name: str, activity: ServerActivity) -> None:
        """What Jupyter in server ``name`` reports from now on."""
        self._records[name].activity = activity

    def sessions(self, name: str) -> dict[str, str | None]:
        """The kernels started in server ``name`` since its last start: notebook -> kernel name."""
        return dict(self._records[name].sessions)

    def set_usage(self, name: str, usage: Usage) -> None:
        """What server ``name`` uses from now on."""
        self._records[name].usage = usage

    def workspace_of(self, name: str) -> Path:
        """The workspace server ``name`` was last started with."""
        return self._records[name].workspace

    def unavailable(self, times: int = 1) -> None:
        """Make the next ``times`` launches fail as if the engine could not be reached."""
        self.fail_next.extend(
            RuntimeUnavailable("The container engine cannot be reached.", log_detail="FakeBackend.unavailable()")
            for _ in range(times)
        )

    def _current(self, server: Server) -> Server | None:
        record = self._records.get(server.name)
        if record is None or record.server.key != server.key:
            return None
        return record.server


class FakeAccounts:
    """Students' accounts without Linux users: every student runs as the current process's uid.

    Homes are made under ``homes`` (e.g. ``settings.students_dir``), so workspaces work for real, as any user.
    """

    def __init__(self, homes: Path, *, prefix: str = USER_PREFIX) -> None:
        self._homes = homes
        self._prefix = prefix
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        #: every account created, in order
        self.created: list[str] = []

    def find(self, student_id: str) -> Account | None:
        """See :meth:`AccountStore.find`."""
        return self._accounts.get(student_id)

    def ensure(self, student_id: str) -> Account:
        """See :meth:`AccountStore.ensure`."""
        with self._lock:
            found = self._accounts.get(student_id)
            if found is not None:
                return found
            user = user_name(student_id, self._prefix)
            home = self._homes / user
            home.mkdir(parents=True, exist_ok=True)
            account = Account(student_id=student_id, user=user, uid=os.getuid(), gid=os.getgid(), home=home)
            self._accounts[student_id] = account
            self.created.append(student_id)
            return account
