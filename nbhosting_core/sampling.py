"""The host's figures at a moment, for the events' samples: students' servers, their kernels and memory, the
host's load and disk.

:func:`measure` asks each running server for its activity (a bounded probe) and usage, within a budget of
servers and seconds; :func:`host_figures` reads the host's own figures; ``Hub.sample`` records both as one
``sample`` event, which :func:`nbhosting_core.eventstore.host_samples` reads back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .backend import NotebookBackend
from .models import Server
from .system.cgroupfs import meminfo

#: servers probed at most in one sample (each probe is bounded; kernels beyond are not counted)
MAX_PROBES = 500
#: seconds one sample spends probing at most
PROBE_BUDGET = 20.0

Figures = dict[str, float | int | str | None]


@dataclass(frozen=True)
class ServerFigures:
    """What the running servers use: ``probed`` of ``running`` answered the probes in time."""

    running: int
    probed: int
    kernels: int
    busy_kernels: int
    memory_bytes: int

    def as_data(self) -> Figures:
        """The sample's fields of these figures (see :class:`nbhosting_core.eventstore.HostSample`)."""
        return {
            "running": self.running,
            "probed": self.probed,
            "kernels": self.kernels,
            "busy_kernels": self.busy_kernels,
            "memory_bytes": self.memory_bytes,
        }


def measure(
    backend: NotebookBackend,
    servers: Sequence[Server],
    *,
    max_probes: int = MAX_PROBES,
    budget: float = PROBE_BUDGET,
    monotonic: Callable[[], float] = time.monotonic,
) -> ServerFigures:
    """Kernels (from each server's activity) and memory (the sum of their usage) of the running ``servers``.

    Probes at most ``max_probes`` servers and stops once ``budget`` seconds are spent: ``probed`` says how many
    were counted.
    """
    started = monotonic()
    kernels = busy = memory = probed = 0
    for server in servers[:max_probes]:
        if monotonic() - started > budget:
            break
        activity = backend.activity(server)
        if activity is not None:
            kernels += activity.kernels
            busy += activity.busy_kernels
        memory += backend.usage(server).memory_bytes or 0
        probed += 1
    return ServerFigures(running=len(servers), probed=probed, kernels=kernels, busy_kernels=busy, memory_bytes=memory)


def host_figures(data_root: Path) -> Figures:
    """The host's load average (1 min), memory, and the disk of ``data_root`` (used, total bytes)."""
    figures: Figures = {"load1": round(os.getloadavg()[0], 2), "memory_total": meminfo("MemTotal")}
    try:
        disk = os.statvfs(data_root)
    except OSError:
        return figures
    figures["disk_total"] = disk.f_blocks * disk.f_frsize
    figures["disk_used"] = (disk.f_blocks - disk.f_bfree) * disk.f_frsize
    return figures
