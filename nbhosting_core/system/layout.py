"""nbhosting's folders on the host, with the owners and modes students' rootless podman needs.

Idempotent: :func:`ensure_layout` runs at every start. As root it also makes the socket folders' parent a
shared mount (see :mod:`.mounts`), before any student's podman starts, and installs (or removes) the kernels'
egress filter (see :mod:`.nftables`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import quota
from .mounts import ensure_shared
from .nftables import ensure_egress_filter
from .runner import CommandRunner, SubprocessRunner
from .tree import ensure_dir

if TYPE_CHECKING:
    from ..settings import Settings


def ensure_layout(settings: Settings, runner: CommandRunner | None = None) -> None:
    """Create nbhosting's folders (root-owned, with the modes below), and the shared mount; idempotent.

    ==========================  =====  ==================================================================
    DATA_ROOT, courses/          0755  read by everyone (students' podman reads the image from DATA_ROOT)
    students/, podman/           0711  traversed, never listed: each student's folder is theirs (0700)
    servers/, RUN_DIR/locks ...  0700  root's records
    RUN_DIR/jupyter              0711  socket folders (a shared mount: each server's is a tmpfs in it)
    RUN_DIR/users                0711  each student's XDG_RUNTIME_DIR (0700, theirs)
    quota/                       0700  students' workspace images (quota mode "loop": students/ is shared)
    RUN_DIR/throttle             0700  the door's counters (rates, the cap)
    ==========================  =====  ==================================================================

    Raises:
        EgressUnfiltered: as root, kernels' egress is on and this host cannot filter it (no nft).
    """
    s = settings
    uid, gid = os.geteuid(), os.getegid()  # root's in production; a plain user's in tests with fakes
    for path, mode in (
        (s.data_root, 0o755),
        (s.courses_dir, 0o755),
        (s.students_dir, 0o711),
        (s.podman_dir, 0o711),
        (s.servers_dir, 0o700),
        (s.run_dir, 0o755),
        (s.users_run_dir, 0o711),
        (s.jupyter_sockets_dir, 0o711),
        (s.locks_dir, 0o700),
        (s.activity_dir, 0o700),
        (s.tickets_dir, 0o700),
        (s.running_dir, 0o700),
        (s.run_dir / "podman", 0o700),
        (s.run_dir / "logs", 0o700),
        (s.throttle_dir, 0o700),
    ):
        ensure_dir(path, uid, gid, mode)
    if uid == 0:
        runner = runner or SubprocessRunner()
        ensure_shared(s.jupyter_sockets_dir, runner)
        quota.prepare_host(s, runner)
        ensure_egress_filter(s, runner)
