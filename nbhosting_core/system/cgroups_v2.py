"""cgroups v2 (unified hosts): one group per server, all controllers in it.

::

    /sys/fs/cgroup/<settings.cgroup_parent>/<server>/   (memory, pids, cpu)
"""

from __future__ import annotations

import contextlib
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
    students_pids,
    write_value,
)

if TYPE_CHECKING:
    from ..settings import Settings


class CgroupV2Limiter(ServerGroups):
    """cgroups v2 (unified hosts): one group per server under ``/sys/fs/cgroup/<parent>``."""

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

    def _base(self) -> Path:
        return self._root / self._settings.cgroup_parent

    def _prepare(self) -> None:
        if self._prepared:
            return
        base = self._base()
        base.mkdir(exist_ok=True)
        wanted = [c for c in ("memory", "pids", "cpu") if c in (self._root / "cgroup.controllers").read_text().split()]
        for folder in (self._root, base):
            with contextlib.suppress(OSError):  # the root may have them enabled already
                write_value(folder / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        total = int(meminfo("MemTotal") * self._settings.students_memory_fraction)
        if total:
            write_value(base / "memory.max", total)
        write_value(base / "pids.max", students_pids(self._settings))
        self._prepared = True

    def enforcement(self) -> list[Enforcement]:
        """Memory (swap off), the students' total, processes, CPU share and cap."""
        s = self._settings
        controllers = set((self._root / "cgroup.controllers").read_text().split())
        cap = (
            Enforcement("cpu cap", True, "none (cpu_limit not set): a server may use every idle core")
            if s.cpu_limit is None
            else Enforcement("cpu cap", "cpu" in controllers, f"{s.cpu_limit:g} cores per server (cpu.max)")
        )
        return [
            Enforcement("memory", True, f"{mib(s.memory_limit)} per server (no swap), tmpfs files included"),
            Enforcement("all students", True, f"all servers together: {s.students_memory_fraction:.0%} of the host"),
            Enforcement(
                "processes",
                True,
                f"{s.pids_limit} processes and threads per server, {students_pids(s)} for all servers together",
            ),
            Enforcement("cpu share", "cpu" in controllers, f"cpu.weight {cpu_weight(s.cpu_shares)} per server"),
            cap,
        ]

    def spec_limits(self) -> dict[str, Any] | None:
        """None: root enforces them the same way whatever podman's cgroup manager."""
        return None

    def _write_limits(self, name: str) -> list[Path]:
        """The server's group, with its limits."""
        s = self._settings
        folder = self._base() / name
        self._prepare()
        folder.mkdir(exist_ok=True)
        write_value(folder / "memory.max", s.memory_limit)
        with contextlib.suppress(OSError):  # no swap controller: nothing to turn off
            write_value(folder / "memory.swap.max", 0)
        write_value(folder / "pids.max", s.pids_limit)
        if (folder / "cpu.weight").exists():
            write_value(folder / "cpu.weight", cpu_weight(s.cpu_shares))
            quota = f"{int(s.cpu_limit * CFS_PERIOD_US)}" if s.cpu_limit else "max"
            write_value(folder / "cpu.max", f"{quota} {CFS_PERIOD_US}")
        return [folder / "cgroup.procs"]

    def release(self, name: str) -> bool:
        """Remove the server's group (empty once its processes exited)."""
        return remove_group(self._base() / name, name)

    def groups(self) -> set[str]:
        """Servers with a group."""
        with contextlib.suppress(FileNotFoundError):
            return {entry.name for entry in os.scandir(self._base()) if entry.is_dir()}
        return set()

    def usage(self, name: str) -> Usage:
        """Memory, processes and CPU time from the server's group, with its limits."""
        folder = self._base() / name
        cpu_us = read_key(folder / "cpu.stat", "usage_usec")
        cpu_limit = None
        with contextlib.suppress(OSError, ValueError):
            quota, period = (folder / "cpu.max").read_text().split()
            cpu_limit = int(quota) / int(period) if quota != "max" else None
        return Usage(
            memory_bytes=read_int(folder / "memory.current"),
            memory_limit=read_int(folder / "memory.max"),
            oom_kills=read_key(folder / "memory.events", "oom_kill"),
            pids=read_int(folder / "pids.current"),
            pids_limit=read_int(folder / "pids.max"),
            cpu_seconds=cpu_us / 1e6 if cpu_us is not None else None,
            cpu_limit=cpu_limit,
        )


def cpu_weight(shares: int) -> int:
    """cgroups v1 ``cpu.shares`` (2..262144, default 1024) as a v2 ``cpu.weight`` (1..10000, default 100)."""
    return max(1, min(10000, 1 + ((shares - 2) * 9999) // 262142))
