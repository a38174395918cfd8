"""Shared test support: throwaway nbhosting installations that clean up after themselves.

Test students get their own user prefix ("nbt-") and uid/subuid ranges, so a test run never touches
the accounts of a real installation on the same host.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from nbhosting_core import Settings
from nbhosting_core.gate import Gate
from nbhosting_core.passwords import Passwords

if TYPE_CHECKING:
    from nbhosting_core import Hub

IMAGES_DIR = Path(os.environ.get("NBH_TEST_IMAGES_DIR", "/var/lib/nbhosting/images"))
TEST_PREFIX = "nbt-"
TEST_UID_MIN = 3_000_000
TEST_UID_MAX = 3_099_999
TEST_SUBID_BASE = 4_000_000_000
# benchmarks' students (bench/), made in throwaway account databases: uids and subordinate ids of their own, so
# that killing a benchmark's students' processes never touches a test run's (their uids exist on the same host)
BENCH_UID_MIN = 3_100_000
BENCH_UID_MAX = 3_249_999
BENCH_SUBID_BASE = TEST_SUBID_BASE + (TEST_UID_MAX + 1 - TEST_UID_MIN) * 1024  # up to 4,256,000,000 < 2**32
#: argon2 parameters that cost nothing (tests of staff logins only)
FAST_PASSWORDS = Passwords(time_cost=1, memory_cost=8, parallelism=1)


class FakeClock:
    """Epoch seconds that only move when a test moves them (``clock.now += 60``)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def is_root() -> bool:
    return os.geteuid() == 0


def built_rootfs() -> Path:
    """The default image's rootfs, built once into the shared cache (slow the first time only)."""
    from nbhosting_core import ensure_default_rootfs

    return ensure_default_rootfs(Settings(images_dir=IMAGES_DIR))


def built_datascience_image(rootfs: Path) -> Path:
    """The demo data-science course's image, built once into the shared cache (~25 s the first time only), as
    `nbh serve --demo` builds it: built beforehand, it costs a served stack's start-up nothing."""
    from nbhosting_core.system.courseimages import CourseImages
    from nbhosting_server.demo import DATASCIENCE_COURSE, ensure_datascience_course

    with tempfile.TemporaryDirectory(prefix="nbh-test-ds-", dir="/tmp") as root:
        settings = Settings(data_root=Path(root), images_dir=IMAGES_DIR, image_rootfs=rootfs)
        ensure_datascience_course(settings.courses_dir)
        return CourseImages(settings).build(DATASCIENCE_COURSE).rootfs


def settings_for(root: Path, rootfs: Path | None, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        data_root=root / "data",
        run_dir=root / "run",
        image_rootfs=rootfs,
        images_dir=IMAGES_DIR,
        user_prefix=TEST_PREFIX,
        uid_min=TEST_UID_MIN,
        uid_max=TEST_UID_MAX,
        subid_base=TEST_SUBID_BASE,
        egress=False,
        podman_service_idle=30,
        start_timeout=60,
        cgroup_parent=root.name,  # its own parent group: test runs never share a students' total
        # the door's limits are not the point of other tests (every launch comes from this host): they have their own
        max_running=200,
        creation_client_burst=1000,
        creation_platform_burst=1000,
        egress_table=egress_table(root),  # its own: a test run never replaces (or removes) a real installation's
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def egress_table(root: Path) -> str:
    """The nftables table of the test installation in ``root`` (``nbh-test-…`` becomes ``nbh_test_…``)."""
    return root.name.replace("-", "_")


def remove_test_egress(root: Path) -> None:
    """Remove the egress filter's table of the test installation in ``root``, if it made one."""
    nft = shutil.which("nft")
    if nft is not None and is_root():
        table = egress_table(root)
        if subprocess.run([nft, "list", "table", "inet", table], capture_output=True).returncode == 0:
            subprocess.run([nft, "delete", "table", "inet", table], check=False, capture_output=True)


def make_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="nbh-test-", dir="/tmp"))
    os.chmod(root, 0o755)  # students' rootless podman must traverse it
    return root


def students_of(root: Path | None) -> list[pwd.struct_passwd]:
    """Test (and benchmark) students whose home is under ``root``; with None, those whose home is gone (stale)."""
    found = []
    for e in pwd.getpwall():
        if not (e.pw_name.startswith(TEST_PREFIX) and TEST_UID_MIN <= e.pw_uid <= BENCH_UID_MAX):
            continue
        if (root is None and not Path(e.pw_dir).exists()) or (root and e.pw_dir.startswith(f"{root}/")):
            found.append(e)
    return found


def remove_test_users(root: Path | None) -> None:
    """Kill every process of the test students of ``root`` (None: stale ones), then delete the accounts.

    Scoped so that two test runs on one host never remove each other's students.
    """
    users = students_of(root)
    for entry in users:
        subprocess.run(["pkill", "-KILL", "-U", str(entry.pw_uid)], check=False)
    deadline = time.monotonic() + 10
    for entry in users:
        while time.monotonic() < deadline:
            if subprocess.run(["pgrep", "-U", str(entry.pw_uid)], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        subprocess.run(["userdel", entry.pw_name], check=False, capture_output=True)


def unmount_below(root: Path) -> None:
    """Unmount everything mounted at or below ``root`` (socket folders' tmpfs, the shared bind), deepest first."""
    from nbhosting_core.system.mounts import mounts

    for mount in sorted(
        (m for m in mounts() if m.target == root or root in m.target.parents),
        key=lambda m: len(m.target.parts),
        reverse=True,
    ):
        subprocess.run(["umount", "--lazy", str(mount.target)], check=False, capture_output=True)


def remove_test_cgroups(parent: str = "nbhosting") -> None:
    """Remove the (empty) limit groups of test students' servers under ``parent``; a test parent goes too."""
    base = Path("/sys/fs/cgroup")
    for folder in [*base.glob(f"*/{parent}"), *base.glob(parent)]:  # v1 hierarchies, then v2
        for group in folder.glob(f"{TEST_PREFIX}*"):
            with suppress(OSError):
                group.rmdir()
        if parent.startswith("nbh-test-"):
            with suppress(OSError):
                folder.rmdir()


@contextmanager
def installation(rootfs: Path | None, **overrides: object) -> Iterator[Settings]:
    """A fresh data root + run dir; on exit, test students are removed, mounts undone, both folders deleted."""
    root = make_root()
    try:
        yield settings_for(root, rootfs, **overrides)
    finally:
        remove_test_users(root)
        unmount_below(root)
        remove_test_cgroups(root.name)
        remove_test_egress(root)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------ talking to a student's Jupyter


def jupyter_call(
    settings: Settings, secret: bytes, key: str, method: str, path: str, body: object | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    """An HTTP request to the Jupyter of server ``key`` through root's socket link (what Caddy dials)."""
    import http.client
    import json
    import socket

    from nbhosting_core.tokens import jupyter_token

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(str(settings.jupyter_sockets_dir / key / "jupyter.sock"))

    conn = Conn("localhost")
    headers = {"Authorization": f"token {jupyter_token(secret, key)}", "Content-Type": "application/json"}
    conn.request(
        method,
        f"/{settings.url_prefix}/{key}/{path.lstrip('/')}",
        body=json.dumps(body) if body is not None else None,
        headers=headers,
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def execute_request(code: str) -> dict[str, object]:
    """A Jupyter messaging-protocol execute_request for ``code``."""
    import uuid

    msg_id = uuid.uuid4().hex
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": msg_id,
            "date": "",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "buffers": [],
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    }


class Kernel:
    """A python3 kernel in a student's server, driven over its websocket (through root's socket link)."""

    def __init__(self, settings: Settings, secret: bytes, key: str, kernel_id: str | None = None) -> None:
        import json

        self.settings, self.secret, self.key = settings, secret, key
        if kernel_id is None:
            status, data = jupyter_call(settings, secret, key, "POST", "api/kernels", {"name": "python3"})
            assert status == 201, data
            kernel_id = json.loads(data)["id"]
        self.id = kernel_id

    def run(self, code: str, timeout: float = 60) -> dict[str, object]:
        """Run ``code``; returns {"stdout": ..., "error": ename or None, "status": ..., "died": bool}.

        ``died``: the kernel went away while running it (e.g. killed by the memory limit).
        """
        import json

        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import unix_connect

        from nbhosting_core.tokens import jupyter_token

        sock = self.settings.jupyter_sockets_dir / self.key / "jupyter.sock"
        uri = f"ws://localhost/{self.settings.url_prefix}/{self.key}/api/kernels/{self.id}/channels"
        result: dict[str, object] = {"stdout": "", "error": None, "status": None, "died": False}
        request = execute_request(code)
        deadline = time.monotonic() + timeout
        idle = False
        with unix_connect(
            str(sock),
            uri=uri,
            open_timeout=30,
            additional_headers={"Authorization": f"token {jupyter_token(self.secret, self.key)}"},
        ) as ws:
            ws.send(json.dumps(request))
            msg_id = request["header"]["msg_id"]  # type: ignore[index]
            while time.monotonic() < deadline:
                try:
                    message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                except (TimeoutError, ConnectionClosed):
                    break
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    if message.get("msg_type") == "status" and message.get("content", {}).get("execution_state") in (
                        "restarting",
                        "dead",
                    ):
                        result["died"] = True
                        return result
                    continue
                kind, content = message.get("msg_type"), message.get("content", {})
                if kind == "stream" and content.get("name") == "stdout":
                    result["stdout"] = str(result["stdout"]) + content.get("text", "")
                elif kind == "error":
                    result["error"] = content.get("ename")
                elif kind == "status" and content.get("execution_state") in ("restarting", "dead"):
                    result["died"] = True
                    return result
                elif kind == "status" and content.get("execution_state") == "idle":
                    idle = True  # on iopub, after all of the run's output
                elif kind == "execute_reply":
                    result["status"] = content.get("status")
                    deadline = min(deadline, time.monotonic() + 10)  # the output is due, not a new run
                # the reply (shell) may overtake the output (iopub): done once both are in
                if idle and result["status"] is not None:
                    return result
        result["died"] = result["status"] is None
        return result


# ------------------------------------------------------------------------------ the app, as `nbh serve` runs it

WORKTREE = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now (never the e2e tests' fixed ports)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class App:
    """The real app (uvicorn, ``app_from_env``, culler on) in worker processes, as `nbh serve` starts it.

    No Caddy: tests talk to the app over HTTP on its own port. Its output goes to ``log_path`` (appended
    across restarts). Only processes this object started are ever signalled, by their PIDs.
    """

    def __init__(self, settings: Settings, log_path: Path, *, workers: int = 2) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(update={"app_port": self.port})
        self.log_path = log_path
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Start uvicorn and wait until /_nbh/health answers."""
        import sys

        from nbhosting_server.serve import settings_environment

        env = {**os.environ, **settings_environment(self.settings), "PYTHONPATH": str(WORKTREE)}
        argv = [sys.executable, "-m", "uvicorn", "nbhosting_server.app:app_from_env", "--factory"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, env=env, cwd=WORKTREE, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.get("/_nbh/health")[0] != 200:
            assert self.process.poll() is None, f"the app exited with {self.process.returncode}:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"the app did not answer within {timeout} s:\n{self.log_tail()}"
            time.sleep(0.1)
        while len(self.worker_pids()) < self.workers:  # health answered: one worker at least; wait for all
            assert time.monotonic() < deadline, f"{self.workers} workers not up within {timeout} s"
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        """The PIDs of the master's own children: its worker processes."""
        assert self.process is not None
        pids: list[int] = []
        with suppress(FileNotFoundError):
            for task in os.listdir(f"/proc/{self.process.pid}/task"):
                with suppress(FileNotFoundError):
                    pids += [int(p) for p in Path(f"/proc/{self.process.pid}/task/{task}/children").read_text().split()]
        return pids

    def kill(self) -> list[int]:
        """SIGKILL the master and its workers at once, as a crash would (their children are left alone)."""
        import signal

        assert self.process is not None
        workers = self.worker_pids()
        os.kill(self.process.pid, signal.SIGKILL)  # first: a master would replace a dead worker
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived SIGKILL"
            time.sleep(0.05)
        self.process = None
        return [*workers]

    def stop(self) -> None:
        """Stop the app gracefully (SIGTERM to the master: it stops its workers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, bytes]:
        """GET ``path`` from the app (redirects not followed); (0, error) if it cannot be reached."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        except OSError as exc:
            return 0, repr(exc).encode()
        finally:
            conn.close()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return "?"


_GATES: WeakKeyDictionary[Hub, Gate] = WeakKeyDictionary()


def gate_of(hub: Hub) -> Gate:
    """The gate of an in-process ``hub`` (one per hub, as the app has one): cookies, tickets, forward-auth."""
    gate = _GATES.get(hub)
    if gate is None:
        gate = _GATES[hub] = Gate.of(hub)
    return gate
