"""Proportional set size (PSS) of processes, from /proc: what a server costs the host, shared pages split fairly."""

from __future__ import annotations

import subprocess
from contextlib import suppress
from pathlib import Path


def pss_kib(pid: int) -> int:
    """PSS of one process in KiB (0 if it is gone)."""
    with suppress(OSError, StopIteration):
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        return next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with suppress(OSError):
                    todo += [int(p) for p in (task / "children").read_text().split()]
    return found


def parent(pid: int) -> int | None:
    with suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return None


def container_pss_mib(init_pid: int) -> float:
    """A container's processes (its init and all below) plus its conmon (the init's parent), in MiB."""
    pids = descendants(init_pid)
    conmon = parent(init_pid)
    if conmon is not None and Path(f"/proc/{conmon}/comm").read_text().strip() == "conmon":
        pids.append(conmon)
    return sum(pss_kib(p) for p in pids) / 1024


def uid_pss_mib(uid: int) -> float:
    """Every process of ``uid`` (an nbhosting student: conmon, tini, pause, Jupyter, kernels), in MiB."""
    pids = subprocess.run(["pgrep", "-U", str(uid)], capture_output=True, text=True).stdout.split()
    return sum(pss_kib(int(p)) for p in pids) / 1024
