"""The cgroup file system, as root uses it: read and write control files, move a server's processes in.

Shared by :mod:`.cgroups_v1` and :mod:`.cgroups_v2`; :mod:`.cgroups` says which one a host gets.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LimitsNotApplied
from .records import process_uid

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000
#: seconds to get every process of a server into its groups before giving up (and stopping it)
MOVE_DEADLINE = 2.0
#: seconds a stopped server's processes may take to leave its groups before they are kept for later
RELEASE_DEADLINE = 2.0
#: what a student is told when their server cannot be put under its limits
UNSAFE = "Your notebook server could not be started safely; please try again."


@dataclass(frozen=True)
class Enforcement:
    """What one limit amounts to on this host (what ``nbh doctor`` says)."""

    name: str
    enforced: bool
    detail: str


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/<pid>/task/*/children), parents first."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            with contextlib.suppress(OSError, ValueError):
                queue += [int(c) for c in Path(f"/proc/{current}/task/{tid}/children").read_text().split()]
    return found


def write_value(path: Path, value: str | int) -> None:
    """Write one value to a control file."""
    with open(path, "w") as out:  # cgroup files: no O_TRUNC semantics needed, one write each
        out.write(str(value))


def add_process(procs: Path, pid: int) -> None:
    """Write ``pid`` to a ``cgroup.procs`` (appending: a plain file standing in for one keeps every pid)."""
    fd = os.open(procs, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{pid}\n".encode())
    finally:
        os.close(fd)


def members(procs: Path) -> set[int]:
    """The pids in a ``cgroup.procs`` (none if it cannot be read)."""
    try:
        return {int(p) for p in procs.read_text().split()}
    except (OSError, ValueError):
        return set()


def read_int(path: Path) -> int | None:
    """The first number in a control file; None if absent, unreadable or ``max``."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def read_key(path: Path, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed cgroup file (``memory.oom_control``, ``memory.events``...)."""
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
    return None


def meminfo(field: str) -> int:
    """A /proc/meminfo field, in bytes (0 if absent)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def students_pids(settings: Settings) -> int:
    """How many processes and threads all servers together may hold: a fraction of the host's pid_max."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    return max(settings.pids_limit, int(pid_max * settings.students_pids_fraction))


def mib(value: int) -> str:
    """Bytes, as MiB for people."""
    return f"{value / 2**20:.0f} MiB"


def remove_group(folder: Path, name: str) -> bool:
    """rmdir a server's group, waiting a little for exiting processes; False if it still holds some."""
    deadline = time.monotonic() + RELEASE_DEADLINE
    while True:
        try:
            os.rmdir(folder)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
        if time.monotonic() > deadline:
            log.warning(
                "limits of %s: %s still holds processes %s; kept",
                name,
                folder,
                sorted(members(folder / "cgroup.procs")),
            )
            return False
        time.sleep(0.05)


class ServerGroups:
    """What both versions share: settings, and moving a server's processes in."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self._settings = settings
        self._root = root
        self._prepared = False

    def apply(self, name: str, pid: int, uid: int) -> None:
        """Make the server's groups, set its limits, move its processes in.

        Raises:
            LimitsNotApplied: a group could not be made or written, or processes kept escaping the move.
        """
        try:
            self._move(name, pid, uid, self._write_limits(name))
        except OSError as exc:
            raise LimitsNotApplied(UNSAFE, log_detail=f"limits of {name}: {exc}") from exc

    def _write_limits(self, name: str) -> list[Path]:
        """Make the server's groups and write its limits; the ``cgroup.procs`` files to move its processes to."""
        raise NotImplementedError

    def _move(self, name: str, pid: int, uid: int, procs_files: list[Path]) -> None:
        """Move ``pid`` and its descendants of ``uid`` into every group of ``procs_files``, until none is left out.

        Parents are moved before their children: a child forked after its parent moved is born inside, one
        forked just before is found at the next pass.
        """
        deadline = time.monotonic() + MOVE_DEADLINE
        passes = 0
        while True:
            now = [members(procs) for procs in procs_files]
            outside = [p for p in descendants(pid) if any(p not in m for m in now) and process_uid(p) == uid]
            if not outside:
                s = self._settings
                log.info(
                    "limits of %s: memory %s, %d processes, cpu shares %d, cpu cap %s; %d processes in after %d passes",
                    name,
                    mib(s.memory_limit),
                    s.pids_limit,
                    s.cpu_shares,
                    f"{s.cpu_limit:g} cores" if s.cpu_limit else "none",
                    len(now[0]) if now else 0,
                    passes,
                )
                return
            if passes and time.monotonic() > deadline:
                raise LimitsNotApplied(
                    UNSAFE,
                    log_detail=f"limits of {name}: processes {outside[:20]} still outside its groups after "
                    f"{passes} passes (they kept forking)",
                )
            passes += 1
            for p in outside:
                for procs, inside in zip(procs_files, now, strict=True):
                    if p not in inside:
                        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                            add_process(procs, p)


def set_memory_v1(folder: Path, limit: int, what: str) -> bool:
    """Set the memory limit of a v1 group, swap included where the host accounts it; False if refused.

    ``memory.memsw.limit_in_bytes`` (memory + swap) may never be below ``memory.limit_in_bytes``: raising,
    memsw is written first; lowering, last. Lowering below what the group uses makes the kernel reclaim;
    when it cannot (no swap, anonymous memory), it refuses (EBUSY): the old limit stays, and that is logged.
    """
    memory, memsw = folder / "memory.limit_in_bytes", folder / "memory.memsw.limit_in_bytes"
    current = read_int(memory)
    files = [memory, memsw] if memsw.exists() else [memory]
    if current is not None and limit > current:
        files.reverse()
    try:
        for path in files:
            write_value(path, limit)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        log.error(
            "memory limit of %s: it uses more than %d bytes and the kernel cannot reclaim it; %s kept at %s",
            what,
            limit,
            path.name,
            read_int(path),
        )
        return False
    return True
