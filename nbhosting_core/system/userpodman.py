"""One student's rootless Podman, reached through podman-py on an API socket that root owns.

Root binds the socket itself, in a root-only folder (``RUN_DIR/podman/<user>.sock``), and hands the listening
descriptor to ``podman system service`` started as the student (systemd-style socket activation): root never
dials a path the student could change, and a client can connect at once (the kernel queues it until podman
accepts). The service exits after ``podman_service_idle`` idle seconds; the containers it started keep
running (conmon holds them); the next call starts it again. Its storage is ``DATA_ROOT/podman/<user>/``, not
the student's home.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import podman
import podman.errors
import requests.exceptions
from podman.domain.containers import Container

from ..errors import RuntimeUnavailable
from ..models import Account
from ..serveradmin import MAX_LOG_BYTES, log_tail
from ..settings import Settings
from .locks import file_lock
from .subids import SubordinateIds
from .tree import ensure_dir

log = logging.getLogger(__name__)
T = TypeVar("T")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLIENT_TIMEOUT = 30
LISTEN_FD = 3  # sd_listen_fds(3): passed sockets start at 3
#: seconds a container's log is read for at most
LOGS_DEADLINE = 10.0


def _reap_when_done(pid: int) -> None:
    """Collect the service's exit status when it ends (no zombie; a thread blocked in waitpid costs nothing)."""

    def wait() -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    threading.Thread(target=wait, name=f"reap-{pid}", daemon=True).start()


def _connectable(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


class UserPodman:
    """One student's podman: runtime folder, storage, API service and client."""

    def __init__(self, settings: Settings, account: Account) -> None:
        self.settings = settings
        self.account = account
        self.runtime_dir = settings.users_run_dir / str(account.uid)
        self.storage_dir = settings.podman_dir / account.user
        self.socket_path = settings.run_dir / "podman" / f"{account.user}.sock"
        self.log_path = settings.run_dir / "logs" / f"podman-{account.user}.log"

    def environment(self) -> dict[str, str]:
        """The environment every podman of this student runs with."""
        a = self.account
        return {
            "PATH": PATH,
            "HOME": str(a.home),
            "USER": a.user,
            "LOGNAME": a.user,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "XDG_DATA_HOME": str(self.storage_dir / "data"),
            "XDG_CONFIG_HOME": str(self.storage_dir / "config"),
            "CONTAINERS_CONF": str(self.settings.containers_conf),
        }

    def ensure_service(self) -> Path:
        """Make sure the student's API service listens; return its socket path.

        Raises:
            RuntimeUnavailable: the service could not be started.
        """
        if _connectable(self.socket_path):
            return self.socket_path
        with file_lock(self.settings.locks_dir / f"service-{self.account.user}.lock"):
            if not _connectable(self.socket_path):
                self._spawn()
        return self.socket_path

    def _spawn(self) -> None:
        a = self.account
        ensure_dir(self.settings.users_run_dir, 0, 0, 0o711)
        ensure_dir(self.runtime_dir, a.uid, a.gid, 0o700)
        ensure_dir(self.settings.podman_dir, 0, 0, 0o711)
        ensure_dir(self.storage_dir, a.uid, a.gid, 0o700)
        for folder in (self.socket_path.parent, self.log_path.parent):
            ensure_dir(folder, 0, 0, 0o700)
        SubordinateIds(self.settings).grant(a.user, a.uid)  # before podman makes the student's user namespace
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        log_fd = -1
        try:
            listener.bind(str(self.socket_path))
            listener.listen(64)
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            pid = self._exec_service(listener.fileno(), log_fd)
        except OSError as exc:
            raise RuntimeUnavailable(
                "The container engine is not available.", log_detail=f"starting the podman service of {a.user}: {exc}"
            ) from exc
        finally:
            listener.close()  # the service holds it now: when the service exits, connects are refused
            if log_fd >= 0:
                os.close(log_fd)
        _reap_when_done(pid)
        log.info(
            "podman service started for user=%s pid=%d (exits after %ds idle)",
            a.user,
            pid,
            self.settings.podman_service_idle,
        )

    def _exec_service(self, listen_fd: int, log_fd: int) -> int:
        a = self.account
        env = {**self.environment(), "LISTEN_FDS": "1"}
        script = f"LISTEN_PID=$$ exec podman system service --time={self.settings.podman_service_idle}"
        # unshare with no namespace only drops to the student: groups cleared, ids as numbers, nothing looked up
        # (setpriv looks --reuid and --regid up as names first: 30 ms at 100,000 accounts)
        argv = ["unshare", f"--setgid={a.gid}", f"--setuid={a.uid}", "--", "sh", "-c", script]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
            (os.POSIX_SPAWN_DUP2, listen_fd, LISTEN_FD),
        ]
        return os.posix_spawnp("unshare", argv, env, file_actions=actions, setsid=True)

    def call(self, action: Callable[[podman.PodmanClient], T]) -> T:
        """Run ``action`` with a client, starting the service again once if it exited meanwhile.

        Raises:
            RuntimeUnavailable: the engine cannot be reached, or refused the call.
        """
        for attempt in (1, 2):
            try:
                with podman.PodmanClient(base_url=f"unix://{self.ensure_service()}", timeout=CLIENT_TIMEOUT) as c:
                    return action(c)
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                if attempt == 2:
                    raise RuntimeUnavailable(
                        "The container engine cannot be reached.", log_detail=f"{self.account.user}: {exc}"
                    ) from exc
                log.info("podman service of user=%s went away (%s); starting it again", self.account.user, exc)
            except podman.errors.APIError as exc:
                raise RuntimeUnavailable(
                    "The container engine refused a request.", log_detail=f"{self.account.user}: {exc}"
                ) from exc
        raise AssertionError("unreachable")

    # --------------------------------------------------------------------------------- container verbs

    def inspect(self, name: str) -> dict[str, Any] | None:
        """``podman inspect`` of container ``name``, or None if there is none."""

        def inspect(client: podman.PodmanClient) -> dict[str, Any] | None:
            try:
                container: Container = client.containers.get(name)
            except podman.errors.NotFound:
                return None
            attrs: dict[str, Any] = container.attrs
            return attrs

        return self.call(inspect)

    def list(self, label: str) -> list[dict[str, Any]]:
        """Every container of this student carrying ``label`` (as ``podman ps --all`` lists them)."""

        def listing(client: podman.PodmanClient) -> list[dict[str, Any]]:
            # one string, not a list: podman-py turns a list value into the text of the list ("['...']")
            return [c.attrs for c in client.containers.list(all=True, filters={"label": label})]

        return self.call(listing)

    def create(self, spec: dict[str, Any]) -> None:
        """Create a container from a podman SpecGenerator ``spec`` (see :func:`containers.container_spec`)."""

        def create(client: podman.PodmanClient) -> None:
            # the raw SpecGenerator: containers.create(**kwargs) would hide the spec behind its own mapping
            response = client.api.post(
                "/containers/create", data=json.dumps(spec), headers={"content-type": "application/json"}
            )
            response.raise_for_status()

        self.call(create)

    def start(self, name: str) -> None:
        """Start container ``name``."""
        self.call(lambda client: client.containers.get(name).start())

    def stop(self, name: str, timeout: int = 5) -> None:
        """Stop container ``name`` (SIGTERM, then SIGKILL after ``timeout`` s); absent or stopped is fine."""

        def stop(client: podman.PodmanClient) -> None:
            with contextlib.suppress(podman.errors.NotFound):
                # ignore: a stopped container answers 304 with no body, which podman-py would fail to read
                client.containers.get(name).stop(timeout=timeout, ignore=True)

        self.call(stop)

    def remove(self, name: str) -> None:
        """Remove container ``name``, stopping it if it runs; absent is fine."""

        def remove(client: podman.PodmanClient) -> None:
            with contextlib.suppress(podman.errors.NotFound):
                client.containers.get(name).remove(force=True, v=True)

        self.call(remove)

    def logs(self, name: str, tail: int = 50, max_bytes: int = MAX_LOG_BYTES) -> str:
        """The last ``tail`` lines container ``name`` printed, at most ``max_bytes`` of them ("" if there is no such
        container). Streamed, never followed: at most ~2 x ``max_bytes`` held, and read within ``LOGS_DEADLINE``
        seconds (what came by then)."""

        def logs(client: podman.PodmanClient) -> str:
            try:
                container = client.containers.get(name)
            except podman.errors.NotFound:
                return ""
            frames = container.logs(stdout=True, stderr=True, tail=tail, stream=True, follow=False)
            return log_tail(_until(frames, time.monotonic() + LOGS_DEADLINE), max_bytes)

        return self.call(logs)


def _until(chunks: Iterator[bytes] | bytes, deadline: float) -> Iterator[bytes]:
    """``chunks`` until ``deadline`` (a monotonic time) passes."""
    if isinstance(chunks, bytes):
        yield chunks
        return
    for chunk in chunks:
        yield chunk
        if time.monotonic() > deadline:
            log.warning("a container's log was cut: not read within %.0fs", LOGS_DEADLINE)
            return
