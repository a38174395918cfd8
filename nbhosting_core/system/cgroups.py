"""Memory, process and CPU limits per server, enforced by root from outside the container.

Rootless podman cannot limit anything on a cgroups v1 host (it warns and runs the container unlimited), and
on a v2 host only with systemd's delegation. Root can always do it: it makes a group per server under the
installation's own group (``settings.cgroup_parent``), writes the limits there, and moves the container's
processes in once they run. A process and everything it forks later stay in the group; the student's uid
cannot write root's ``cgroup.procs`` to leave it. The parent group is capped at ``students_memory_fraction`` of
the host's memory, so that all students together leave the host its share.

::

    v1 (hybrid hosts): /sys/fs/cgroup/{memory,pids,cpu,cpuacct}/<parent>/<server>/
    v2 (unified):      /sys/fs/cgroup/<parent>/<server>/   (memory, pids, cpu controllers)

Moving processes races with their forks: a child forked before its parent moved stays behind. The move is
repeated until every process of the server is in all its groups, and checked; a server whose processes
cannot all be moved within :data:`MOVE_DEADLINE` raises :class:`~nbhosting_core.errors.LimitsNotApplied`
(the backend then stops it: limits, or no server).

Which process the OOM killer takes inside a full group is the image's part: kernels and terminals start
through ``nbhosting-expendable`` (``containerfiles/default``), which raises their ``oom_score_adj``, so a
kernel dies before its Jupyter server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..models import Usage
from .cgroupfs import CGROUP_ROOT, Enforcement, descendants
from .cgroups_v1 import CgroupV1Limiter
from .cgroups_v2 import CgroupV2Limiter, cpu_weight

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "CgroupV1Limiter",
    "CgroupV2Limiter",
    "Enforcement",
    "Limiter",
    "NoLimits",
    "cpu_weight",
    "descendants",
    "limiter_for",
]


class Limiter(Protocol):
    """Puts each server under its limits, and reads what it uses."""

    #: what ``nbh doctor`` says of it, in one line
    description: str

    def enforcement(self) -> list[Enforcement]:
        """Each limit, and whether this host enforces it."""
        ...

    def spec_limits(self) -> dict[str, Any] | None:
        """podman ``resource_limits`` for the container spec, where the engine enforces them itself."""
        ...

    def apply(self, name: str, pid: int, uid: int) -> None:
        """Put the running server ``name`` (its init ``pid`` and all its descendants, all of ``uid``) under limits.

        Raises:
            LimitsNotApplied: some of its processes could not be put in its groups.
        """
        ...

    def release(self, name: str) -> bool:
        """Remove server ``name``'s groups once its processes are gone; False if one still holds processes (kept)."""
        ...

    def groups(self) -> set[str]:
        """Names of the servers that have groups now."""
        ...

    def usage(self, name: str) -> Usage:
        """What server ``name`` uses now, and its limits."""
        ...


class NoLimits:
    """No enforcement (not root, or no usable cgroup controller): ``nbh doctor`` says so."""

    description = "not enforced (needs root and the memory and pids cgroup controllers)"

    def __init__(self, reason: str = "needs root and the memory and pids cgroup controllers") -> None:
        self.description = f"not enforced ({reason})"

    def enforcement(self) -> list[Enforcement]:
        """Nothing is enforced."""
        return [Enforcement(what, False, self.description) for what in ("memory", "processes", "cpu share")]

    def spec_limits(self) -> dict[str, Any] | None:
        """None: nothing to ask of the engine."""
        return None

    def apply(self, name: str, pid: int, uid: int) -> None:
        """Nothing."""

    def release(self, name: str) -> bool:
        """Nothing to remove."""
        return True

    def groups(self) -> set[str]:
        """None."""
        return set()

    def usage(self, name: str) -> Usage:
        """Nothing known."""
        return Usage()


def limiter_for(settings: Settings, root: Path = CGROUP_ROOT) -> Limiter:
    """The limiter this host supports: v2, v1, or none (not root, or no controllers)."""
    if os.geteuid() != 0:
        return NoLimits("nbhosting does not run as root")
    if CgroupV2Limiter.available(root):
        return CgroupV2Limiter(settings, root)
    if CgroupV1Limiter.available(root):
        return CgroupV1Limiter(settings, root)
    return NoLimits("no memory and pids cgroup controllers on this host")
