"""A student's browser for benchmarks: Debian's headless Chromium through chromedriver and the DevTools protocol.

What it measures, from the click (navigating to a launch URL) on: the notebook UI shown, the kernel ready (idle),
and the first output of ``6*7`` typed in a new cell and run with Shift+Enter as soon as the UI says idle (a run with
no output within :data:`LOST_AFTER` seconds is counted lost, run again, and the time taken to that output). Bytes
are the ``encodedDataLength`` of every ``Network.loadingFinished`` in Chromium's performance log (headers included,
websocket frames not). Certificates are trusted by SPKI (``--ignore-certificate-errors-spki-list``), as a user who
trusts the issuing root would be: Chromium caches nothing from a connection with a certificate error.

The pure parts (:func:`spki_sha256`, :func:`median`) need no browser.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import ssl
import statistics
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.phases import Breakdown, breakdown
from tests.e2e.conftest import CHROMEDRIVER, chromium_options

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download a browser or a driver

LOST_AFTER = 10.0  # seconds without output after Shift+Enter: the run was dropped
TIMEOUT = 120.0
POLL = 0.05
SOURCE, EXPECTED = "6*7", "42"


@dataclass(frozen=True)
class Link:
    """Network conditions emulated by Chromium (DevTools ``Network.emulateNetworkConditions``); None: loopback."""

    name: str
    mbit: float | None = None  # down and up
    latency_ms: float = 0.0

    def cdp(self) -> dict[str, Any] | None:
        if self.mbit is None:
            return None
        rate = self.mbit * 1_000_000 / 8  # bytes per second
        return {"offline": False, "latency": self.latency_ms, "downloadThroughput": rate, "uploadThroughput": rate}


LOOPBACK = Link("loopback")
SLOW = Link("20 Mbit/s + 40 ms", 20.0, 40.0)


# ------------------------------------------------------------------------------------------------- pure parts


def spki_sha256(der_certificate: bytes) -> str:
    """Base64 SHA-256 of a certificate's SubjectPublicKeyInfo: what ``--ignore-certificate-errors-spki-list`` takes."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = x509.load_der_x509_certificate(der_certificate).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def pem_to_der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


#: the renderer's counters the breakdown reports: main-thread seconds spent in ...
BUSY = {"ScriptDuration": "script", "TaskDuration": "all tasks", "LayoutDuration": "layout"}


def busy(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The main thread's seconds between two ``Performance.getMetrics`` (a new renderer, e.g. another origin's
    page, starts its counters at zero: then its own counters are the run's)."""
    out: dict[str, float] = {}
    for metric, name in BUSY.items():
        if metric in after:
            spent = after[metric] - before.get(metric, 0.0)
            out[name] = spent if spent >= 0 else after[metric]
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (a process gone counts 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def host_busy_seconds() -> float:
    """CPU seconds the whole host spent busy so far (every core; idle and iowait excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def served_certificate(port: int, server_name: str, host: str = "127.0.0.1") -> bytes:
    """The DER leaf certificate served on ``host:port`` for SNI ``server_name`` (not verified: only its key is used)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


# ------------------------------------------------------------------------------------------------- the browser


@dataclass
class Timings:
    """One student's click to UI / kernel idle / first output (seconds), and what their browser received."""

    ui: float | None = None
    idle: float | None = None
    output: float | None = None
    lost: bool = False
    bytes: int = 0
    responses: int = 0
    cached: int = 0  # responses served from the browser's cache
    error: str | None = None
    url: str = ""  # where the browser ended (the notebook's URL)
    phases: Breakdown = field(default_factory=Breakdown)  # where the wait went (Chromium's network records)
    main_thread: dict[str, float] = field(default_factory=dict)  # renderer's busy seconds (Performance.getMetrics)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the run: the browser's, the rest's


@dataclass
class Browser:
    """One student's Chromium (one profile); :meth:`close` removes the profile."""

    link: Link
    spki: list[str] = field(default_factory=list)
    driver: Any = None
    profile: str = ""

    def start(self) -> Browser:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="nbh-bbench-chromium-", dir="/tmp")
        pins = [f"--ignore-certificate-errors-spki-list={','.join(self.spki)}"] if self.spki else []
        options = chromium_options(self.profile, *pins, performance_log=True)
        options.page_load_strategy = "none"  # driver.get returns at once: the benchmark polls what the page shows
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Performance.enable", {})
        if encoding := os.environ.get("NBH_BENCH_ACCEPT_ENCODING"):  # an experiment: e.g. identity, no compression
            self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Accept-Encoding": encoding}})
        conditions = self.link.cdp()
        if conditions is not None:
            self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)
        return self

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    # ---------------------------------------------------------------------------------------- measuring

    def drain_log(self) -> list[dict[str, Any]]:
        return [json.loads(e["message"])["message"] for e in self.driver.get_log("performance")]

    def count_network(self, timings: Timings, events: list[dict[str, Any]]) -> None:
        for event in events:
            params = event.get("params", {})
            if event.get("method") == "Network.loadingFinished":
                timings.bytes += int(params.get("encodedDataLength", 0))
                timings.responses += 1
            elif event.get("method") == "Network.responseReceived":
                response = params.get("response", {})
                timings.cached += bool(response.get("fromDiskCache") or response.get("fromMemoryCache"))

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of this browser (chromedriver and every process below it), and of the whole host."""
        from bench.memory import descendants

        return cpu_seconds(descendants(self.driver.service.process.pid)), host_busy_seconds()

    def metrics(self) -> dict[str, float]:
        """The page's renderer counters (seconds of main-thread script, tasks, layout, style)."""
        with contextlib.suppress(Exception):
            answer = self.driver.execute_cdp_cmd("Performance.getMetrics", {})
            return {str(m["name"]): float(m["value"]) for m in answer.get("metrics", [])}
        return {}

    def css(self, selector: str) -> list[Any]:
        return list(self.driver.find_elements("css selector", selector))

    def _until(self, condition: Callable[[], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except Exception:  # noqa: BLE001, S112 - the page is navigating: ask again
                pass
            time.sleep(POLL)
        raise TimeoutError(f"{what} (page {self.driver.current_url!r})")

    def ui_shown(self) -> bool:
        return "/notebooks/" in urllib.parse.urlsplit(self.driver.current_url).path and bool(
            self.css(".jp-Notebook .jp-CodeCell .cm-content")
        )

    def kernel_idle(self) -> bool:
        idle = self.css(".jp-Notebook-ExecutionIndicator[data-status='idle']")
        return bool(idle) and any("Python" in e.text for e in self.css(".jp-KernelName"))

    def outputs_42(self) -> int:
        """Cells whose source is SOURCE and whose output is EXPECTED."""
        script = """
            return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].filter(c => {
              const src = c.querySelector('.cm-content');
              if (!src || src.innerText.trim() !== arguments[0]) return false;
              return [...c.querySelectorAll('.jp-OutputArea-output')].some(o => o.innerText.trim() === arguments[1]);
            }).length;"""
        return int(self.driver.execute_script(script, SOURCE, EXPECTED))

    def new_cell_and_run(self) -> None:
        """Below the first code cell: a new cell (Escape, b), edit it (Enter), type SOURCE, Shift+Enter."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        editor = self.css(".jp-Notebook .jp-CodeCell .cm-content")[0]
        editor.click()
        chain = ActionChains(self.driver).send_keys(Keys.ESCAPE).send_keys("b").send_keys(Keys.ENTER)
        chain.send_keys(SOURCE).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()

    def rerun_new_cell(self) -> None:
        """The student's second try: click into the cell holding SOURCE with no output, Shift+Enter again."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        for editor in self.css(".jp-Notebook .jp-CodeCell .cm-content"):
            if editor.text.strip() == SOURCE:
                editor.click()
                ActionChains(self.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
                return
        raise RuntimeError(f"no cell holds {SOURCE!r} to run again")

    def open_and_run(self, url: str, login: Callable[[Browser, float], None] | None = None) -> Timings:
        """Click ``url`` and time it to the UI, the idle kernel, the first output of SOURCE in a new cell.

        ``login``: fills a login form if one shows (the peer's), given a deadline; its time counts.
        """
        timings = Timings()
        self.drain_log()
        counters = self.metrics()
        browser_cpu, host_cpu = self.cpu()
        click_wall = time.time()
        start = time.monotonic()
        deadline = start + TIMEOUT
        try:
            self.driver.get(url)
            if login is not None:
                login(self, deadline)
            self._until(self.ui_shown, deadline, "no notebook UI")
            timings.ui = time.monotonic() - start
            self._until(self.kernel_idle, deadline, "no idle kernel")
            timings.idle = time.monotonic() - start
            before = self.outputs_42()
            self.new_cell_and_run()
            try:
                self._until(lambda: self.outputs_42() > before, time.monotonic() + LOST_AFTER, "no output")
            except TimeoutError:
                timings.lost = True
                self.rerun_new_cell()
                self._until(lambda: self.outputs_42() > before, deadline, f"no output of {SOURCE} after a second run")
            timings.output = time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            timings.error = f"{type(exc).__name__}: {str(exc)[:300]}"
        browser_now, host_now = self.cpu()
        timings.cpu = {
            "browser": browser_now - browser_cpu,
            "rest": (host_now - host_cpu) - (browser_now - browser_cpu),
        }
        time.sleep(0.5)  # what was still arriving for the page
        events = self.drain_log()
        if dump := os.environ.get("NBH_BENCH_EVENTS"):  # a folder: each run's records, to read a breakdown by hand
            Path(dump, f"{time.time():.0f}.json").write_text(json.dumps(events))
        self.count_network(timings, events)
        timings.phases = breakdown(events, click_wall, timings.ui, timings.idle, timings.output)
        timings.main_thread = busy(counters, self.metrics())
        with contextlib.suppress(Exception):
            timings.url = str(self.driver.current_url)
        return timings
