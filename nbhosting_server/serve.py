"""`nbh serve`: the app (uvicorn workers) and Caddy in the foreground, on a prepared host.

Before they start: the host's folders (:func:`nbhosting_core.ensure_layout`), the notebook image, the demo
course if asked, and a :meth:`~nbhosting_core.Hub.reconcile` that repairs whatever a crash or a reboot left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from nbhosting_core import (
    CommandFailed,
    Hub,
    NbhostingError,
    NotFound,
    Settings,
    ensure_default_rootfs,
    ensure_layout,
    signed_launch_path,
)
from nbhosting_core.platforms import PlatformsFile

from .demo import DEMO_COURSE, DEMO_PLATFORM, DEMO_STUDENT, ensure_demo_course, ensure_demo_platform

CADDYFILE = Path(__file__).resolve().parent / "caddy" / "Caddyfile"


def caddy_environment(settings: Settings) -> dict[str, str]:
    """The NBH_* values the Caddyfile reads, and where Caddy keeps its certificates."""
    tls = "internal"
    if settings.tls_cert and settings.tls_key:
        tls = f"{settings.tls_cert} {settings.tls_key}"
    caddy_home = settings.data_root / "caddy"
    bind = "127.0.0.1" if settings.site_address in ("localhost", "127.0.0.1") else "0.0.0.0"  # noqa: S104
    return {
        "NBH_HTTP_PORT": str(settings.http_port),
        "NBH_HTTPS_PORT": str(settings.https_port),
        "NBH_SITE_ADDRESS": settings.site_address,
        "NBH_BIND": bind,
        "NBH_TLS": tls,
        "NBH_PREFIX": settings.url_prefix,
        "NBH_APP": f"{settings.app_host}:{settings.app_port}",
        "NBH_SOCKETS_DIR": str(settings.jupyter_sockets_dir),
        "NBH_ORIGIN_MODE": settings.origin_mode,
        "NBH_SERVERS_DOMAIN": settings.effective_servers_domain,
        "NBH_SERVERS_TLS": settings.servers_tls,
        "NBH_SERVERS_TLS_CERT": str(settings.servers_tls_cert or ""),
        "NBH_SERVERS_TLS_KEY": str(settings.servers_tls_key or ""),
        "XDG_DATA_HOME": str(caddy_home / "data"),
        "XDG_CONFIG_HOME": str(caddy_home / "config"),
    }


def caddy_adapt(settings: Settings, caddy: str = "caddy") -> str:
    """The JSON configuration Caddy makes of the Caddyfile with ``settings`` (``caddy adapt``); checks it.

    Raises:
        CommandFailed: Caddy refuses the configuration (its message says the line and why).
    """
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **caddy_environment(settings)}
    argv = [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise CommandFailed(argv, done.returncode, done.stderr)
    return done.stdout


def settings_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as NBH_* variables, for the server processes."""
    env = {}
    for name, value in settings.model_dump(mode="json", exclude_none=True).items():
        if isinstance(value, bool):
            env[f"NBH_{name.upper()}"] = str(value).lower()
        elif isinstance(value, list | dict):
            env[f"NBH_{name.upper()}"] = json.dumps(value)  # what pydantic-settings reads back
        else:
            env[f"NBH_{name.upper()}"] = str(value)
    return env


def signed_url(settings: Settings, platform: str, course: str, notebook: str, student: str, ttl: int) -> str:
    """A launch URL signed for ``platform`` (as the platform's own code would make it), valid ``ttl`` seconds.

    Raises:
        InvalidConfig: the platforms file is refused.
        NotFound: no such platform, or it cannot sign (no method "signed").
    """
    found = PlatformsFile(settings.effective_platforms_file).check().get(platform)
    if found is None or not found.uses("signed"):
        raise NotFound(f"No platform {platform!r} that signs launch URLs in {settings.effective_platforms_file}.")
    ttl = min(ttl, settings.signed_launch_max_ttl)
    path = signed_launch_path(found, course, notebook, student, int(time.time()) + ttl)
    return settings.public_url.rstrip("/") + path


def caddy_root_cert(settings: Settings) -> Path:
    """The root certificate of Caddy's internal CA (what a browser must trust)."""
    return settings.data_root / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"


def prepare(settings: Settings, *, demo: bool, log: bool = True) -> Settings:
    """Folders, image, demo course, reconcile: everything before the processes start; the settings to serve."""
    ensure_layout(settings)
    settings = settings.model_copy(
        update={
            "image_rootfs": ensure_default_rootfs(
                settings,
                log=(lambda m: print(f"[image] {m}", file=sys.stderr, flush=True)) if log else (lambda m: None),
            )
        }
    )
    if demo:
        ensure_demo_course(settings.courses_dir)
        if ensure_demo_platform(settings.effective_platforms_file):
            print(f"nbh: made {settings.effective_platforms_file} with a 'demo' platform", file=sys.stderr)
    report = Hub(settings).reconcile()
    if report.adopted or report.removed or report.cleared:
        print(
            f"nbh: reconciled: {len(report.adopted)} running servers adopted, {len(report.removed)} removed, "
            f"{len(report.cleared)} stale runtime files cleared",
            file=sys.stderr,
            flush=True,
        )
    return settings


def _wait_for_app(settings: Settings, children: dict[str, subprocess.Popen[bytes]], timeout: float) -> bool:
    """Until the app answers its health check (True), a child exits or time runs out (False)."""
    url = f"http://{settings.app_host}:{settings.app_port}/_nbh/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children.values()):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def app_argv(settings: Settings, workers: int, python: str = sys.executable) -> list[str]:
    """The command that runs the app: uvicorn, ``workers`` processes, on ``app_host:app_port``."""
    return [
        python,
        "-m",
        "uvicorn",
        "nbhosting_server.app:app_from_env",
        "--factory",
        "--host",
        settings.app_host,
        "--port",
        str(settings.app_port),
        "--workers",
        str(workers),
        "--no-server-header",
        "--no-access-log",  # a signed launch URL is a capability until it expires: never logged
        "--proxy-headers",
        "--forwarded-allow-ips",
        "127.0.0.1",
    ]


def caddy_argv(caddy: str = "caddy") -> list[str]:
    """The command that runs Caddy on nbhosting's Caddyfile (its settings come from :func:`caddy_environment`)."""
    return [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]


def serve(settings: Settings, *, demo: bool, workers: int) -> int:
    """Run the app (uvicorn) and Caddy in the foreground until SIGINT/SIGTERM; stop both cleanly."""
    caddy = shutil.which("caddy")
    if caddy is None:
        print("nbh: caddy is not installed (apt-get install caddy)", file=sys.stderr)
        return 2
    settings = prepare(settings, demo=demo)
    env = {**os.environ, **settings_environment(settings)}
    app_cmd = app_argv(settings, workers)
    caddy_cmd = caddy_argv(caddy)
    children = {
        "uvicorn": subprocess.Popen(app_cmd, env=env),
        "caddy": subprocess.Popen(caddy_cmd, env={**env, **caddy_environment(settings)}),
    }
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    base = settings.public_url.rstrip("/")
    if not _wait_for_app(settings, children, timeout=60):
        print("nbh: the app did not come up; stopping", file=sys.stderr)
        stop["signal"] = signal.SIGTERM
    else:
        print(f"nbhosting is up: {base}/", flush=True)
        if demo:
            try:
                url = signed_url(settings, DEMO_PLATFORM, DEMO_COURSE, "01-welcome.ipynb", DEMO_STUDENT, 24 * 3600)
                print(f"open the demo notebook (this link works for 24 h; `nbh sign` makes others): {url}")
            except NbhostingError as exc:
                print(f"nbh: no demo link: {exc.message}", file=sys.stderr)
        each = ""
        if settings.origin_mode == "subdomain":
            print(f"each notebook server on its own origin: https://<key>.{settings.effective_servers_domain}")
            each = ", for the site and for each notebook server's host" if settings.servers_tls == "internal" else ""
        trust = caddy_root_cert(settings)
        print(f"(TLS by Caddy's internal CA; trust {trust} or accept the warning{each})", flush=True)
    code = 0
    while not stop["signal"]:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"nbh: {name} exited with {child.returncode}; stopping", file=sys.stderr)
                stop["signal"], code = signal.SIGTERM, 1
        time.sleep(0.2)
    _stop(children)
    print("nbh: stopped (students' servers keep running; the next start finds them again)", file=sys.stderr)
    return code
