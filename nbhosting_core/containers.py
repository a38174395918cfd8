"""Students' notebook containers: one per (course, student), found, started, reused or replaced.

Decisions are pure (:func:`plan`, :func:`container_spec`); :class:`Containers` acts on them through a
:class:`ContainerRuntime` (the real one is :class:`~nbhosting_core.system.podman.PodmanRuntime`).
Podman labels carry everything needed to find a container again after a crash or a restart.
"""

from __future__ import annotations

import enum
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from .errors import StartFailed, StartTimeout
from .models import Account, ContainerRecord, ContainerStatus
from .naming import container_name, is_key
from .settings import Settings
from .system.locks import file_lock
from .system.unixhttp import get_status
from .tokens import jupyter_token, new_key

WORKDIR = "/home/student"
SOCKET_MOUNT = "/nbhosting/run"
SOCKET_NAME = "jupyter.sock"
ENTRYPOINT = ["tini", "-g", "--", "/usr/local/bin/nbhosting-jupyter"]


class ContainerRuntime(Protocol):
    """What nbhosting needs of a container engine, per student."""

    def get(self, account: Account, name: str) -> ContainerRecord | None: ...
    def list(self, account: Account) -> list[ContainerRecord]: ...
    def create(self, account: Account, spec: dict[str, Any]) -> None: ...
    def start(self, account: Account, name: str) -> None: ...
    def stop(self, account: Account, name: str, timeout: int = 5) -> None: ...
    def remove(self, account: Account, name: str) -> None: ...
    def logs(self, account: Account, name: str, tail: int = 20) -> str: ...


class Action(enum.Enum):
    """What to do with a (course, student) container."""

    REUSE = "reuse"
    START = "start"
    CREATE = "create"
    REPLACE = "replace"


def plan(record: ContainerRecord | None, rootfs: str) -> Action:
    """Decide what to do with the existing container ``record`` (pure).

    A running container is always reused, even on an older image: never cut a student's session.
    A stopped one is started unless its image changed or its labels are unusable; anything else is
    replaced.
    """
    if record is None:
        return Action.CREATE
    if record.status is ContainerStatus.RUNNING and is_key(record.key):
        return Action.REUSE
    if record.status is ContainerStatus.STOPPED and is_key(record.key) and record.rootfs == rootfs:
        return Action.START
    return Action.REPLACE


def container_spec(settings: Settings, account: Account, course: str, key: str, token: str,
                   workspace: Path, socket_dir: Path, rootfs: Path) -> dict[str, Any]:
    """The podman SpecGenerator of a student's notebook container (pure)."""
    base_url = f"/{settings.url_prefix}/{key}/"
    return {
        "name": container_name(account.user, course),
        "rootfs": str(rootfs),
        "read_only_filesystem": True,
        "userns": {"nsmode": "keep-id"},
        "netns": {"nsmode": "slirp4netns" if settings.egress else "none"},
        "mounts": [
            {"destination": WORKDIR, "source": str(workspace), "type": "bind", "options": ["rbind", "rw"]},
            {"destination": SOCKET_MOUNT, "source": str(socket_dir), "type": "bind",
             "options": ["rbind", "rw"]},
            # the rootfs is read-only: HOME=/tmp (Jupyter's runtime files) lives in memory
            {"destination": "/tmp", "source": "tmpfs", "type": "tmpfs",
             "options": ["rw", "nosuid", "nodev", "size=256m", "mode=1777"]},
            {"destination": "/var/tmp", "source": "tmpfs", "type": "tmpfs",
             "options": ["rw", "nosuid", "nodev", "size=64m", "mode=1777"]},
            {"destination": "/run", "source": "tmpfs", "type": "tmpfs",
             "options": ["rw", "nosuid", "nodev", "size=16m", "mode=755"]},
        ],
        "env": {"HOME": "/tmp", "USER": account.user, "JUPYTER_TOKEN": token,
                "PATH": "/usr/local/bin:/usr/bin:/bin"},
        "labels": {
            "nbhosting.course": course, "nbhosting.student": account.student_id,
            "nbhosting.user": account.user, "nbhosting.key": key, "nbhosting.rootfs": str(rootfs),
        },
        "work_dir": WORKDIR,
        "hostname": course[:63],
        "stop_timeout": 5,
        "command": [
            *ENTRYPOINT,
            f"--ServerApp.sock={SOCKET_MOUNT}/{SOCKET_NAME}",
            "--ServerApp.sock_mode=0600",
            f"--ServerApp.base_url={base_url}",
            "--ServerApp.allow_remote_access=True",
            f"--ServerApp.root_dir={WORKDIR}",
        ],
    }


class Containers:
    """Ensures each (course, student) has exactly one running notebook container."""

    def __init__(self, settings: Settings, runtime: ContainerRuntime, secret: bytes) -> None:
        self._settings = settings
        self._runtime = runtime
        self._secret = secret
        self._keys: dict[str, str] = {}  # container name -> key: the fast path of a warm open

    @property
    def runtime(self) -> ContainerRuntime:
        """The engine this manager acts through."""
        return self._runtime

    def known_key(self, name: str) -> str | None:
        """The key last seen answering for container ``name``, from any server process (a hint:
        callers check it with :meth:`is_ready`, so a stale one only costs a probe)."""
        key = self._keys.get(name)
        if key is None:
            try:
                key = (self._settings.run_dir / "keys" / name).read_text()
            except OSError:
                return None
            self._keys[name] = key
        return key if is_key(key) else None

    def remember_key(self, name: str, key: str) -> None:
        """Note that container ``name`` answers on ``key`` (RUN_DIR/keys, root only, gone at reboot)."""
        if self._keys.get(name) == key:
            return
        self._keys[name] = key
        folder = self._settings.run_dir / "keys"
        folder.mkdir(mode=0o700, exist_ok=True)
        tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(key)
        tmp.replace(folder / name)

    def socket_dir(self, key: str) -> Path:
        """The folder holding the Jupyter socket of the container ``key``."""
        return self._settings.jupyter_sockets_dir / key

    def socket_path(self, key: str) -> Path:
        """The Jupyter socket of the container ``key`` (Caddy's upstream for it)."""
        return self.socket_dir(key) / SOCKET_NAME

    def ensure_running(self, account: Account, course: str, workspace: Path) -> tuple[ContainerRecord, bool]:
        """The running container of (course, student), created or started if needed.

        Safe to call concurrently from threads and processes: a lock per container name makes sure
        exactly one container is created. Returns the record and whether a container was created.

        Raises:
            RuntimeUnavailable: the engine cannot be used.
            StartFailed: no image is configured.
        """
        rootfs = self._settings.image_rootfs
        if rootfs is None:
            raise StartFailed("Notebooks are not available: no notebook image is configured.",
                              log_detail="settings.image_rootfs is not set")
        name = container_name(account.user, course)
        with file_lock(self._settings.locks_dir / f"container-{name}.lock"):
            record = self._runtime.get(account, name)
            action = plan(record, str(rootfs))
            if action is Action.REUSE:
                assert record is not None
                return record, False
            if action is Action.START:
                assert record is not None
                self._prepare_socket_dir(account, record.key)
                try:
                    self._runtime.start(account, name)
                except Exception:  # noqa: BLE001 - a stopped container that will not start is replaced
                    action = Action.REPLACE
                else:
                    return self._runtime.get(account, name) or record, False
            if action is Action.REPLACE and record is not None:
                self.remove(account, record)
            key = new_key()
            socket_dir = self._prepare_socket_dir(account, key)
            spec = container_spec(self._settings, account, course, key, jupyter_token(self._secret, key),
                                  workspace, socket_dir, rootfs)
            self._runtime.create(account, spec)
            self._runtime.start(account, name)
            created = self._runtime.get(account, name)
            if created is None:
                raise StartFailed("Your notebook server could not be created.",
                                  log_detail=f"{name} vanished right after its creation")
            return created, True

    def remove(self, account: Account, record: ContainerRecord) -> None:
        """Remove a container and its socket folder (the student's files are untouched)."""
        self._runtime.remove(account, record.name)
        if is_key(record.key):
            shutil.rmtree(self.socket_dir(record.key), ignore_errors=True)

    def _prepare_socket_dir(self, account: Account, key: str) -> Path:
        parent = self._settings.jupyter_sockets_dir
        parent.mkdir(parents=True, exist_ok=True)
        os.chmod(parent, 0o711)  # Caddy (root) traverses; students cannot list the keys
        path = parent / key
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, account.uid, account.gid, follow_symlinks=False)
        (path / SOCKET_NAME).unlink(missing_ok=True)
        return path

    def is_ready(self, key: str) -> bool:
        """True if the Jupyter server of ``key`` answers its status API (with its token)."""
        status = get_status(
            self.socket_path(key), f"/{self._settings.url_prefix}/{key}/api/status",
            {"Authorization": f"token {jupyter_token(self._secret, key)}"}, timeout=2.0,
        )
        return status == 200

    def wait_ready(self, account: Account, record: ContainerRecord, timeout: float) -> None:
        """Poll (on a short fixed interval) until the server of ``record`` answers.

        Raises:
            StartFailed: the container stopped meanwhile.
            StartTimeout: it did not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        interval = self._settings.ready_poll_interval
        checks = 0
        while True:
            if self.is_ready(record.key):
                return
            checks += 1
            if checks % 20 == 0:  # every ~second, make sure it did not die
                current = self._runtime.get(account, record.name)
                if current is None or current.status is not ContainerStatus.RUNNING:
                    output = self._runtime.logs(account, record.name) if current else ""
                    state = current.status.value if current else "gone"
                    raise StartFailed("Your notebook server stopped while starting; please retry.",
                                      log_detail=f"{record.name} is {state}; its last output: {output[-1500:]}")
            if time.monotonic() >= deadline:
                raise StartTimeout(
                    f"Your notebook server did not start within {timeout:.0f} seconds; please retry.",
                    log_detail=record.name)
            time.sleep(interval)
