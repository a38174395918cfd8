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


def container_pids(init_pid: int) -> list[int]:
    """A container's processes (its init and all below) plus its conmon (the init's parent)."""
    pids = descendants(init_pid)
    conmon = parent(init_pid)
    if conmon is not None and Path(f"/proc/{conmon}/comm").read_text().strip() == "conmon":
        pids.append(conmon)
    return pids


def uid_pids(uid: int) -> list[int]:
    """Every process of ``uid`` (an nbhosting student: conmon, tini, pause, Jupyter, kernels)."""
    return [int(p) for p in subprocess.run(["pgrep", "-U", str(uid)], capture_output=True, text=True).stdout.split()]


def container_pss_mib(init_pid: int) -> float:
    return sum(pss_kib(p) for p in container_pids(init_pid)) / 1024


def uid_pss_mib(uid: int) -> float:
    return sum(pss_kib(p) for p in uid_pids(uid)) / 1024


def kind(comm: str, argv: list[str]) -> str:
    """What a process of a student's server is, from its name and command line (pure)."""
    named = {
        "conmon": "conmon",
        "catatonit": "catatonit (podman's pause / init)",
        "tini": "tini (container init)",
        "podman": "podman (API service)",
        "slirp4netns": "slirp4netns",
    }
    if comm in named:
        return named[comm]
    words = " ".join(argv)
    if "ipykernel" in words:
        return "kernel (ipykernel)"
    if "jupyter" in words:  # jupyter-server, jupyterhub-singleuser (python -m jupyterhub.singleuser), ...
        return "Jupyter server"
    return comm or "?"


def composition(pids: list[int]) -> dict[str, float]:
    """PSS in MiB of ``pids`` by :func:`kind` (a process gone meanwhile counts 0)."""
    out: dict[str, float] = {}
    for pid in pids:
        with suppress(OSError):
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            name = kind(comm, argv)
            out[name] = out.get(name, 0.0) + pss_kib(pid) / 1024
    return out
