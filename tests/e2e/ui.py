"""Driving a student's browser and reading a served stack: helpers shared by the end-to-end test modules."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from nbhosting_core.system.secretfile import load_or_create_secret, secret_owners
from tests.e2e.conftest import Served
from tests.support import jupyter_call

UI_TIMEOUT = 60.0  # launch (account, copy, container, Jupyter) + Notebook 7 UI + kernel


def wait(browser: Any, timeout: float = UI_TIMEOUT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1)


def until(browser: Any, condition: Callable[[Any], Any], what: Callable[[], str], timeout: float = UI_TIMEOUT) -> None:
    """Wait for ``condition``; on time-out fail with ``what()``, computed then (the page as it is at the end)."""
    from selenium.common.exceptions import TimeoutException

    try:
        wait(browser, timeout).until(condition)
        return
    except TimeoutException:
        pass
    pytest.fail(f"after {timeout:.0f} s: {what()}", pytrace=False)


def css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def describe_page(browser: Any) -> str:
    """What the browser shows, for failure messages."""
    try:
        text = browser.find_element("tag name", "body").text[:600]
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        text = f"(no body: {exc!r})"
    return f"url={browser.current_url!r} title={browser.title!r} text={text!r}"


def open_notebook_ui(served: Served, browser: Any, launch_path: str, notebook: str) -> str:
    """Open a launch URL; wait (through the progress page) for Notebook 7 with an idle Python kernel.

    Returns the server key from the notebook URL.
    """
    pattern = served.notebook_url_re(notebook)
    browser.get(served.url(launch_path))

    def ui_ready(b: Any) -> bool:
        if not pattern.match(b.current_url):
            # nbhosting's error pages (e.g. 503) are final: no need to wait for the time-out
            return bool(css(b, "main.error"))
        if not css(b, ".jp-Notebook .jp-CodeCell .cm-content"):
            return False
        # the kernel is connected (its name is shown, not "No Kernel") and idle
        names = [e.text for e in css(b, ".jp-KernelName")]
        idle = css(b, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
        return bool(idle) and any("Python" in name for name in names)

    until(
        browser,
        ui_ready,
        lambda: (
            f"no Notebook 7 with an idle kernel for {launch_path}: "
            f"{describe_page(browser)}\nbrowser console: {console(browser)}"
        ),
    )
    match = pattern.match(browser.current_url)
    assert match is not None, f"the launch of {launch_path} failed: {describe_page(browser)}"
    return match.group(1)


def console(browser: Any) -> list[str]:
    try:
        return [
            f"{e['level']} {e['message'][:300]}"
            for e in browser.get_log("browser")
            if e["level"] in ("SEVERE", "WARNING")
        ][-15:]
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return [f"(no console log: {exc!r})"]


def code_cell_sources(browser: Any) -> list[str]:
    return [e.text for e in css(browser, ".jp-Notebook .jp-CodeCell .cm-content")]


def run_first_cell(browser: Any, source: str, expected: str) -> Any:
    """Replace the first code cell's source with ``source``, run it (Shift-Enter), wait for ``expected`` as its
    output; the cell."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    cell = css(browser, ".jp-Notebook .jp-CodeCell")[0]
    editor = cell.find_element("css selector", ".cm-content")
    editor.click()
    ActionChains(browser).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(source).perform()
    until(
        browser,
        lambda _: editor.text.strip() == source,
        lambda: f"the cell's source is {editor.text!r}, not {source!r}",
        timeout=10,
    )
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()

    def has_output(_: Any) -> bool:
        outputs = cell.find_elements("css selector", ".jp-OutputArea-output")
        return any(o.text.strip() == expected for o in outputs)

    # Notebook 7 can drop a run asked for right as its kernel turns idle (no [*], no output: see HOST-NOTES): a
    # cell still unrun after a while is run again, as its student would
    from selenium.common.exceptions import TimeoutException

    try:
        wait(browser, 15).until(has_output)
    except TimeoutException:
        if cell.find_element("css selector", ".jp-InputPrompt").text.strip() in ("", "[ ]:"):
            editor.click()
            ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    until(
        browser,
        has_output,
        lambda: (
            f"no output {expected} after running {source!r} (does the kernel's websocket get "
            f"through Caddy?): {describe_page(browser)}\nbrowser console: {console(browser)}"
        ),
    )
    prompt = cell.find_element("css selector", ".jp-InputPrompt").text
    assert re.fullmatch(r"\[\d+\]:", prompt.strip()), f"the cell was not executed by a kernel: prompt {prompt!r}"
    return cell


def kernels(served: Served, key: str) -> list[str]:
    """The ids of the kernels running in the server ``key`` (asked of Jupyter directly, as root)."""
    secret = load_or_create_secret(served.settings.secret_file, owners=secret_owners(served.settings.app_user))
    status, body = jupyter_call(served.settings, secret, key, "GET", "api/kernels")
    assert status == 200, body[:300]
    return [k["id"] for k in json.loads(body)]


def serve_log_since(served: Served, offset: int) -> str:
    """What `nbh serve` (the app, Caddy) logged since ``offset`` bytes."""
    with open(served.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")
