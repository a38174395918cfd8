"""cgroups v1 (hybrid hosts): one group per server in the memory, pids, cpu and cpuacct hierarchies.

::

    /sys/fs/cgroup/{memory,pids,cpu,cpuacct}/<settings.cgroup_parent>/<server>/
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models import Usage
from .cgroupfs import (
    CFS_PERIOD_US,
    CGROUP_ROOT,
    Enforcement,
    ServerGroups,
    meminfo,
    mib,
    read_int,
    read_key,
    remove_group,
    set_memory_v1,
    students_pids,
    write_value,
)

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)


class CgroupV1Limiter(ServerGroups):
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
        base = self._root / controller / self._settings.cgroup_parent
        return base / name if name else base

    def _controllers(self) -> list[str]:
        return [c for c in self.CONTROLLERS if (self._root / c).is_dir()]

    def _prepare(self) -> None:
        if self._prepared:
            return
        for controller in self._controllers():
            self._dir(controller).mkdir(exist_ok=True)
        total = int(meminfo("MemTotal") * self._settings.students_memory_fraction)
        if total:
            set_memory_v1(self._dir("memory"), total, f"all students ({self._settings.cgroup_parent})")
        write_value(self._dir("pids") / "pids.max", students_pids(self._settings))
        self._prepared = True

    def enforcement(self) -> list[Enforcement]:
        """Memory (swap included or not), the students' total, processes, CPU share and cap, on this host."""
        s = self._settings
        memory = self._root / "memory"
        if (memory / "memory.memsw.limit_in_bytes").exists():
            swap = (True, "swap included")
        elif meminfo("SwapTotal") == 0:
            swap = (True, "no swap on this host")
        else:
            swap = (False, "swap NOT counted: boot with swapaccount=1")
        hierarchy = read_int(memory / "memory.use_hierarchy") != 0
        cpu = self._root / "cpu"
        cfs = (cpu / "cpu.cfs_quota_us").exists()
        if s.cpu_limit is None:
            cap = Enforcement("cpu cap", True, "none (cpu_limit not set): a server may use every idle core")
        elif cfs:
            cap = Enforcement("cpu cap", True, f"{s.cpu_limit:g} cores per server (CFS quota)")
        else:
            cap = Enforcement("cpu cap", False, f"cpu_limit={s.cpu_limit:g} NOT enforced: no CFS bandwidth control")
        return [
            Enforcement("memory", swap[0], f"{mib(s.memory_limit)} per server ({swap[1]}), tmpfs files included"),
            Enforcement(
                "all students",
                hierarchy,
                f"all servers together: {s.students_memory_fraction:.0%} of the host "
                f"({mib(int(meminfo('MemTotal') * s.students_memory_fraction))})"
                + ("" if hierarchy else ": NOT enforced, memory.use_hierarchy is 0"),
            ),
            Enforcement(
                "processes",
                True,
                f"{s.pids_limit} processes and threads per server, {students_pids(s)} for all servers together",
            ),
            Enforcement("cpu share", cpu.is_dir(), f"cpu.shares {s.cpu_shares} per server (fair under contention)"),
            cap,
        ]

    def spec_limits(self) -> dict[str, Any] | None:
        """None: podman cannot enforce them rootless on v1."""
        return None

    def _write_limits(self, name: str) -> list[Path]:
        """The server's group in each hierarchy, with its limits."""
        s = self._settings
        self._prepare()
        procs = []
        for controller in self._controllers():
            folder = self._dir(controller, name)
            folder.mkdir(exist_ok=True)
            procs.append(folder / "cgroup.procs")
        set_memory_v1(self._dir("memory", name), s.memory_limit, name)
        write_value(self._dir("pids", name) / "pids.max", s.pids_limit)
        cpu = self._dir("cpu", name)
        if cpu.is_dir():
            write_value(cpu / "cpu.shares", s.cpu_shares)
            if s.cpu_limit and (cpu / "cpu.cfs_quota_us").exists():
                write_value(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
                write_value(cpu / "cpu.cfs_quota_us", int(s.cpu_limit * CFS_PERIOD_US))
            elif (cpu / "cpu.cfs_quota_us").exists():
                write_value(cpu / "cpu.cfs_quota_us", -1)
            elif s.cpu_limit:
                log.warning("limits of %s: cpu_limit is set but this host has no CFS quota; not capped", name)
        return procs

    def release(self, name: str) -> bool:
        """Remove the server's groups (they are empty once its processes exited)."""
        return all([remove_group(self._dir(controller, name), name) for controller in self._controllers()])

    def groups(self) -> set[str]:
        """Servers with a group in any hierarchy."""
        found: set[str] = set()
        for controller in self._controllers():
            with contextlib.suppress(FileNotFoundError):
                found |= {entry.name for entry in os.scandir(self._dir(controller)) if entry.is_dir()}
        return found

    def usage(self, name: str) -> Usage:
        """Memory, processes and CPU time from the server's groups, with their limits."""
        memory, pids, cpu = self._dir("memory", name), self._dir("pids", name), self._dir("cpu", name)
        cpu_ns = read_int(self._dir("cpuacct", name) / "cpuacct.usage")
        quota = read_int(cpu / "cpu.cfs_quota_us")
        period = read_int(cpu / "cpu.cfs_period_us")
        return Usage(
            memory_bytes=read_int(memory / "memory.usage_in_bytes"),
            memory_limit=read_int(memory / "memory.limit_in_bytes"),
            oom_kills=read_key(memory / "memory.oom_control", "oom_kill"),
            pids=read_int(pids / "pids.current"),
            pids_limit=read_int(pids / "pids.max"),
            cpu_seconds=cpu_ns / 1e9 if cpu_ns is not None else None,
            cpu_limit=quota / period if quota is not None and quota > 0 and period else None,
        )
