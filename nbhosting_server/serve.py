"""`nbh serve`: the privileged helper, the app (uvicorn workers) and Caddy in the foreground, on a prepared host.

Before they start: nbhosting's system users (the app's, Caddy's), the host's folders
(:func:`nbhosting_core.ensure_layout`), the notebook image, the demo course if asked, and a
:meth:`~nbhosting_core.Hub.reconcile` that repairs whatever a crash or a reboot left.

Then three processes, each under its own user, as the systemd units of a production host run them
(:mod:`nbhosting_server.systemd`):

=========  ================  =========================================================================
helper     root              ``nbh helper``: accounts, workspaces, containers; the culler
app        ``app_user``      uvicorn: launches, LTI, tickets, forward-auth; no capability, no new privileges
Caddy      ``caddy_user``    TLS and routing; ``CAP_NET_BIND_SERVICE`` only if a port is below 1024
=========  ================  =========================================================================

``nbh serve`` stays root to watch them: a process that exits is started again (the others, and every student's
server, keep running), unless it keeps failing at once.
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
from nbhosting_core.helper import HelperClient
from nbhosting_core.origins import server_origin
from nbhosting_core.platforms import PlatformsFile
from nbhosting_core.system.layout import share_with_app
from nbhosting_core.system.runner import SubprocessRunner
from nbhosting_core.system.services import ensure_service_user, service_user

from .demo import (
    DATASCIENCE_COURSE,
    DATASCIENCE_NOTEBOOK,
    DEMO_COURSE,
    DEMO_PLATFORM,
    DEMO_STUDENT,
    build_datascience_image,
    ensure_datascience_course,
    ensure_demo_course,
    ensure_demo_platform,
)
from .processes import Child, as_user, unreadable_by

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


def ensure_service_users(settings: Settings) -> None:
    """The app's and Caddy's system users, made if missing (as root)."""
    runner = SubprocessRunner()
    ensure_service_user(settings.app_user, runner, comment="nbhosting web app")
    ensure_service_user(settings.caddy_user, runner, comment="nbhosting Caddy")


def prepare_helper(settings: Settings) -> Settings:
    """What `nbh helper` does before it serves, when nothing prepared the host (a systemd unit)."""
    return prepare(settings, demo=False)


def prepare(settings: Settings, *, demo: bool, log: bool = True) -> Settings:
    """Users, folders, image, demo course, reconcile: everything before the processes start; the settings to serve."""
    if os.geteuid() == 0:
        ensure_service_users(settings)
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
        ensure_datascience_course(settings.courses_dir)
        build_datascience_image(
            settings, log=(lambda m: print(f"[image] {m}", file=sys.stderr, flush=True)) if log else (lambda m: None)
        )
        if ensure_demo_platform(settings.effective_platforms_file):
            print(f"nbh: made {settings.effective_platforms_file} with a 'demo' platform", file=sys.stderr)
    share_with_app(settings)  # the platforms file, if the demo just made it
    report = Hub(settings).reconcile()
    if report.adopted or report.removed or report.cleared:
        print(
            f"nbh: reconciled: {len(report.adopted)} running servers adopted, {len(report.removed)} removed, "
            f"{len(report.cleared)} stale runtime files cleared",
            file=sys.stderr,
            flush=True,
        )
    return settings


def helper_argv(python: str = sys.executable) -> list[str]:
    """The command that runs the privileged helper on a host `nbh serve` prepared."""
    return [python, "-m", "nbhosting_server.cli", "helper", "--prepared"]


def _wait_for_helper(settings: Settings, helper: Child, timeout: float) -> bool:
    """Until the helper answers a ping (True), or exits, or time runs out (False)."""
    client = HelperClient(settings.helper_socket, timeout=2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and helper.process.poll() is None:
        try:
            client.ping()
            return True
        except NbhostingError:
            time.sleep(0.1)
    return False


def _wait_for_app(settings: Settings, children: list[Child], timeout: float) -> bool:
    """Until the app answers its health check (True), a child exits or time runs out (False)."""
    url = f"http://{settings.app_host}:{settings.app_port}/_nbh/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.process.poll() is not None for child in children):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def app_argv(settings: Settings, workers: int, python: str = sys.executable) -> list[str]:
    """The command that runs the app: uvicorn, ``workers`` processes, on ``app_host:app_port`` (through
    :mod:`nbhosting_server.appstart`, which empties the workers' metrics folder first)."""
    return [
        python,
        "-m",
        "nbhosting_server.appstart",
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


def _print_datascience_link(settings: Settings) -> None:
    """The demo's second course (its own image), if the demo platform may launch it (an older platforms file
    made by the demo names only the first)."""
    platform = PlatformsFile(settings.effective_platforms_file).check().get(DEMO_PLATFORM)
    if platform is None or not platform.may_launch(DATASCIENCE_COURSE):
        print(
            f"nbh: add {DATASCIENCE_COURSE!r} to the courses of the {DEMO_PLATFORM!r} platform in "
            f"{settings.effective_platforms_file} for a link to the course with its own image",
            file=sys.stderr,
        )
        return
    url = signed_url(settings, DEMO_PLATFORM, DATASCIENCE_COURSE, DATASCIENCE_NOTEBOOK, DEMO_STUDENT, 24 * 3600)
    print(f"and a course with its own image (numpy, pandas, matplotlib): {url}")


def serve(settings: Settings, *, demo: bool, workers: int) -> int:
    """Run the helper, the app (uvicorn) and Caddy, each as its user, in the foreground until SIGINT/SIGTERM;
    start again whichever exits; stop all three cleanly (students' servers keep running)."""
    caddy = shutil.which("caddy")
    if caddy is None:
        print("nbh: caddy is not installed (apt-get install caddy)", file=sys.stderr)
        return 2
    settings = prepare(settings, demo=demo)
    env = {**os.environ, **settings_environment(settings)}
    app_user, caddy_user = service_user(settings.app_user), service_user(settings.caddy_user)
    if app_user is None or caddy_user is None:
        print("nbh: serve runs as root (it makes the app's and Caddy's users, then runs them)", file=sys.stderr)
        return 2
    code_paths = [Path(sys.executable), CADDYFILE, Path(__file__)]
    blocked = unreadable_by(app_user, code_paths) or unreadable_by(caddy_user, [CADDYFILE])
    if blocked is not None:
        print(
            f"nbh: {blocked} is closed to the app's and Caddy's users: install nbhosting where every user may read "
            "it (`./setup.sh` does, in /opt/nbhosting)",
            file=sys.stderr,
        )
        return 2
    low_port = min(settings.http_port, settings.https_port) < 1024
    helper = Child("helper", helper_argv(), env, group=False)
    if not _wait_for_helper(settings, helper, timeout=60):
        print("nbh: the helper did not come up; stopping", file=sys.stderr)
        helper.stop()
        helper.wait()
        return 1
    app_env = {**env, "HOME": "/nonexistent"}
    caddy_env = {**env, **caddy_environment(settings), "HOME": str(settings.data_root / "caddy")}
    app = Child("app", as_user(app_user, app_argv(settings, workers)), app_env)
    caps = ("net_bind_service",) if low_port else ()
    proxy = Child("caddy", as_user(caddy_user, caddy_argv(caddy), caps=caps), caddy_env)
    children = [helper, app, proxy]
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
                _print_datascience_link(settings)
            except NbhostingError as exc:
                print(f"nbh: no demo link: {exc.message}", file=sys.stderr)
        each = ""
        if settings.origin_mode == "subdomain":
            shown = server_origin(settings, "0" * 40).replace("0" * 40, "<key>")
            print(f"each notebook server on its own origin: {shown}")
            each = ", for the site and for each notebook server's host" if settings.servers_tls == "internal" else ""
        trust = caddy_root_cert(settings)
        print(f"(TLS by Caddy's internal CA; trust {trust} or accept the warning{each})", flush=True)
    code = 0
    while not stop["signal"]:
        for child in children:
            if not child.watch():
                stop["signal"], code = signal.SIGTERM, 1
        time.sleep(0.2)
    for child in (app, proxy):  # the internet-facing ones first: no launch reaches a stopped helper
        child.stop()
    for child in (app, proxy):
        child.wait()
    helper.stop()
    helper.wait()
    print("nbh: stopped (students' servers keep running; the next start finds them again)", file=sys.stderr)
    return code
