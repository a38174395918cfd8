"""nbhosting as the benchmarks run it: `nbh serve --demo` on ports of its own in a throwaway installation.

As the end-to-end fixture starts it (tests/e2e/conftest.py), but on free ports (never the e2e tests' fixed ones),
so that a benchmark and a test run can share the host. Everything is removed on exit (students, mounts, folders).
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nbhosting_core import Settings
from nbhosting_core.launches import signed_launch_path
from nbhosting_core.naming import user_name
from nbhosting_core.platforms import load_platforms
from nbhosting_server.demo import DEMO_COURSE, DEMO_PLATFORM
from nbhosting_server.serve import caddy_root_cert, settings_environment
from tests.e2e.conftest import CoursePages, write_platforms
from tests.support import built_datascience_image, built_rootfs, free_port, installation

NOTEBOOK = "01-welcome.ipynb"
WORKTREE = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    settings: Settings
    https_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def launch_url(self, student: str, notebook: str = NOTEBOOK) -> str:
        platform = load_platforms(self.settings.effective_platforms_file).get(DEMO_PLATFORM)
        assert platform is not None
        expires = int(time.time()) + 3600
        return self.base_url + signed_launch_path(platform, DEMO_COURSE, notebook, student, expires)

    def root_certificate(self) -> Path:
        return caddy_root_cert(self.settings)

    def uid(self, student: str) -> int | None:
        """The Linux uid of the demo platform's ``student``, if the account exists."""
        try:
            return pwd.getpwnam(user_name(f"{DEMO_PLATFORM}:{student}", self.settings.user_prefix)).pw_uid
        except KeyError:
            return None

    def servers_domain(self) -> str:
        return self.settings.effective_servers_domain

    def shut_down_kernels(self, notebook_url: str) -> int:
        """Shut down every kernel of the server whose notebook is at ``notebook_url`` (asked of its Jupyter directly,
        as root, as the e2e tests do); how many."""
        from nbhosting_core.system.secretfile import load_or_create_secret, secret_owners
        from tests.support import jupyter_call

        key = urllib.parse.urlsplit(notebook_url).path.split("/")[2]
        secret = load_or_create_secret(self.settings.secret_file, owners=secret_owners(self.settings.app_user))
        status, body = jupyter_call(self.settings, secret, key, "GET", "api/kernels")
        if status != 200:
            raise RuntimeError(f"kernels of {key}: HTTP {status}")
        ids = [k["id"] for k in json.loads(body)]
        for kernel in ids:
            jupyter_call(self.settings, secret, key, "DELETE", f"api/kernels/{kernel}")
        return len(ids)


def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _wait_healthy(stack: Stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(f"`nbh serve` exited with {stack.process.returncode}; see {stack.log_path}")
        try:
            with urllib.request.urlopen(stack.base_url + "/_nbh/health", timeout=2, context=_insecure()) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"`nbh serve` not healthy after {timeout:.0f} s; see {stack.log_path}")


@contextmanager
def served(log_dir: Path, workers: int = 2) -> Iterator[Stack]:
    """`nbh serve --demo` (Caddy + the app + rootless podman) on free ports; stopped and removed on exit."""
    rootfs = built_rootfs()
    built_datascience_image(rootfs)  # `nbh serve --demo` builds it too: once, outside what is timed
    course = CoursePages()
    https, http, app = free_port(), free_port(), free_port()
    base = f"https://localhost:{https}"
    try:
        with installation(
            rootfs,
            https_port=https,
            http_port=http,
            app_port=app,
            public_url=base,
            origin_mode="subdomain",
            podman_service_idle=5,  # students' podman API services gone before memory is measured
        ) as settings:
            write_platforms(settings.effective_platforms_file, course.origin)
            log_path = log_dir / "nbh-serve.log"
            env = {**os.environ, **settings_environment(settings), "PYTHONPATH": str(WORKTREE)}
            argv = [sys.executable, "-m", "nbhosting_server.cli", "serve", "--demo", "--workers", str(workers)]
            with open(log_path, "wb") as log:
                process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=WORKTREE)
            stack = Stack(settings=settings, https_port=https, process=process, log_path=log_path)
            try:
                _wait_healthy(stack, 120)
                yield stack
            finally:
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGTERM)  # our `nbh serve` only; it stops its uvicorn and Caddy
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.kill(process.pid, signal.SIGKILL)
                        process.wait()
    finally:
        course.close()
