"""The processes `nbh serve` runs and watches: each under its own user, started again when it exits.

Mechanism only (what runs is `nbh serve`'s choice, :mod:`nbhosting_server.serve`): util-linux's ``setpriv`` drops
to a service user with no capability but those asked for, and :class:`Child` restarts a process that exits, killing
what is left of its process group first, as systemd does with a unit's cgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from nbhosting_core.system.services import ServiceUser


def as_user(user: ServiceUser, argv: list[str], *, caps: tuple[str, ...] = ()) -> list[str]:
    """``argv`` run as ``user`` (its uid and group, no other group), with no new privileges and no capability
    but ``caps`` (ambient: kept across the exec), through util-linux's ``setpriv``."""
    keep = "".join(f",+{cap}" for cap in caps)
    return [
        "setpriv",
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--no-new-privs",
        f"--inh-caps=-all{keep}",
        *([f"--ambient-caps=-all{keep}"] if caps else []),
        f"--bounding-set=-all{keep}",
        "--",
        *argv,
    ]


def unreadable_by(user: ServiceUser, paths: list[Path]) -> Path | None:
    """What first stops ``user`` on the way to one of ``paths`` (a folder it cannot enter, from the root down, or
    the file it cannot read), or None (mode bits only)."""
    for path in paths:
        for part in [*reversed(path.parents), path]:
            info = part.stat()
            need = stat.S_IRUSR if part == path and part.is_file() else stat.S_IXUSR
            if info.st_uid == user.uid:
                ok = info.st_mode & need
            elif info.st_gid == user.gid:
                ok = info.st_mode & (need >> 3)
            else:
                ok = info.st_mode & (need >> 6)
            if not ok:
                return part
    return None


class Child:
    """One of the processes `nbh serve` watches: started again when it exits, unless it keeps failing at once.

    With ``group``, it leads a process group of its own, and whatever is left of the group when it exits (uvicorn's
    workers, orphaned when their parent was killed) is killed before it starts again: what systemd does with a
    unit's cgroup. The helper has none: students' podman processes are its children, and must outlive it.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], *, group: bool = True) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.group = group
        self.quick_failures = 0
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self.started = time.monotonic()
        return subprocess.Popen(
            self.argv, env=self.env, cwd="/", stdin=subprocess.DEVNULL, start_new_session=self.group
        )

    def _kill_group(self) -> None:
        if self.group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def watch(self) -> bool:
        """Start it again if it exited; False if it exited too often right after its start (give up)."""
        code = self.process.poll()
        if code is None:
            return True
        quick = time.monotonic() - self.started < 10
        self.quick_failures = self.quick_failures + 1 if quick else 0
        if self.quick_failures >= 3:
            print(f"nbh: {self.name} exited with {code} three times right after its start", file=sys.stderr)
            self._kill_group()
            return False
        print(f"nbh: {self.name} (pid {self.process.pid}) exited with {code}; starting it again", file=sys.stderr)
        self._kill_group()
        self.process = self._start()
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def wait(self) -> None:
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._kill_group()
