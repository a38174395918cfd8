"""Each student's own rootless Podman, reached through podman-py on a per-user API socket.

The API service (``podman system service --time=N``) is started on demand as the student's user and
exits by itself after N idle seconds; the containers it started keep running (conmon holds them).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import podman
import podman.errors
import requests.exceptions

from ..errors import RuntimeUnavailable
from ..models import Account, ContainerRecord, ContainerStatus
from ..settings import Settings
from .locks import file_lock

T = TypeVar("T")
SERVICE_START_TIMEOUT = 15.0
LABEL = "nbhosting"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_children: list[subprocess.Popen[bytes]] = []
_children_lock = threading.Lock()


def _reap() -> None:
    with _children_lock:
        _children[:] = [p for p in _children if p.poll() is None]


def _connectable(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


class UserPodman:
    """One student's podman: runtime dir, API service and client."""

    def __init__(self, settings: Settings, account: Account) -> None:
        self.settings = settings
        self.account = account
        self.runtime_dir = settings.users_run_dir / str(account.uid)
        self.socket_path = self.runtime_dir / "podman" / "podman.sock"

    def environment(self) -> dict[str, str]:
        """The environment every podman of this student runs with."""
        a = self.account
        return {
            "PATH": PATH, "HOME": str(a.home), "USER": a.user, "LOGNAME": a.user,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "CONTAINERS_CONF": str(self.settings.containers_conf),
        }

    def ensure_service(self) -> Path:
        """Make sure the student's API service listens; return its socket path.

        Raises:
            RuntimeUnavailable: the service did not come up.
        """
        if _connectable(self.socket_path):
            return self.socket_path
        with file_lock(self.settings.locks_dir / f"service-{self.account.user}.lock"):
            if _connectable(self.socket_path):
                return self.socket_path
            self._spawn()
        return self.socket_path

    def _spawn(self) -> None:
        a = self.account
        self.runtime_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        for path in (self.runtime_dir, self.socket_path.parent):
            path.mkdir(mode=0o700, exist_ok=True)
            os.chown(path, a.uid, a.gid, follow_symlinks=False)
            os.chmod(path, 0o700)
        self.socket_path.unlink(missing_ok=True)
        log = os.open(self.runtime_dir / "service.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        argv = ["podman", "system", "service", f"--time={self.settings.podman_service_idle}",
                f"unix://{self.socket_path}"]
        _reap()
        try:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv, env=self.environment(), cwd="/", user=a.uid, group=a.gid, extra_groups=[],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        except OSError as exc:
            raise RuntimeUnavailable("The container engine is not available.",
                                     log_detail=f"spawning podman service for {a.user}: {exc}") from exc
        finally:
            os.close(log)
        with _children_lock:
            _children.append(proc)
        deadline = time.monotonic() + SERVICE_START_TIMEOUT
        while time.monotonic() < deadline:
            if _connectable(self.socket_path):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeUnavailable(
            "The container engine did not start.",
            log_detail=f"podman service of {a.user} (exit {proc.poll()}); see {self.runtime_dir}/service.log",
        )

    def client(self) -> podman.PodmanClient:
        """A podman-py client bound to this student's service (started if needed)."""
        return podman.PodmanClient(base_url=f"unix://{self.ensure_service()}", timeout=30)

    def call(self, action: Callable[[podman.PodmanClient], T]) -> T:
        """Run ``action`` with a client, restarting the service once if it exited meanwhile.

        Raises:
            RuntimeUnavailable: the engine cannot be reached, or refused the call.
        """
        for attempt in (1, 2):
            try:
                with self.client() as client:
                    return action(client)
            except requests.exceptions.ConnectionError as exc:
                if attempt == 2:
                    raise RuntimeUnavailable("The container engine cannot be reached.",
                                             log_detail=f"{self.account.user}: {exc}") from exc
            except podman.errors.APIError as exc:
                raise RuntimeUnavailable("The container engine refused a request.",
                                         log_detail=f"{self.account.user}: {exc}") from exc
        raise AssertionError("unreachable")


class PodmanRuntime:
    """The real :class:`~nbhosting_core.containers.ContainerRuntime`: podman-py on per-user sockets."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _user(self, account: Account) -> UserPodman:
        return UserPodman(self._settings, account)

    def get(self, account: Account, name: str) -> ContainerRecord | None:
        """The container ``name`` of this student, or None."""
        def inspect(client: podman.PodmanClient) -> dict[str, Any] | None:
            response = client.api.get(f"/containers/{name}/json")
            if response.status_code == 404:
                return None
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data
        data = self._user(account).call(inspect)
        return None if data is None else _record(data)

    def list(self, account: Account) -> list[ContainerRecord]:
        """All nbhosting containers of this student."""
        def listing(client: podman.PodmanClient) -> list[dict[str, Any]]:
            response = client.api.get("/containers/json", params={
                "all": True, "filters": json.dumps({"label": [f"{LABEL}.key"]})})
            response.raise_for_status()
            result: list[dict[str, Any]] = response.json()
            return result
        return [_record_from_list(item) for item in self._user(account).call(listing)]

    def create(self, account: Account, spec: dict[str, Any]) -> None:
        """Create a container from a podman SpecGenerator ``spec``."""
        def create(client: podman.PodmanClient) -> None:
            response = client.api.post("/containers/create", data=json.dumps(spec),
                                       headers={"content-type": "application/json"})
            if response.status_code >= 400:
                raise podman.errors.APIError(response.text[:500])
        self._user(account).call(create)

    def start(self, account: Account, name: str) -> None:
        """Start the container ``name``."""
        def start(client: podman.PodmanClient) -> None:
            response = client.api.post(f"/containers/{name}/start")
            if response.status_code >= 400 and response.status_code != 304:
                raise podman.errors.APIError(response.text[:500])
        self._user(account).call(start)

    def stop(self, account: Account, name: str, timeout: int = 5) -> None:
        """Stop the container ``name`` (SIGTERM, then SIGKILL after ``timeout`` s)."""
        def stop(client: podman.PodmanClient) -> None:
            response = client.api.post(f"/containers/{name}/stop", params={"timeout": timeout})
            if response.status_code >= 400 and response.status_code not in (304, 404):
                raise podman.errors.APIError(response.text[:500])
        self._user(account).call(stop)

    def remove(self, account: Account, name: str) -> None:
        """Remove the container ``name`` (forcibly, stopping it if it runs); absent is fine."""
        def remove(client: podman.PodmanClient) -> None:
            response = client.api.delete(f"/containers/{name}", params={"force": True, "v": True})
            if response.status_code >= 400 and response.status_code != 404:
                raise podman.errors.APIError(response.text[:500])
        self._user(account).call(remove)

    def logs(self, account: Account, name: str, tail: int = 20) -> str:
        """The last ``tail`` lines the container ``name`` printed (for admins' error reports)."""
        def logs(client: podman.PodmanClient) -> str:
            response = client.api.get(f"/containers/{name}/logs",
                                      params={"stdout": True, "stderr": True, "tail": tail})
            if response.status_code >= 400:
                return ""
            return _demux(response.content)
        return self._user(account).call(logs)

    @contextmanager
    def session(self, account: Account) -> Iterator[UserPodman]:
        """The student's podman, for callers that need more than these verbs (tests, admin)."""
        yield self._user(account)


def _demux(raw: bytes) -> str:
    """Text of a (possibly multiplexed: 8-byte frame headers) docker-style log stream."""
    out, pos = [], 0
    while pos + 8 <= len(raw) and raw[pos] in (0, 1, 2) and raw[pos + 1:pos + 4] == b"\0\0\0":
        size = int.from_bytes(raw[pos + 4:pos + 8], "big")
        out.append(raw[pos + 8:pos + 8 + size])
        pos += 8 + size
    if pos < len(raw):
        out.append(raw[pos:])
    return b"".join(out).decode("utf-8", "replace")


def _status(state: str) -> ContainerStatus:
    if state == "running":
        return ContainerStatus.RUNNING
    if state in ("created", "configured", "exited", "stopped"):
        return ContainerStatus.STOPPED
    return ContainerStatus.BROKEN


def _labels_record(name: str, labels: dict[str, str], state: str, started: float | None) -> ContainerRecord:
    return ContainerRecord(
        name=name, course=labels.get(f"{LABEL}.course", ""), student_id=labels.get(f"{LABEL}.student", ""),
        user=labels.get(f"{LABEL}.user", ""), key=labels.get(f"{LABEL}.key", ""),
        rootfs=labels.get(f"{LABEL}.rootfs", ""), status=_status(state), started_at=started,
    )


def _record(data: dict[str, Any]) -> ContainerRecord:
    state = data.get("State", {})
    started = state.get("StartedAt")
    started_ts = None
    if state.get("Status") == "running" and isinstance(started, str):
        started_ts = _parse_time(started)
    return _labels_record(data["Name"].lstrip("/"), data.get("Config", {}).get("Labels") or {},
                          state.get("Status", ""), started_ts)


def _record_from_list(item: dict[str, Any]) -> ContainerRecord:
    started = item.get("StartedAt")
    return _labels_record(item["Names"][0], item.get("Labels") or {}, item.get("State", ""),
                          float(started) if started and item.get("State") == "running" else None)


def _parse_time(text: str) -> float | None:
    from datetime import datetime

    head, _, rest = text.partition(".")
    digits = "".join(c for c in rest if c.isdigit())[:6]
    tail = rest.lstrip("0123456789")
    try:
        return datetime.fromisoformat(f"{head}.{digits or '0'}{tail}").timestamp()
    except ValueError:
        return None
