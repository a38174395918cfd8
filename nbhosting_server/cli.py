"""`nbh`: the admin command line. `nbh serve` runs the app and Caddy; `nbh open` runs a launch."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nbhosting_core import Hub, NbhostingError, Settings

from .demo import DEMO_COURSE, DEMO_STUDENT, ensure_demo_course

REPO_DIR = Path(__file__).resolve().parent.parent
CADDYFILE = REPO_DIR / "caddy" / "Caddyfile"


def prepare_host(settings: Settings) -> None:
    """Create nbhosting's folders with the modes students' rootless podman needs (idempotent)."""
    for path, mode in ((settings.data_root, 0o755), (settings.courses_dir, 0o755),
                       (settings.students_dir, 0o711), (settings.run_dir, 0o755),
                       (settings.users_run_dir, 0o711), (settings.jupyter_sockets_dir, 0o711),
                       (settings.locks_dir, 0o700)):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)


def ensure_image(settings: Settings) -> Settings:
    """Settings with ``image_rootfs`` set, building the default image if needed (cached)."""
    if settings.image_rootfs is not None:
        return settings
    from nbhosting_core.system.images import DEFAULT_CONTEXT_DIR, ensure_rootfs

    rootfs = ensure_rootfs(context_dir=DEFAULT_CONTEXT_DIR, images_dir=settings.effective_images_dir,
                           containers_conf=settings.containers_conf,
                           log=lambda m: print(f"[image] {m}", file=sys.stderr))
    return settings.model_copy(update={"image_rootfs": rootfs})


def caddy_environment(settings: Settings) -> dict[str, str]:
    """The NBH_* values the Caddyfile reads, and where Caddy keeps its certificates."""
    tls = "internal"
    if settings.tls_cert and settings.tls_key:
        tls = f"{settings.tls_cert} {settings.tls_key}"
    caddy_home = settings.data_root / "caddy"
    bind = "127.0.0.1" if settings.site_address in ("localhost", "127.0.0.1") else "0.0.0.0"  # noqa: S104
    return {
        "NBH_HTTP_PORT": str(settings.http_port), "NBH_HTTPS_PORT": str(settings.https_port),
        "NBH_SITE_ADDRESS": settings.site_address, "NBH_BIND": bind, "NBH_TLS": tls,
        "NBH_PREFIX": settings.url_prefix, "NBH_APP": f"{settings.app_host}:{settings.app_port}",
        "NBH_SOCKETS_DIR": str(settings.jupyter_sockets_dir), "NBH_FRAME_ANCESTORS": settings.frame_ancestors,
        "XDG_DATA_HOME": str(caddy_home / "data"), "XDG_CONFIG_HOME": str(caddy_home / "config"),
    }


def settings_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as NBH_* variables, for the server processes."""
    env = {}
    for name, value in settings.model_dump(exclude_none=True).items():
        env[f"NBH_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def caddy_root_cert(settings: Settings) -> Path:
    """The root certificate of Caddy's internal CA (what a browser must trust)."""
    return settings.data_root / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"


def _wait_for_app(settings: Settings, children: dict[str, subprocess.Popen[bytes]], timeout: float) -> bool:
    """Until the app answers its health check (True), a child exits or time runs out (False)."""
    import urllib.request

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


def serve(settings: Settings, *, demo: bool, workers: int) -> int:
    """Run the app (uvicorn) and Caddy in the foreground until SIGINT/SIGTERM; stop both cleanly."""
    prepare_host(settings)
    settings = ensure_image(settings)
    if demo:
        ensure_demo_course(settings.courses_dir)
    env = {**os.environ, **settings_environment(settings)}
    app_cmd = [sys.executable, "-m", "uvicorn", "nbhosting_server.app:app_from_env", "--factory",
               "--host", settings.app_host, "--port", str(settings.app_port), "--workers", str(workers),
               "--no-server-header", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
    caddy = shutil.which("caddy")
    if caddy is None:
        print("nbh: caddy is not installed (apt-get install caddy)", file=sys.stderr)
        return 2
    caddy_cmd = [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
    children = {"uvicorn": subprocess.Popen(app_cmd, env=env),
                "caddy": subprocess.Popen(caddy_cmd, env={**env, **caddy_environment(settings)})}
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
            print(f"open the demo notebook: {base}/notebookLazyCopy/{DEMO_COURSE}/01-welcome.ipynb/{DEMO_STUDENT}")
        print(f"(TLS by Caddy's internal CA; trust {caddy_root_cert(settings)} or accept the warning)", flush=True)
    code = 0
    while not stop["signal"]:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"nbh: {name} exited with {child.returncode}; stopping", file=sys.stderr)
                stop["signal"], code = signal.SIGTERM, 1
        time.sleep(0.2)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    print("nbh: stopped", file=sys.stderr)
    return code


def open_command(settings: Settings, course: str, notebook: str, student: str, wait: bool) -> int:
    """Run the same flow as a click and print the launch as JSON."""
    prepare_host(settings)
    settings = ensure_image(settings)
    try:
        launch = Hub(settings).open_notebook(course, notebook, student, wait=wait)
    except NbhostingError as exc:
        print(json.dumps({"error": exc.reason, "message": exc.message, "detail": str(exc)}), file=sys.stderr)
        return 1
    data = launch.model_dump(mode="json")
    data["url"] = settings.public_url.rstrip("/") + launch.url
    print(json.dumps(data, indent=2))
    return 0


def doctor(settings: Settings) -> int:
    """Print every host check; 1 if a required one fails."""
    from nbhosting_core.system.doctor import diagnose

    if settings.image_rootfs is None:
        from nbhosting_core.system.images import DEFAULT_CONTEXT_DIR, rootfs_path

        settings = settings.model_copy(
            update={"image_rootfs": rootfs_path(DEFAULT_CONTEXT_DIR, settings.effective_images_dir)})
    failed = False
    for check in diagnose(settings):
        mark = ("ok  " if check.ok else "FAIL") if check.required else "info"
        failed |= check.required and not check.ok
        print(f"{mark}  {check.name:<13} {check.detail}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `nbh`."""
    parser = argparse.ArgumentParser(prog="nbh", description="nbhosting administration")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the app and Caddy in the foreground")
    p_serve.add_argument("--demo", action="store_true", help="install the demo course first")
    p_serve.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    p_open = sub.add_parser("open", help="open a notebook for a student, as a click would; prints JSON")
    p_open.add_argument("course")
    p_open.add_argument("notebook")
    p_open.add_argument("student")
    p_open.add_argument("--no-wait", action="store_true", help="do not wait for Jupyter to answer")
    sub.add_parser("image", help="build (or find in cache) the notebook image; prints its rootfs")
    sub.add_parser("demo", help="install the demo course")
    sub.add_parser("doctor", help="check what this host gives nbhosting (exit 1 if something required fails)")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        return serve(settings, demo=args.demo, workers=args.workers)
    if args.command == "open":
        return open_command(settings, args.course, args.notebook, args.student, not args.no_wait)
    if args.command == "image":
        prepare_host(settings)
        print(ensure_image(settings).image_rootfs)
        return 0
    if args.command == "doctor":
        return doctor(settings)
    if args.command == "demo":
        prepare_host(settings)
        print(ensure_demo_course(settings.courses_dir))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
