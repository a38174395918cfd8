"""The notebook image: built locally, exported as a shared read-only rootfs, run rootless by a plain user.

Needs root, podman, runc, uidmap (newuidmap), mmdebstrap (first build only) and the Debian/PyPI mirrors
(first build only). The rootfs is built into the shared cache /var/lib/nbhosting/images.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nbhosting_core.system import images
from nbhosting_core.system.unixhttp import UnixHTTPConnection
from tests.integration.conftest import require_podman_host

pytestmark = pytest.mark.podman

CONTEXT_DIR = images.DEFAULT_CONTEXT_DIR
CONTAINERS_CONF = images.DEFAULT_CONTAINERS_CONF
IMAGES_DIR = Path("/var/lib/nbhosting/images")
#: a narrow subordinate id range (1024 ids), far above useradd's default allocations.
SUBID_START = 2147483648
SUBID_COUNT = 1024
READY_TIMEOUT = 30.0
#: a uid far above the subordinate range's size (and useradd's UID_MAX of 60000)
HIGH_UID = 150000

@pytest.fixture(autouse=True, scope="module")
def _podman_host() -> None:
    require_podman_host()


# ----------------------------------------------------------------------------------------------- helpers


def request(sock: Path, method: str, path: str, token: str | None, body: object | None = None) -> tuple[int, bytes]:
    conn = UnixHTTPConnection(sock)
    headers = {"Host": "localhost"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _subid_ranges(path: Path) -> list[tuple[int, int]]:
    ranges = []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            ranges.append((int(parts[1]), int(parts[1]) + int(parts[2])))
    return ranges


def free_subid_start(count: int) -> int:
    """First start >= SUBID_START whose [start, start+count) overlaps no range of /etc/subuid, /etc/subgid."""
    taken = _subid_ranges(Path("/etc/subuid")) + _subid_ranges(Path("/etc/subgid"))
    start = SUBID_START
    while any(lo < start + count and start < hi for lo, hi in taken):
        start += count
    return start


@dataclass
class RootlessUser:
    name: str
    uid: int
    gid: int
    home: Path
    runtime_dir: Path
    subid_range: tuple[int, int] | None  # (first, last) or None

    def env(self) -> list[str]:
        return [
            "env",
            f"XDG_RUNTIME_DIR={self.runtime_dir}",
            f"HOME={self.home}",
            f"CONTAINERS_CONF={CONTAINERS_CONF}",
        ]

    def run(self, *cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full = ["runuser", "-u", self.name, "--", *self.env(), *cmd]
        proc = subprocess.run(full, cwd=self.home, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{full} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def mkdir(self, name: str) -> Path:
        path = self.home / name
        path.mkdir(mode=0o700)
        os.chown(path, self.uid, self.gid)
        return path


def _kill_user_processes(uid: int) -> None:
    """Kill the throwaway user's leftover processes (podman's pause process, conmon), by pid."""
    for _ in range(20):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _proc_uid(int(p)) == uid]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.1)


def _proc_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        return None


def _remove_user(user: RootlessUser) -> None:
    user.run("podman", "rm", "--all", "--force", "--time", "0", check=False)
    _kill_user_processes(user.uid)
    if user.subid_range is not None:
        first, last = user.subid_range
        subprocess.run(
            ["usermod", "--del-subuids", f"{first}-{last}", "--del-subgids", f"{first}-{last}", user.name],
            capture_output=True,
            check=False,
        )
    subprocess.run(["userdel", "--remove", user.name], capture_output=True, check=False)
    shutil.rmtree(user.runtime_dir, ignore_errors=True)
    shutil.rmtree(user.home, ignore_errors=True)


UserFactory = Callable[..., RootlessUser]


@pytest.fixture
def make_user() -> Iterator[UserFactory]:
    created: list[RootlessUser] = []

    def factory(with_subids: bool, uid: int | None = None) -> RootlessUser:
        name = f"nbhimg{uuid.uuid4().hex[:8]}"
        uid_args = [] if uid is None else ["--uid", str(uid)]
        # -K SUB_*_COUNT=0: no default 65,536-id range; we add a narrow one ourselves (or none).
        no_default_subids = ["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", *no_default_subids, *uid_args, name], check=True
        )
        entry = pwd.getpwnam(name)
        runtime_dir = Path(f"/run/user/{entry.pw_uid}")
        user = RootlessUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), runtime_dir, None)
        created.append(user)
        runtime_dir.mkdir(mode=0o700, parents=True)
        os.chown(runtime_dir, user.uid, user.gid)
        if with_subids:
            start = free_subid_start(SUBID_COUNT)
            user.subid_range = (start, start + SUBID_COUNT - 1)
            ids = f"{start}-{start + SUBID_COUNT - 1}"
            subprocess.run(["usermod", "--add-subuids", ids, "--add-subgids", ids, name], check=True)
        return user

    yield factory
    for user in created:
        _remove_user(user)
    for user in created:
        assert name_absent(user.name, Path("/etc/subuid")) and name_absent(user.name, Path("/etc/subgid"))
        with pytest.raises(KeyError):
            pwd.getpwnam(user.name)


def name_absent(name: str, path: Path) -> bool:
    return not any(line.split(":")[0] == name for line in path.read_text().splitlines())


@dataclass
class Notebook:
    user: RootlessUser
    name: str
    key: str
    token: str
    workdir: Path
    sock: Path


def start_notebook(rootfs: Path, user: RootlessUser, *, workdir: Path, sockdir: Path) -> Notebook:
    key = uuid.uuid4().hex[:10]
    token = uuid.uuid4().hex
    name = f"nbh-test-{key}"
    user.run(
        "podman", "run", "-d", "--name", name, "--rootfs", "--read-only", "--passwd=false",
        "--userns=keep-id", "--network", "none",
        "-v", f"{workdir}:/home/student", "-v", f"{sockdir}:/nbhosting/run",
        "-e", f"JUPYTER_TOKEN={token}", "-e", "HOME=/tmp", "-e", f"USER={user.name}",
        str(rootfs),
        "tini", "-g", "--", "/usr/local/bin/nbhosting-jupyter",
        "--ServerApp.sock=/nbhosting/run/jupyter.sock", "--ServerApp.sock_mode=0600",
        f"--ServerApp.base_url=/nb/{key}/", "--ServerApp.allow_remote_access=True",
        "--ServerApp.root_dir=/home/student", "--ServerApp.allow_origin=https://localhost",
    )  # fmt: skip
    return Notebook(user, name, key, token, workdir, sockdir / "jupyter.sock")


def wait_ready(nb: Notebook, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nb.sock.exists():
            try:
                status, _ = request(nb.sock, "GET", f"/nb/{nb.key}/api/status", nb.token)
                if status == 200:
                    return
            except OSError:
                pass
        time.sleep(0.02)
    logs = nb.user.run("podman", "logs", nb.name, check=False)
    raise AssertionError(f"Jupyter not ready after {timeout} s:\n{logs.stdout}\n{logs.stderr}")


def stop_notebook(nb: Notebook) -> None:
    nb.user.run("podman", "rm", "--force", "--time", "0", nb.name, check=False)


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rootfs() -> Path:
    return _ensure_rootfs()


def _ensure_rootfs() -> Path:
    return images.ensure_rootfs(context_dir=CONTEXT_DIR, images_dir=IMAGES_DIR, containers_conf=CONTAINERS_CONF)


# ----------------------------------------------------------------------------------------------- tests


def test_second_call_is_a_cache_hit(rootfs: Path) -> None:
    started = time.monotonic()
    again = _ensure_rootfs()
    elapsed = time.monotonic() - started
    assert again == rootfs
    assert elapsed < 0.5, f"cache hit took {elapsed:.3f} s"
    assert rootfs.parent.name == f"default-{images.context_hash(CONTEXT_DIR, images.LOCAL_BASE_IMAGE)}"


def test_mount_targets_and_contract(rootfs: Path) -> None:
    for name in ("home/student", "nbhosting/run"):
        assert (rootfs / name).is_dir()
        assert (rootfs / name).stat().st_mode & 0o777 == 0o755
    for name in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):
        assert (rootfs / name).is_file() and not (rootfs / name).is_symlink(), name
    # tmpfs targets must be empty (rootless tmpcopyup cannot chown root-owned files): podman creates
    # /run/.containerenv in the /run tmpfs.
    for name in ("run", "tmp", "var/tmp"):
        assert (rootfs / name).is_dir() and not list((rootfs / name).iterdir()), name
    assert os.readlink(rootfs / "etc/mtab") == "/proc/mounts"
    for name in ("usr/bin/tini", "usr/local/bin/nbhosting-jupyter"):
        assert (rootfs / name).stat().st_mode & 0o555 == 0o555, name
    assert (rootfs / "opt/jupyter/bin/jupyter-server").exists()


def test_everything_world_readable(rootfs: Path) -> None:
    """The rootless user namespace maps the host's root to nobody: files need o+r, directories o+rx."""
    unreadable = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            needed = 0o005 if stat.S_ISDIR(mode) else 0o004
            if not stat.S_ISLNK(mode) and mode & needed != needed:
                unreadable.append(path)
    allowed = {str(rootfs / "etc/shadow"), str(rootfs / "etc/gshadow")}
    assert set(unreadable) <= allowed, unreadable[:20]


def test_startup_optimisations(rootfs: Path) -> None:
    site = next((rootfs / "opt/jupyter/lib").glob("python3*/site-packages"))
    assert not list(site.glob("rfc3987_syntax*")), "rfc3987-syntax costs ~0.6 s at every start"
    # read-only rootfs: every module must come with its .pyc, Python can never write it at run time
    missing = [p for p in (site / "jupyter_server").rglob("*.py") if not _has_pyc(p)]
    assert not missing, missing[:5]

    config = json.loads((rootfs / "opt/jupyter/etc/jupyter/jupyter_server_config.json").read_text())
    assert config["LabApp"]["extension_manager"] == "readonly"
    lsp = json.loads((rootfs / "opt/jupyter/etc/jupyter/jupyter_server_config.d/jupyter_lsp.json").read_text())
    assert lsp["ServerApp"]["jpserver_extensions"]["jupyter_lsp"] is False


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    """Two concurrent callers: one builds (under the lock), the other waits and gets the same rootfs."""
    context = tmp_path / "tiny"
    context.mkdir()
    (context / "Containerfile").write_text(
        f"ARG BASE_IMAGE\nFROM $BASE_IMAGE\nRUN mkdir -p /home/student /nbhosting/run\nLABEL t={uuid.uuid4()}\n"
    )
    images_dir = tmp_path / "images"
    logs: list[str] = []
    results: list[Path] = []

    def build() -> None:
        results.append(
            images.ensure_rootfs(
                context_dir=context, images_dir=images_dir, containers_conf=CONTAINERS_CONF, log=logs.append
            )
        )

    threads = [threading.Thread(target=build) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert len(results) == 2 and results[0] == results[1]
        assert sum(line.startswith("building the notebook image") for line in logs) == 1, logs
        assert (results[0] / "usr/bin").is_dir() and (results[0] / "home/student").is_dir()
        assert [p.name for p in images_dir.iterdir() if not p.name.startswith(".")] == [results[0].parent.name]
    finally:
        tag = f"localhost/nbhosting-tiny:{images.context_hash(context, images.LOCAL_BASE_IMAGE)}"
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True, env=_podman_env(), check=False)
        shutil.rmtree(images_dir, ignore_errors=True)


def _podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def _has_pyc(source: Path) -> bool:
    return any((source.parent / "__pycache__").glob(f"{source.stem}.cpython-*.pyc"))


def _exercise_notebook(rootfs: Path, user: RootlessUser) -> None:
    nb = start_notebook(rootfs, user, workdir=user.mkdir("work"), sockdir=user.mkdir("run"))
    try:
        wait_ready(nb)
        base = f"/nb/{nb.key}"
        assert request(nb.sock, "GET", f"{base}/api/status", None)[0] == 403
        status, _ = request(nb.sock, "PUT", f"{base}/api/contents/x.ipynb", nb.token, _empty_notebook())
        assert status == 201
        created = nb.workdir / "x.ipynb"
        assert created.stat().st_uid == user.uid and created.stat().st_gid == user.gid
        for page in ("lab/tree/x.ipynb", "notebooks/x.ipynb"):
            status, body = request(nb.sock, "GET", f"{base}/{page}", nb.token)
            assert status == 200, (page, body[:300])
        _check_kernel_starts(nb)
    finally:
        stop_notebook(nb)


def _empty_notebook() -> dict[str, object]:
    content = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return {"type": "notebook", "format": "json", "content": content}


def _check_kernel_starts(nb: Notebook) -> None:
    """Start a python3 kernel and run code in it through the kernel's websocket."""
    base = f"/nb/{nb.key}/api/kernels"
    status, body = request(nb.sock, "POST", base, nb.token, {"name": "python3"})
    assert status == 201, body
    kernel_id = json.loads(body)["id"]
    with KernelWebSocket(nb.sock, f"{base}/{kernel_id}/channels", nb.token) as ws:
        ws.send_json(_execute_request("print(6 * 7)"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = ws.recv_json()
            if msg.get("msg_type") == "stream":
                assert msg["content"]["text"] == "42\n"
                return
    logs = nb.user.run("podman", "logs", nb.name, check=False)
    raise AssertionError(f"no output from the kernel after 30 s:\n{logs.stdout}\n{logs.stderr}")


def _execute_request(code: str) -> dict[str, object]:
    msg_id = uuid.uuid4().hex
    return {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": msg_id,
                   "date": "", "version": "5.3"},
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
        "channel": "shell",
        "buffers": [],
    }  # fmt: skip


class KernelWebSocket:
    """A minimal websocket client (RFC 6455, text frames, no extensions) over a Unix socket."""

    def __init__(self, sock_path: Path, path: str, token: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(sock_path))
        key = base64.b64encode(os.urandom(16)).decode()
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: token {token}\r\n\r\n"
        )
        self.sock.sendall(handshake.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def __enter__(self) -> KernelWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _recv_some(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("websocket closed")
        return data

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._recv_some()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send_json(self, message: object) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_json(self) -> dict[str, Any]:
        """The next text message (control frames skipped; messages are not fragmented by Jupyter)."""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            if first & 0x0F == 0x1:
                message: dict[str, Any] = json.loads(payload)
                return message


@pytest.mark.parametrize("uid", [None, HIGH_UID], ids=["default-uid", "high-uid"])
def test_rootless_narrow_subid_range(rootfs: Path, make_user: UserFactory, uid: int | None) -> None:
    """keep-id with a range of only 1024 subordinate ids works on podman 4.3, whatever the user's uid
    (a MOOC has tens of thousands of accounts: uids far above the size of the range)."""
    user = make_user(True, _free_uid(uid) if uid else None)
    _exercise_notebook(rootfs, user)


def _free_uid(start: int) -> int:
    taken = {entry.pw_uid for entry in pwd.getpwall()}
    return next(uid for uid in range(start, start + 1000) if uid not in taken)


def test_rootless_no_subid_range(rootfs: Path, make_user: UserFactory) -> None:
    """A fact of podman 4.3: with NO subordinate ids, keep-id is refused; the default rootless mode (a single
    mapping: the user is root inside the container, files still owned by the user on the host) works."""
    user = make_user(False)
    common = ["podman", "run", "--rm", "--rootfs", "--read-only", "--passwd=false", "--network", "none"]
    keep_id = user.run(*common, "--userns=keep-id", str(rootfs), "true", check=False)
    assert keep_id.returncode != 0
    assert "keep-id requires additional UIDs or GIDs" in keep_id.stderr
    single = user.run(*common, str(rootfs), "cat", "/proc/self/uid_map", check=False)
    assert single.returncode == 0, single.stderr
    assert single.stdout.split() == ["0", str(user.uid), "1"]
