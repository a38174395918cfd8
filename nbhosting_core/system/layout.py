"""nbhosting's folders on the host, with the owners and modes students' rootless podman needs.

Idempotent: :func:`ensure_layout` runs at every start. As root it also makes the socket folders' parent a
shared mount (see :mod:`.mounts`), before any student's podman starts, and installs (or removes) the kernels'
egress filter (see :mod:`.nftables`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from . import quota
from .mounts import ensure_shared
from .nftables import ensure_egress_filter
from .runner import CommandRunner, SubprocessRunner
from .secretfile import load_or_create_secret
from .services import service_user
from .tree import chown_tree, ensure_dir

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

    As root, with the service users made (see :mod:`.services`), the app's state becomes the app's and what it
    reads is shared with its group only (see :func:`share_with_app`); Caddy's state (DATA_ROOT/caddy) Caddy's.

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
        (s.trust_dir, 0o700),
        (s.run_dir, 0o755),
        (s.users_run_dir, 0o711),
        (s.jupyter_sockets_dir, 0o711),
        (s.locks_dir, 0o700),
        (s.activity_dir, 0o700),
        (s.tickets_dir, 0o700),
        (s.metrics_dir, 0o700),
        (s.running_dir, 0o700),
        (s.run_dir / "podman", 0o700),
        (s.run_dir / "logs", 0o700),
        (s.throttle_dir, 0o700),
        (s.opened_dir, 0o700),
        (s.events_dir, 0o700),
        (s.db_dir, 0o700),
    ):
        ensure_dir(path, uid, gid, mode)
    if uid == 0:
        runner = runner or SubprocessRunner()
        ensure_shared(s.jupyter_sockets_dir, runner)
        quota.prepare_host(s, runner)
        ensure_egress_filter(s, runner)
        share_with_app(s)


def share_with_app(settings: Settings) -> None:
    """As root: give the web app (``app_user``) its state, and read access to what it needs; idempotent.

    ==========================  ===========  ========================================================
    DATA_ROOT/secret            app, 0600    it signs cookies, tickets, tokens (root reads it too)
    DATA_ROOT/lti/              app, 0700    the LTI tool's key, nonces seen
    RUN_DIR/activity, tickets   app, 0700    proxied activity (the culler reads it), spent tickets
    RUN_DIR/metrics             app, 0700    the app workers' request counts (prometheus_client's files)
    DATA_ROOT/opened            app, 0700    which notebooks each student opened (course pages)
    DATA_ROOT/db                app, 0700    the app's database (staff, tokens, sessions, events read)
    DATA_ROOT/events            root:app     02750 (journal 0640): the host's events, the app reads them
    servers/, RUN_DIR/servers   root:app     02750 (records 0640): the gate finds servers by key
    RUN_DIR/helper              root:app     0750: the helper's socket (0660)
    platforms file              root:app     0640: the platforms' secrets, for the app only
    DATA_ROOT/caddy             caddy, 0700  Caddy's certificates and CA
    ==========================  ===========  ========================================================

    Without the service users (tests with fakes, scripts), nothing changes: root keeps it all.
    """
    s = settings
    app = service_user(s.app_user)
    if os.geteuid() != 0 or app is None:
        return
    for path in (s.lti_dir, s.activity_dir, s.tickets_dir, s.metrics_dir, s.opened_dir, s.db_dir):
        ensure_dir(path, 0, 0, 0o700)
        chown_tree(path, app.uid, app.gid)  # state an older, all-root installation left
    for path in (s.servers_dir, s.running_dir):
        ensure_dir(path, 0, app.gid, 0o2750)
        _share_files(path, app.gid)
    ensure_dir(s.events_dir, 0, app.gid, 0o2750)
    _share_files(s.events_dir, app.gid, suffix=".jsonl")
    ensure_dir(s.helper_socket.parent, 0, app.gid, 0o750)
    load_or_create_secret(s.secret_file, owners=frozenset({0, app.uid}))
    _share_file(s.secret_file, app.uid, app.gid, 0o600)
    if s.effective_platforms_file.exists():
        _share_file(s.effective_platforms_file, 0, app.gid, 0o640)
    caddy = service_user(s.caddy_user)
    if caddy is not None:
        ensure_dir(s.data_root / "caddy", caddy.uid, caddy.gid, 0o700)
        chown_tree(s.data_root / "caddy", caddy.uid, caddy.gid)


def give_to_app(settings: Settings, folder: Path) -> None:
    """As root, with the app's user made: ``folder`` and all in it become the app's (a key root just made)."""
    app = service_user(settings.app_user)
    if os.geteuid() == 0 and app is not None and folder.is_dir():
        chown_tree(folder, app.uid, app.gid)


def _share_files(folder: Path, gid: int, *, suffix: str = ".json") -> None:
    """Every record (``*suffix``) in ``folder`` readable by group ``gid`` (0640, root's)."""
    for entry in os.scandir(folder):
        if entry.name.endswith(suffix):
            _share_file(folder / entry.name, 0, gid, 0o640)


def _share_file(path: Path, uid: int, gid: int, mode: int) -> None:
    """Give the plain file ``path`` to uid:gid with ``mode``, through a descriptor (a symlink is refused)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a plain file")
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
