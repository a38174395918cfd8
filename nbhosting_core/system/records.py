"""The podman backend's own records, in root-only folders: which servers exist, and which run now.

Podman's labels are the truth, but asking each student's podman is far too slow to list a host. So the
backend keeps two small JSON files per server, written atomically, and re-checks them against the truth in
``reconcile``:

* ``DATA_ROOT/servers/<name>.json`` (:class:`ServerRecord`): the server exists; its labels. Written before the
  container is created (``phase: creating``) so that a crash half-way is found again, marked ``created`` once
  it runs.
* ``RUN_DIR/servers/<key>.json`` (:class:`RunRecord`): it was started since boot, by this process id. Whether it
  still runs is read from ``/proc`` (the pid and its start time, so a reused pid never counts).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError

from ..models import Server, ServerState
from ..naming import is_key
from .tree import write_atomic

M = TypeVar("M", bound=BaseModel)


class ServerRecord(BaseModel):
    """A server that exists (or is being created): a copy of its container's labels."""

    name: str
    course: str
    student_id: str
    user: str
    uid: int
    gid: int
    key: str
    image: str
    phase: Literal["creating", "created"] = "created"


class RunRecord(BaseModel):
    """A server's processes since its last start: the container's init, as the host sees it."""

    key: str
    name: str
    pid: int
    pid_start: int
    started_at: float


def process_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields after the last ')' are fixed
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def process_uid(pid: int) -> int | None:
    """The real uid of process ``pid``; None if there is no such process or it has exited (a zombie).

    A zombie runs nothing and /proc shows it in no group: it is no one's process any more.
    """
    uid = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                return None
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return uid


def processes_of(uids: set[int] | range) -> list[int]:
    """Every live (not zombie) process whose real uid is in ``uids``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            uid = process_uid(int(entry.name))
            if uid is not None and uid in uids:
                found.append(int(entry.name))
    return found


def stop_processes(pids: set[int], grace: float = 2.0) -> list[int]:
    """SIGTERM ``pids``, then SIGKILL those still there after ``grace`` seconds, and wait (``grace`` again) until
    they are gone; the ones that were there."""
    there = []
    for pid in sorted(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            there.append(pid)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(process_uid(p) is not None for p in there):
        time.sleep(0.02)
    for pid in there:
        if process_uid(pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace  # SIGKILL cannot be refused, but dying takes a moment
    while time.monotonic() < deadline and any(process_uid(p) is not None for p in there):
        time.sleep(0.02)
    return there


def running_conmons(uid_min: int, uid_max: int) -> list[tuple[int, str]]:
    """(uid, container name) of every conmon run by a uid in [uid_min, uid_max]: containers that run now.

    Only a hint of whom to ask: a student could name a process "conmon"; podman's answer is the truth.
    """
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        uid = process_uid(pid)
        if uid is None or not uid_min <= uid <= uid_max:
            continue
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "conmon":
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for flag, value in zip(argv, argv[1:], strict=False):
            if flag in (b"-n", b"--name"):
                found.append((uid, value.decode(errors="replace")))
    return found


class Records:
    """Reads and writes :class:`ServerRecord` and :class:`RunRecord` files."""

    def __init__(self, servers_dir: Path, running_dir: Path) -> None:
        self._servers = servers_dir
        self._running = running_dir

    def server(self, name: str) -> ServerRecord | None:
        """The record of server ``name``, or None."""
        return _load(self._servers / f"{name}.json", ServerRecord)

    def servers(self) -> list[ServerRecord]:
        """Every server record."""
        found = []
        for path in sorted(self._servers.glob("*.json")) if self._servers.is_dir() else []:
            record = _load(path, ServerRecord)
            if record is not None:
                found.append(record)
        return found

    def put_server(self, record: ServerRecord) -> None:
        """Write (or replace) the record of ``record.name``."""
        _store(self._servers / f"{record.name}.json", record)

    def drop_server(self, name: str) -> None:
        """Forget server ``name``."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._servers / f"{name}.json")

    def run(self, key: str) -> RunRecord | None:
        """The run record of the server with ``key``, or None."""
        return _load(self._running / f"{key}.json", RunRecord) if is_key(key) else None

    def runs(self) -> list[RunRecord]:
        """Every run record."""
        found = []
        for path in sorted(self._running.glob("*.json")) if self._running.is_dir() else []:
            record = _load(path, RunRecord)
            if record is not None:
                found.append(record)
        return found

    def put_run(self, record: RunRecord) -> None:
        """Write the run record of ``record.key``."""
        _store(self._running / f"{record.key}.json", record)

    def drop_run(self, key: str) -> None:
        """Forget the run of ``key``."""
        if is_key(key):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._running / f"{key}.json")

    def alive(self, run: RunRecord, uid: int) -> bool:
        """True if the process of ``run`` still runs, as ``uid`` (not a reused pid)."""
        return process_start(run.pid) == run.pid_start and process_uid(run.pid) == uid

    def running(self) -> list[Server]:
        """Every server that runs now: the run records, each checked in /proc (cheap: no engine call; the servers
        that do not run cost nothing)."""
        servers = []
        for run in self.runs():
            record = self.server(run.name)
            if record is not None and record.key == run.key and self.alive(run, record.uid):
                servers.append(server_of(record, ServerState.RUNNING, run.started_at))
        return servers

    def find(self, key: str) -> Server | None:
        """The server whose key is ``key`` (started since boot), running or stopped, from the records alone.

        Cheap (two small files and /proc; no engine call) and needs no privilege beyond reading the records: the
        app's gate answers Caddy's forward-auth with it, the backend its ``find``.
        """
        run = self.run(key)
        record = self.server(run.name) if run is not None else None
        if run is None or record is None or record.key != key:
            return None
        if self.alive(run, record.uid):
            return server_of(record, ServerState.RUNNING, run.started_at)
        return server_of(record, ServerState.STOPPED, None)


def server_of(record: ServerRecord, state: ServerState, started_at: float | None) -> Server:
    """The :class:`Server` a record describes, in ``state``."""
    return Server(**record.model_dump(exclude={"gid", "phase"}), state=state, started_at=started_at)


def _load(path: Path, model: type[M]) -> M | None:
    try:
        return model.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None


def _store(path: Path, record: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # 0640: the folder's group (the app's, see ensure_layout) reads the records; nobody else
    write_atomic(path.parent, path.name, record.model_dump_json().encode(), mode=0o640)
