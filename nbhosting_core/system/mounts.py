"""Mounts root makes for students: small tmpfs folders, and the shared propagation they need.

Each student's rootless podman lives in a mount namespace of its own, copied from the host's when their
first container started. A mount root makes later (a socket folder's tmpfs) reaches that namespace only if
the folder it is made in is a *shared* mount: :func:`ensure_shared` makes it one (a bind mount of the folder
onto itself, marked shared) before any student's podman starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .runner import CommandRunner

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    target: Path
    fstype: str
    shared: bool


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts listed in a mountinfo text (pure)."""
    mounts = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if not sep or len(fields) < 6:
            continue
        optional = fields[6:]
        mounts.append(
            Mount(
                target=Path(_unescape(fields[4])),
                fstype=tail.split()[0] if tail else "",
                shared=any(f.startswith("shared:") for f in optional),
            )
        )
    return mounts


def mounts() -> list[Mount]:
    """This process's mounts."""
    return parse_mountinfo(MOUNTINFO.read_text())


def containing_mount(path: Path, table: list[Mount]) -> Mount | None:
    """The mount ``path`` lives on (the last one mounted at the longest prefix), or None."""
    best: Mount | None = None
    for mount in table:
        below = path == mount.target or mount.target in path.parents
        if below and (best is None or len(mount.target.parts) >= len(best.target.parts)):
            best = mount
    return best


def is_mount_point(path: Path, table: list[Mount] | None = None) -> bool:
    """True if something is mounted at ``path``."""
    return any(m.target == path for m in (table if table is not None else mounts()))


def ensure_shared(path: Path, runner: CommandRunner) -> bool:
    """Make mounts made below ``path`` reach students' podman namespaces; True if something was changed."""
    path.mkdir(parents=True, exist_ok=True)
    table = mounts()
    here = containing_mount(path, table)
    if here is not None and here.shared:
        return False
    if not is_mount_point(path, table):
        runner.run(["mount", "--bind", str(path), str(path)])
    runner.run(["mount", "--make-rshared", str(path)])
    return True


def mount_tmpfs(path: Path, runner: CommandRunner, *, size: int, inodes: int, mode: int = 0o711) -> None:
    """Mount a root-owned tmpfs of ``size`` bytes and ``inodes`` files at ``path`` (no devices, setuid, exec)."""
    options = f"size={size},nr_inodes={inodes},mode={mode:o},uid=0,gid=0,nosuid,nodev,noexec"
    runner.run(["mount", "-t", "tmpfs", "-o", options, "nbhosting", str(path)])


def unmount(path: Path, runner: CommandRunner) -> None:
    """Unmount ``path`` (lazily: whatever still holds it lets go later)."""
    runner.run(["umount", "--lazy", str(path)])
