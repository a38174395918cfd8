"""What a new student's browser downloads, counted by Chromium itself (its DevTools network events).

Each test opens the notebook in a fresh headless Chromium with performance logging on, and sums what the network
events say: the responses, and the bytes received on the wire (``encodedDataLength``: headers and body as they
travelled, compressed or not). The figures are printed (``-s``) for the README.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import CHROMEDRIVER, CHROMIUM, Served, require_browser
from tests.e2e.ui import open_notebook_ui

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

WELCOME = "01-welcome.ipynb"
#: the issue's target for a new student's first page load
MAX_BYTES = 2_000_000


@dataclass
class PageLoad:
    """What the network events of one page load add up to."""

    responses: int
    bytes: int
    encodings: dict[str, int]  # Content-Encoding (or "identity") -> responses
    urls: list[str]


def new_browser() -> Any:
    """A fresh headless Chromium (empty cache, no cookie) that logs its network events."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="nbh-e2e-pageload-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--ignore-certificate-errors",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(90)
    driver._nbh_profile = profile  # noqa: SLF001 - removed with the browser
    return driver


def close_browser(driver: Any) -> None:
    profile = driver._nbh_profile  # noqa: SLF001
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def page_load(driver: Any) -> PageLoad:
    """The network events logged since the last call, summed."""
    responses: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.responseReceived":
            responses[params["requestId"]] = params["response"]
        elif method == "Network.loadingFinished":
            sizes[params["requestId"]] = int(params.get("encodedDataLength", 0))
    # the browser's own pages (chrome://) are not the stack's
    responses = {rid: r for rid, r in responses.items() if r.get("url", "").startswith(("https:", "http:"))}
    encodings: dict[str, int] = {}
    for response in responses.values():
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        encoding = headers.get("content-encoding", "identity")
        encodings[encoding] = encodings.get(encoding, 0) + 1
    return PageLoad(
        responses=len(responses),
        bytes=sum(sizes.get(rid, 0) for rid in responses),
        encodings=encodings,
        urls=[r["url"] for r in responses.values()],
    )


@pytest.fixture
def fresh_browser(served: Served) -> Iterator[Any]:
    driver = new_browser()
    try:
        yield driver
    finally:
        close_browser(driver)


def test_a_new_students_first_page_load_is_compressed_and_small(served: Served, fresh_browser: Any) -> None:
    started = time.monotonic()
    open_notebook_ui(served, fresh_browser, served.launch_path(WELCOME, "e2e-pageload"), WELCOME)
    elapsed = time.monotonic() - started
    load = page_load(fresh_browser)
    print(
        f"\nnew student, first page load: {load.responses} responses, {load.bytes / 1e6:.2f} MB on the wire, "
        f"encodings {load.encodings}, click to idle kernel {elapsed:.1f} s"
    )
    assert load.bytes <= MAX_BYTES, f"{load.bytes} bytes"
