"""End-to-end fixtures: the real stack (`nbh serve --demo`: Caddy + the app + rootless podman) and headless Chromium.

Everything runs on test ports (HTTPS 18443, HTTP 18080, app 18710) inside a throwaway installation
(:func:`tests.support.installation`), with the shared, cached notebook rootfs. A test module chooses the origin
mode with ``ORIGIN_MODE`` (default ``subdomain``: each server on ``https://<key>.nb.localhost:18443``).

The installation trusts one platform, ``demo`` (written before `nbh serve --demo` starts, which keeps it), whose
course pages come from :class:`CoursePages`, a plain HTTP server on another origin (``http://127.0.0.1:<port>``).

Students are removed with the installation (only those whose home is under its root).

These tests skip when the host cannot run them (not root, or chromium/chromedriver/caddy/podman missing),
except under CI (``CI=true``), where everything is installed: there a missing piece is a failure, so a
broken CI image can never turn the end-to-end tests into silent skips.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nbhosting_core import Settings
from nbhosting_server.demo import DATASCIENCE_COURSE, DEMO_COURSE, DEMO_PLATFORM
from nbhosting_server.serve import caddy_root_cert, settings_environment
from tests.support import built_datascience_image, built_rootfs, free_port, installation, is_root

# Selenium Manager must never try to download a browser or a driver (we pass both paths explicitly).
os.environ.setdefault("SE_OFFLINE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HTTPS_PORT, HTTP_PORT, APP_PORT = 18443, 18080, 18710
BASE_URL = f"https://localhost:{HTTPS_PORT}"
START_TIMEOUT = 90.0  # `nbh serve` up to /_nbh/health answering 200


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false, but fail under CI, where every prerequisite is installed."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI=true but the end-to-end prerequisites are missing: {reason}", pytrace=False)
    pytest.skip(reason)


#: what every headless Chromium of the tests and benchmarks runs with (no background traffic, no GPU, no QUIC)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def chromium_options(profile: str, *flags: str, performance_log: bool = False) -> Any:
    """Selenium's options for Debian's headless Chromium with the ``profile`` folder, :data:`CHROMIUM_FLAGS` and
    ``flags`` (how the certificate is trusted, say); with ``performance_log``, its DevTools network events logged."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, *flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return options


@contextlib.contextmanager
def chromium(prefix: str, *flags: str, page_load_timeout: float, performance_log: bool = False) -> Iterator[Any]:
    """A fresh headless Chromium through chromedriver (Debian's), with a profile folder of its own (``prefix``),
    removed with it; ``flags`` and ``performance_log`` as :func:`chromium_options` takes them."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix=prefix)
    try:
        options = chromium_options(profile, *flags, performance_log=performance_log)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(page_load_timeout)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def require_browser() -> None:
    require(CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing (apt-get install chromium)")
    require(
        CHROMEDRIVER.is_file() and os.access(CHROMEDRIVER, os.X_OK),
        f"{CHROMEDRIVER} is missing (apt-get install chromium-driver)",
    )


def require_stack() -> None:
    require(is_root(), "end-to-end tests create Linux users and run rootless podman: run them as root")
    require(shutil.which("caddy") is not None, "caddy is not installed (apt-get install caddy)")
    require(shutil.which("podman") is not None, "podman is not installed (apt-get install podman)")


def rootfs_with_retries(attempts: int = 3) -> Path:
    """The cached notebook rootfs; another process may be (re)building it, so retry a failure."""
    for attempt in range(1, attempts + 1):
        try:
            return built_rootfs()
        except Exception as exc:  # noqa: BLE001 - reported below if it persists
            if attempt == attempts:
                raise
            print(f"[e2e] building the rootfs failed ({exc!r}); retrying", file=sys.stderr)
            time.sleep(5)
    raise AssertionError("unreachable")


class CoursePages:
    """A course platform's pages, on an origin of their own (``http://127.0.0.1:<port>``): tests put pages in."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.pages: dict[str, bytes] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                page = pages.get(self.path)
                self.send_response(200 if page is not None else 404)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page or b"no such page")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def put(self, path: str, html: str) -> str:
        """Serve ``html`` at ``path``; its URL."""
        self.pages[path] = html.encode()
        return self.origin + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def write_platforms(path: Path, course_origin: str) -> None:
    """The platforms file of the e2e installation: the demo platform, whose pages come from ``course_origin``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "[[platform]]\n"
        f'name = "{DEMO_PLATFORM}"\n'
        f'origins = ["{course_origin}"]\n'
        f'courses = ["{DEMO_COURSE}", "{DATASCIENCE_COURSE}"]\n'
        'methods = ["signed"]\n'
        f'secret = "{secrets.token_urlsafe(32)}"\n'
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to this host's loopback whatever the host name: glibc resolves no ``*.localhost``, but Caddy must
    see the name, in ``Host`` and in TLS SNI (and the certificate is checked against it)."""

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass
class Served:
    """A running `nbh serve --demo` and how to talk to it."""

    settings: Settings
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    ssl_context: ssl.SSLContext  # trusts Caddy's internal CA (hostname checked)
    course: CoursePages
    state: dict[str, Any] = field(default_factory=dict)  # what tests of a module hand over to each other

    def url(self, path: str) -> str:
        return self.base_url + path

    def server_origin(self, key: str) -> str:
        """Where the server ``key`` is served: its own host (mode subdomain) or the site (mode path)."""
        if self.settings.origin_mode == "subdomain":
            return f"https://{key}.{self.settings.effective_servers_domain}:{HTTPS_PORT}"
        return self.base_url

    def server_url(self, key: str, path: str) -> str:
        """A URL of the server ``key``, ``path`` under its base URL (``api/status``, ``notebooks/x.ipynb``)."""
        return f"{self.server_origin(key)}/{self.settings.url_prefix}/{key}/{path.lstrip('/')}"

    def notebook_url_re(self, notebook: str) -> re.Pattern[str]:
        """The URL of ``notebook`` opened in any server (group 1: the key)."""
        prefix, tail = self.settings.url_prefix, f"notebooks/{re.escape(notebook)}"
        if self.settings.origin_mode == "subdomain":
            domain = re.escape(self.settings.effective_servers_domain)
            return re.compile(rf"^https://([0-9a-f]{{40}})\.{domain}:{HTTPS_PORT}/{prefix}/\1/{tail}$")
        return re.compile(rf"^{re.escape(self.base_url)}/{prefix}/([0-9a-f]{{40}})/{tail}$")

    def launch_path(self, notebook: str, student: str, prefix: str = "notebookLazyCopy", course: str = "demo") -> str:
        """A launch URL (path and query) signed by the demo platform, as a course platform makes them."""
        from nbhosting_core.launches import signed_launch_path
        from nbhosting_core.platforms import load_platforms
        from nbhosting_server.demo import DEMO_PLATFORM

        platform = load_platforms(self.settings.effective_platforms_file).get(DEMO_PLATFORM)
        assert platform is not None, "nbh serve --demo made no demo platform"
        return signed_launch_path(platform, course, notebook, student, int(time.time()) + 3600, prefix=prefix)

    def student_id(self, student: str) -> str:
        """nbhosting's id of a demo platform's student."""
        return f"demo:{student}"

    def request(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        timeout: float = 90.0,
        *,
        method: str = "GET",
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], list[str], bytes]:
        """``method`` ``url`` over HTTPS (Caddy's CA trusted), without following redirects.

        ``url``: absolute (any ``*.localhost`` host: connected to 127.0.0.1, the name in Host and SNI), or a path
        of the site. Returns (status, headers lower-cased, every Set-Cookie header, body).
        """
        parts = urllib.parse.urlsplit(url if url.startswith("https://") else self.url(url))
        assert parts.hostname is not None and parts.port is not None, url
        conn = _LoopbackHTTPS(parts.hostname, parts.port, context=self.ssl_context, timeout=timeout)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return (
                resp.status,
                {k.lower(): v for k, v in resp.getheaders()},
                resp.headers.get_all("set-cookie") or [],
                data,
            )
        finally:
            conn.close()

    def launch_json(self, notebook: str, student: str, timeout: float = 90.0) -> dict[str, Any]:
        """What the progress page's script does: poll the launch URL with ?status=1 until the server is ready.

        Returns the last answer (``url``: where to go then, the server's origin with a one-time ticket).
        """
        deadline = time.monotonic() + timeout
        while True:
            status, _, set_cookies, body = self.request(
                self.launch_path(notebook, student) + "&status=1", {"Accept": "application/json"}, timeout=10
            )
            assert status == 200, f"launch of {notebook} for {student} answered {status}: {body[:500]!r}"
            assert not set_cookies, f"a launch set cookies on nbhosting's origin: {set_cookies}"
            answer: dict[str, Any] = json.loads(body)
            if answer["state"] == "ready" or time.monotonic() > deadline:
                return answer
            time.sleep(0.1)

    def sign_in(self, notebook: str, student: str) -> tuple[str, str]:
        """A student's launch followed to the end, from Python: (the server's key, the access cookie's value)."""
        answer = self.launch_json(notebook, student)
        assert answer["state"] == "ready", answer
        status, headers, set_cookies, body = self.request(answer["url"])
        assert status == 302, f"the ticket answered {status}: {body[:300]!r}"
        match = self.notebook_url_re(notebook).match(
            self.server_origin(_key_of(headers["location"])) + headers["location"]
        )
        assert match, headers["location"]
        [cookie] = set_cookies
        name, _, rest = cookie.partition("=")
        return match.group(1), rest.split(";", 1)[0]

    def websocket(self, url: str, headers: dict[str, str]) -> Any:
        """A websocket to ``url`` (``wss://`` on any ``*.localhost`` host) through Caddy; raises
        ``websockets.exceptions.InvalidStatus`` when the handshake is refused."""
        from websockets.sync.client import connect

        parts = urllib.parse.urlsplit(url)
        sock = socket.create_connection(("127.0.0.1", parts.port or 443), 10)
        try:
            return connect(
                url,
                sock=sock,
                ssl=self.ssl_context,
                server_hostname=parts.hostname,
                additional_headers=headers,
                proxy=None,
                open_timeout=30,
            )
        except BaseException:
            sock.close()
            raise

    def log_tail(self, lines: int = 80) -> str:
        return _log_tail(self.log_path, lines)


def _key_of(path: str) -> str:
    """The key in a server's path (``/nb/<key>/...``)."""
    return path.split("/")[2]


def _wait_healthy(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    """Until https://localhost:HTTPS_PORT/_nbh/health answers 200 through Caddy (TLS not verified here)."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"`nbh serve` exited with {process.returncode} while starting; its log:\n"
                + log_path.read_text(errors="replace")[-5000:]
            )
        try:
            with urllib.request.urlopen(BASE_URL + "/_nbh/health", timeout=2, context=insecure) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(
        f"`nbh serve` not healthy after {timeout:.0f} s ({last}); its log:\n"
        + log_path.read_text(errors="replace")[-5000:]
    )


def _ports_free() -> list[int]:
    import socket

    busy = []
    for port in (HTTPS_PORT, HTTP_PORT, APP_PORT):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def _log_tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _print_uncaptured(request: pytest.FixtureRequest, text: str, title: str) -> None:
    """Print past pytest's output capture: a module fixture's teardown output is otherwise never shown."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    message = f"\n----- {title} -----\n{text}\n----- end of {title} -----"
    if capture is None:
        print(message, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        print(message, file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """`nbh serve --demo --workers 2` in a throwaway installation, behind Caddy on https://localhost:18443, in the
    origin mode the module says (``ORIGIN_MODE``, default subdomain)."""
    require_stack()
    require_browser()
    busy = _ports_free()
    assert not busy, f"ports {busy} are already in use: another e2e run (or something else) holds them"
    rootfs = rootfs_with_retries()
    built_datascience_image(rootfs)  # `nbh serve --demo` builds it too: once, before its start-up is timed
    failed_before = request.session.testsfailed
    mode = getattr(request.module, "ORIGIN_MODE", "subdomain")
    course = CoursePages()
    with installation(
        rootfs, https_port=HTTPS_PORT, http_port=HTTP_PORT, app_port=APP_PORT, public_url=BASE_URL, origin_mode=mode
    ) as settings:
        root = settings.data_root.parent
        log_path = root / "serve.log"
        write_platforms(settings.effective_platforms_file, course.origin)
        env = {**os.environ, **settings_environment(settings)}
        cmd = [sys.executable, "-m", "nbhosting_server.cli", "serve", "--demo", "--workers", "2"]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(Path(__file__).resolve().parents[2])
            )
        served = None
        try:
            _wait_healthy(process, log_path, START_TIMEOUT)
            cert = caddy_root_cert(settings)
            assert cert.is_file(), f"Caddy's root certificate is not at {cert}"
            context = ssl.create_default_context(cafile=str(cert))
            served = Served(
                settings=settings,
                base_url=BASE_URL,
                log_path=log_path,
                process=process,
                ssl_context=context,
                course=course,
            )
            yield served
        finally:
            course.close()
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)  # only our `nbh serve`; it stops its uvicorn and Caddy
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
            if request.session.testsfailed > failed_before or served is None:
                _print_uncaptured(request, _log_tail(log_path, 120), f"tail of {log_path} (nbh serve, uvicorn, Caddy)")


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    """Headless Chromium through chromedriver (Debian's), with a fresh profile; shared by the module's tests
    so that they act as one student's browser (alice's cookies)."""
    with chromium("nbh-e2e-chromium-", "--ignore-certificate-errors", page_load_timeout=90) as driver:
        yield driver
