"""The peer, run side by side: JupyterHub 6.1.1 + DockerSpawner 14.0.0 on this host's rootful podman (its docker
API) + configurable-http-proxy 5.3.0, plain HTTP on the loopback, the same notebook image (see bench.peerinstall).

As HOST-NOTES ("The peer, as it ran here") says: the proxy reaches the hub on 127.0.0.1, the containers reach it on
the podman bridge's gateway; DummyAuthenticator with a password for the browser's login form, and a service token
with the admin role for the REST API. Everything it starts (podman service, hub, proxy, containers, folder) is
stopped and removed on exit, by PID or by this run's own container names.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import peerinstall
from tests.support import free_port

GATEWAY = "10.88.0.1"  # podman's default bridge
NAME_PREFIX = "nbhbench-peer-"

CONFIG = """\
import shutil, os
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.JupyterHub.db_url = "sqlite:///{root}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.pid_file = "{root}/hub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.auth_token = "{proxy_token}"
c.ConfigurableHTTPProxy.pid_file = "{root}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{password}"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": "{api_token}"}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["bench"]}}]
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.client_kwargs = {{"base_url": "unix://{root}/docker.sock"}}
c.DockerSpawner.image = "{image}"
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.network_name = "podman"
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.name_template = "{prefix}{{username}}"
c.DockerSpawner.cmd = ["/opt/jupyter/bin/python", "-m", "jupyterhub.singleuser"]
c.DockerSpawner.extra_create_kwargs = {{"user": "65534:65534"}}
# as the image's own entry point (nbhosting-jupyter) sets them: its kernelspec runs `python` from the venv
c.DockerSpawner.environment = {{
    "HOME": "/tmp",
    "PATH": "/opt/jupyter/bin:/usr/local/bin:/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
}}
c.DockerSpawner.notebook_dir = "/home/student"
c.DockerSpawner.volumes = {{"{root}/homes/{{username}}": "/home/student"}}
c.Spawner.hub_connect_url = "http://{gateway}:{hub_port}"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.JupyterHub.concurrent_spawn_limit = 1000


def copy_course(spawner):
    home = "{root}/homes/" + spawner.user.name
    if not os.path.isdir(home):
        shutil.copytree("{course}", home)
        for folder, _, files in os.walk(home):
            os.chown(folder, 65534, 65534)
            for name in files:
                os.chown(os.path.join(folder, name), 65534, 65534)


c.Spawner.pre_spawn_hook = copy_course
"""


@dataclass
class Peer:
    root: Path
    port: int
    api_token: str
    password: str
    hub: subprocess.Popen[bytes]
    podman: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def login_url(self, notebook: str) -> str:
        return f"{self.base_url}/hub/login?next=/hub/user-redirect/notebooks/{notebook}"

    def api(self, method: str, path: str, timeout: float = 30) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.base_url}/hub/api/{path}", method=method, headers={"Authorization": f"token {self.api_token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                body = resp.read()
                return resp.status, json.loads(body) if body else None
        except urllib.error.HTTPError as err:
            return err.code, err.read()[:300]

    def spawn(self, user: str, timeout: float = 180) -> float:
        """Create ``user``, start their server, wait until the hub says it is ready; seconds from the start."""
        self.api("POST", f"users/{user}")
        start = time.monotonic()
        status, body = self.api("POST", f"users/{user}/server", timeout=timeout)
        if status not in (201, 202):
            raise RuntimeError(f"spawn of {user}: HTTP {status} {body!r}")
        while time.monotonic() - start < timeout:
            status, model = self.api("GET", f"users/{user}")
            server = (model or {}).get("servers", {}).get("") if status == 200 else None
            if server and server.get("ready"):
                return time.monotonic() - start
            if status == 200 and not server and not (model or {}).get("pending"):
                raise RuntimeError(f"the server of {user} failed to start (see {self.root}/hub.log)")
            time.sleep(0.05)
        raise TimeoutError(f"the server of {user} not ready within {timeout} s")

    def shut_down_kernels(self, user: str) -> int:
        """Shut down every kernel of ``user``'s server, through the proxy with the service's token; how many."""
        headers = {"Authorization": f"token {self.api_token}"}
        url = f"{self.base_url}/user/{user}/api/kernels"
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            ids = [k["id"] for k in json.loads(resp.read())]
        for kernel in ids:
            request = urllib.request.Request(f"{url}/{kernel}", method="DELETE", headers=headers)
            with urllib.request.urlopen(request, timeout=30):
                pass
        return len(ids)

    def container_pid(self, user: str) -> int | None:
        result = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Pid}}", NAME_PREFIX + user],
            env=peerinstall.podman_env(),
            capture_output=True,
            text=True,
        )
        return int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else None

    def login(self, user: str, browser: Any, deadline: float) -> None:
        """Fill the hub's login form as ``user`` (the browser is on it, or already past it if logged in)."""
        while time.monotonic() < deadline:
            with suppress(Exception):
                path = urllib.parse.urlsplit(browser.driver.current_url).path
                if "/notebooks/" in path or "/spawn-pending/" in path:
                    return  # logged in already
                fields = browser.css("input#username_input")
                if fields:
                    fields[0].send_keys(user)
                    browser.css("input#password_input")[0].send_keys(self.password)
                    browser.css("#login_submit")[0].click()
                    return
            time.sleep(0.05)
        raise TimeoutError("no login form")


def _wait_up(peer: Peer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if peer.hub.poll() is not None:
            raise RuntimeError(f"jupyterhub exited with {peer.hub.returncode}; see {peer.root}/hub.log")
        with suppress(OSError):
            if peer.api("GET", "")[0] == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"jupyterhub not up after {timeout:.0f} s; see {peer.root}/hub.log")


def _stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the hub and the proxy it started
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # anything of that session left behind (the proxy)


def remove_containers() -> None:
    """This benchmark's peer containers (by their name prefix), whatever their state."""
    env = peerinstall.podman_env()
    names = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name=^{NAME_PREFIX}"],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    if names:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], env=env, capture_output=True)


@contextmanager
def running(rootfs: Path, course: Path, place: Path = peerinstall.PLACE) -> Iterator[Peer]:
    """The peer installed (idempotently), started on free ports; everything it started removed on exit."""
    image = peerinstall.ensure_all(rootfs, place)
    remove_containers()  # a previous run cut short
    root = Path(tempfile.mkdtemp(prefix="nbh-bench-peer-", dir="/tmp"))
    (root / "homes").mkdir()
    values = dict(
        port=free_port(),
        hub_port=free_port(),
        api_port=free_port(),
        root=root,
        chp=peerinstall.chp_bin(place),
        proxy_token=secrets.token_hex(16),
        password=secrets.token_hex(8),
        api_token=secrets.token_hex(16),
        image=image,
        prefix=NAME_PREFIX,
        gateway=GATEWAY,
        course=course,
    )
    (root / "jupyterhub_config.py").write_text(CONFIG.format(**values))
    podman = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{root}/docker.sock"],
        env=peerinstall.podman_env(),
        stdout=subprocess.DEVNULL,
        stderr=open(root / "podman.log", "wb"),  # noqa: SIM115 - the child owns it
        start_new_session=True,
    )
    hub_env = {**os.environ, "PATH": f"{place / 'venv' / 'bin'}:{os.environ['PATH']}"}
    hub = subprocess.Popen(
        [str(place / "venv" / "bin" / "jupyterhub"), "-f", str(root / "jupyterhub_config.py")],
        cwd=root,
        env=hub_env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "hub.log", "wb"),  # noqa: SIM115 - the child owns it
        start_new_session=True,
    )
    peer = Peer(
        root=root,
        port=int(str(values["port"])),
        api_token=str(values["api_token"]),
        password=str(values["password"]),
        hub=hub,
        podman=podman,
    )
    try:
        deadline = time.monotonic() + 30
        while not (root / "docker.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        _wait_up(peer, 60)
        yield peer
    finally:
        _stop(hub)
        remove_containers()
        _stop(podman)
        keep = os.environ.get("NBH_BENCH_KEEP_LOGS")
        if keep:
            shutil.copy(root / "hub.log", Path(keep) / "peer-hub.log")
        shutil.rmtree(root, ignore_errors=True)
