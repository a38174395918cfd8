"""Memory, process and CPU limits per server, enforced by root from outside the container.

Rootless podman cannot limit anything on a cgroups v1 host (it warns and runs the container unlimited), and
on a v2 host only with systemd's delegation. Root can always do it: it makes a group per server under its own
``nbhosting`` group, writes the limits there, and moves the container's processes in once they run. A process
and everything it forks later stay in the group; the student's uid cannot write root's ``cgroup.procs`` to
leave it. The ``nbhosting`` group itself is capped at ``students_memory_fraction`` of the host's memory, so
that all students together leave the host its share.

::

    v1 (hybrid hosts): /sys/fs/cgroup/{memory,pids,cpu,cpuacct}/nbhosting/<server>/
    v2 (unified):      /sys/fs/cgroup/nbhosting/<server>/   (memory, pids, cpu controllers)
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..models import Usage
from .records import process_uid

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP = "nbhosting"
CFS_PERIOD_US = 100_000


class Limiter(Protocol):
    """Puts each server under its limits, and reads what it uses."""

    #: what ``nbh doctor`` says of it
    description: str

    def spec_limits(self) -> dict[str, Any] | None:
        """podman ``resource_limits`` for the container spec, where the engine enforces them itself."""
        ...

    def apply(self, name: str, pid: int, uid: int) -> None:
        """Put the running server ``name`` (its init ``pid`` and all its descendants, all of ``uid``) under limits."""
        ...

    def release(self, name: str) -> None:
        """Forget server ``name``'s group once its processes are gone."""
        ...

    def usage(self, name: str) -> Usage:
        """What server ``name`` uses now, and its limits."""
        ...


class NoLimits:
    """No enforcement (not root, or no usable cgroup controller): ``nbh doctor`` says so."""

    description = "not enforced (needs root and the memory and pids cgroup controllers)"

    def spec_limits(self) -> dict[str, Any] | None:
        """None: nothing to ask of the engine."""
        return None

    def apply(self, name: str, pid: int, uid: int) -> None:
        """Nothing."""

    def release(self, name: str) -> None:
        """Nothing."""

    def usage(self, name: str) -> Usage:
        """Nothing known."""
        return Usage()


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


def _write(path: Path, value: str | int) -> None:
    with open(path, "w") as out:  # cgroup files: no O_TRUNC semantics needed, one write each
        out.write(str(value))


def _read_int(path: Path) -> int | None:
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


def _host_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


class _Groups:
    """What both versions share: settings, and moving a server's processes in."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self._settings = settings
        self._root = root
        self._prepared = False

    def _move(self, name: str, pid: int, uid: int, procs_files: list[Path]) -> None:
        moved: set[int] = set()
        for _ in range(5):  # processes may fork while we move them: until no new one appears
            fresh = [p for p in descendants(pid) if p not in moved and process_uid(p) == uid]
            if not fresh:
                return
            for p in fresh:
                for procs in procs_files:
                    with contextlib.suppress(ProcessLookupError, OSError):
                        _write(procs, p)
                moved.add(p)
        log.warning("limits of %s: its processes kept forking while being moved", name)


class CgroupV1Limiter(_Groups):
    """cgroups v1 (hybrid hosts): one group per server in the memory, pids, cpu and cpuacct hierarchies."""

    description = "enforced by root in cgroups v1 (memory, pids, cpu)"
    CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")

    def __init__(self, settings: Settings, root: Path = CGROUP_ROOT) -> None:
        super().__init__(settings, root)

    @staticmethod
    def available(root: Path = CGROUP_ROOT) -> bool:
        """True if the memory and pids v1 hierarchies are mounted."""
        return (root / "memory" / "memory.limit_in_bytes").exists() and (root / "pids").is_dir()

    def _dir(self, controller: str, name: str = "") -> Path:
        base = self._root / controller / GROUP
        return base / name if name else base

    def _prepare(self) -> None:
        if self._prepared:
            return
        for controller in self.CONTROLLERS:
            if (self._root / controller).is_dir():
                self._dir(controller).mkdir(exist_ok=True)
        total = int(_host_memory() * self._settings.students_memory_fraction)
        if total:
            _write(self._dir("memory") / "memory.limit_in_bytes", total)
        self._prepared = True

    def spec_limits(self) -> dict[str, Any] | None:
        """None: podman cannot enforce them rootless on v1."""
        return None

    def apply(self, name: str, pid: int, uid: int) -> None:
        """Make the server's groups, set its limits, move its processes in."""
        s = self._settings
        self._prepare()
        procs = []
        for controller in self.CONTROLLERS:
            if not (self._root / controller).is_dir():
                continue
            folder = self._dir(controller, name)
            folder.mkdir(exist_ok=True)
            procs.append(folder / "cgroup.procs")
        memory = self._dir("memory", name)
        _write(memory / "memory.limit_in_bytes", s.memory_limit)
        if (memory / "memory.memsw.limit_in_bytes").exists():  # swap counted too, where accounted
            with contextlib.suppress(OSError):
                _write(memory / "memory.memsw.limit_in_bytes", s.memory_limit)
        _write(self._dir("pids", name) / "pids.max", s.pids_limit)
        cpu = self._dir("cpu", name)
        if cpu.is_dir():
            _write(cpu / "cpu.shares", s.cpu_shares)
            if s.cpu_limit:
                _write(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
                _write(cpu / "cpu.cfs_quota_us", int(s.cpu_limit * CFS_PERIOD_US))
        self._move(name, pid, uid, procs)

    def release(self, name: str) -> None:
        """Remove the server's groups (they are empty once its processes exited)."""
        for controller in self.CONTROLLERS:
            with contextlib.suppress(OSError):
                os.rmdir(self._dir(controller, name))

    def usage(self, name: str) -> Usage:
        """Memory, processes and CPU time from the server's groups."""
        memory, pids = self._dir("memory", name), self._dir("pids", name)
        cpu_ns = _read_int(self._dir("cpuacct", name) / "cpuacct.usage")
        return Usage(
            memory_bytes=_read_int(memory / "memory.usage_in_bytes"),
            memory_limit=_read_int(memory / "memory.limit_in_bytes"),
            pids=_read_int(pids / "pids.current"),
            pids_limit=_read_int(pids / "pids.max"),
            cpu_seconds=cpu_ns / 1e9 if cpu_ns is not None else None,
        )


class CgroupV2Limiter(_Groups):
    """cgroups v2 (unified hosts): one group per server under ``/sys/fs/cgroup/nbhosting``."""

    description = "enforced by root in cgroups v2 (memory, pids, cpu)"

    def __init__(self, settings: Settings, root: Path = CGROUP_ROOT) -> None:
        super().__init__(settings, root)

    @staticmethod
    def available(root: Path = CGROUP_ROOT) -> bool:
        """True if the unified hierarchy offers the memory and pids controllers."""
        try:
            controllers = (root / "cgroup.controllers").read_text().split()
        except OSError:
            return False
        return "memory" in controllers and "pids" in controllers

    def _prepare(self) -> None:
        if self._prepared:
            return
        base = self._root / GROUP
        base.mkdir(exist_ok=True)
        wanted = [c for c in ("memory", "pids", "cpu") if c in (self._root / "cgroup.controllers").read_text().split()]
        for folder in (self._root, base):
            with contextlib.suppress(OSError):  # the root may have them enabled already
                _write(folder / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        total = int(_host_memory() * self._settings.students_memory_fraction)
        if total:
            _write(base / "memory.max", total)
        self._prepared = True

    def spec_limits(self) -> dict[str, Any] | None:
        """None: root enforces them the same way whatever podman's cgroup manager."""
        return None

    def apply(self, name: str, pid: int, uid: int) -> None:
        """Make the server's group, set its limits, move its processes in."""
        s = self._settings
        self._prepare()
        folder = self._root / GROUP / name
        folder.mkdir(exist_ok=True)
        _write(folder / "memory.max", s.memory_limit)
        with contextlib.suppress(OSError):
            _write(folder / "memory.swap.max", 0)
        _write(folder / "pids.max", s.pids_limit)
        if (folder / "cpu.weight").exists():
            _write(folder / "cpu.weight", cpu_weight(s.cpu_shares))
            if s.cpu_limit:
                _write(folder / "cpu.max", f"{int(s.cpu_limit * CFS_PERIOD_US)} {CFS_PERIOD_US}")
        self._move(name, pid, uid, [folder / "cgroup.procs"])

    def release(self, name: str) -> None:
        """Remove the server's group (empty once its processes exited)."""
        with contextlib.suppress(OSError):
            os.rmdir(self._root / GROUP / name)

    def usage(self, name: str) -> Usage:
        """Memory, processes and CPU time from the server's group."""
        folder = self._root / GROUP / name
        cpu_us = None
        with contextlib.suppress(OSError, ValueError):
            for line in (folder / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec"):
                    cpu_us = int(line.split()[1])
        return Usage(
            memory_bytes=_read_int(folder / "memory.current"),
            memory_limit=_read_int(folder / "memory.max"),
            pids=_read_int(folder / "pids.current"),
            pids_limit=_read_int(folder / "pids.max"),
            cpu_seconds=cpu_us / 1e6 if cpu_us is not None else None,
        )


def cpu_weight(shares: int) -> int:
    """cgroups v1 ``cpu.shares`` (2..262144, default 1024) as a v2 ``cpu.weight`` (1..10000, default 100)."""
    return max(1, min(10000, 1 + ((shares - 2) * 9999) // 262142))


def limiter_for(settings: Settings, root: Path = CGROUP_ROOT) -> Limiter:
    """The limiter this host supports: v2, v1, or none (not root, or no controllers)."""
    if os.geteuid() != 0:
        return NoLimits()
    if CgroupV2Limiter.available(root):
        return CgroupV2Limiter(settings, root)
    if CgroupV1Limiter.available(root):
        return CgroupV1Limiter(settings, root)
    return NoLimits()
