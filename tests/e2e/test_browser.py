"""A student in headless Chromium, through Caddy over HTTPS, against the real stack (`nbh serve --demo`).

The tests of this module run in order and share one browser (alice's): the first one runs and saves a cell,
the next ones build on it.
"""

from __future__ import annotations

import hashlib
import json
import pwd
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbhosting_core.access import COOKIE_NAME
from nbhosting_core.naming import user_name
from tests.e2e.conftest import Served

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

ALICE, BOB = "e2e-alice", "e2e-bob"
WELCOME, LOOPS = "01-welcome.ipynb", "02-loops.ipynb"
SOURCE = "6*7"
UI_TIMEOUT = 60.0  # launch (account, copy, container, Jupyter) + Notebook 7 UI + kernel
SCREENSHOT = Path("/tmp/nbh-e2e-notebook.png")
NO_COOKIE_TITLE = "Open this notebook from your course"  # the app's 401 page (see nbhosting_server.app)
BAD_COOKIE_TITLE = "Not your notebook"  # its 403 page


# ----------------------------------------------------------------------------------------------- helpers


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


def notebook_url_re(served: Served, notebook: str) -> re.Pattern[str]:
    prefix = served.settings.url_prefix
    return re.compile(rf"^{re.escape(served.base_url)}/{prefix}/([0-9a-f]{{40}})/notebooks/{re.escape(notebook)}$")


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
    pattern = notebook_url_re(served, notebook)
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


def student_copy(served: Served, student: str, notebook: str, course: str = "demo") -> Path:
    user = user_name(served.student_id(student), served.settings.user_prefix)
    return served.settings.students_dir / user / course / notebook


def course_original(served: Served, notebook: str, course: str = "demo") -> Path:
    return served.settings.courses_dir / course / notebook


def cell_text(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def output_texts(cell: dict[str, Any]) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        plain = output.get("data", {}).get("text/plain", output.get("text", ""))
        texts.append("".join(plain) if isinstance(plain, list) else str(plain))
    return texts


def saved_cell(path: Path) -> dict[str, Any] | None:
    """The code cell of ``path`` whose source is SOURCE and which has an output 42, if the file has it."""
    try:
        notebook = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None  # not there yet, or caught mid-write
    for cell in notebook.get("cells", []):
        if (
            cell.get("cell_type") == "code"
            and cell_text(cell).strip() == SOURCE
            and any(text.strip() == "42" for text in output_texts(cell))
        ):
            return cell
    return None


def cookie_value(set_cookies: list[str], name: str) -> str:
    for header in set_cookies:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {name} cookie in {set_cookies!r}")


def alice_key(served: Served, browser: Any) -> str:
    """Alice's server key: from the first test, or by opening her notebook now."""
    if "alice_key" not in served.state:
        served.state["alice_key"] = open_notebook_ui(served, browser, served.launch_path(WELCOME, ALICE), WELCOME)
    return str(served.state["alice_key"])


# ------------------------------------------------------------------------------------------------- tests


def test_student_runs_a_cell_and_saves(served: Served, browser: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    original = course_original(served, WELCOME)
    original_digest = hashlib.sha256(original.read_bytes()).hexdigest()
    copy = student_copy(served, ALICE, WELCOME)

    key = open_notebook_ui(served, browser, served.launch_path(WELCOME, ALICE), WELCOME)
    served.state["alice_key"] = key
    assert copy.is_file(), f"the launch did not give alice her copy at {copy}"
    before = copy.read_bytes()
    assert saved_cell(copy) is None, "alice's fresh copy already holds the edited cell"

    # replace the first code cell's source, then run it
    cell = css(browser, ".jp-Notebook .jp-CodeCell")[0]
    editor = cell.find_element("css selector", ".cm-content")
    editor.click()
    ActionChains(browser).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(SOURCE).perform()
    until(
        browser,
        lambda _: editor.text.strip() == SOURCE,
        lambda: f"the cell's source is {editor.text!r}, not {SOURCE!r}",
        timeout=10,
    )
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()

    def has_42(_: Any) -> bool:
        outputs = cell.find_elements("css selector", ".jp-OutputArea-output")
        return any(o.text.strip() == "42" for o in outputs)

    until(
        browser,
        has_42,
        lambda: (
            f"no output 42 after running {SOURCE!r} (does the kernel's websocket get "
            f"through Caddy?): {describe_page(browser)}\nbrowser console: {console(browser)}"
        ),
    )
    prompt = cell.find_element("css selector", ".jp-InputPrompt").text
    assert re.fullmatch(r"\[\d+\]:", prompt.strip()), f"the cell was not executed by a kernel: prompt {prompt!r}"
    browser.save_screenshot(str(SCREENSHOT))
    print(f"\nscreenshot of the notebook with its output: {SCREENSHOT}")

    # save (Accel-S, in command mode after Shift-Enter) and wait for the file on disk
    ActionChains(browser).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    until(
        browser,
        lambda _: saved_cell(copy) is not None,
        lambda: f"{copy} never got the cell {SOURCE!r} with its output 42 after Ctrl-S",
        timeout=20,
    )

    data = copy.read_bytes()
    assert data != before
    notebook = json.loads(data)  # valid JSON
    assert notebook.get("nbformat") == 4
    owner = copy.stat().st_uid
    alice = pwd.getpwnam(user_name(served.student_id(ALICE), served.settings.user_prefix))
    assert owner == alice.pw_uid != 0, f"{copy} is owned by uid {owner}, not by alice ({alice.pw_uid})"

    assert hashlib.sha256(original.read_bytes()).hexdigest() == original_digest, "the course's original changed"
    original_cells = json.loads(original.read_bytes())["cells"]
    assert all(cell_text(c).strip() != SOURCE for c in original_cells), "the course's original has the edit"
    assert SOURCE not in original.read_text()


def test_reopening_keeps_the_students_version(served: Served, browser: Any) -> None:
    key = served.state.get("alice_key")
    if key is None:
        pytest.fail("needs test_student_runs_a_cell_and_saves to have run first (in this module)")
    again = open_notebook_ui(served, browser, served.launch_path(WELCOME, ALICE), WELCOME)
    assert again == key, "reopening started another notebook server"
    until(
        browser,
        lambda b: SOURCE in [s.strip() for s in code_cell_sources(b)],
        lambda: f"the reopened notebook lost the student's {SOURCE!r}: {code_cell_sources(browser)}",
        timeout=20,
    )
    assert saved_cell(student_copy(served, ALICE, WELCOME)) is not None, "alice's copy was overwritten"


def test_other_students_key_is_refused(served: Served, browser: Any) -> None:
    # bob, from Python: the progress page's JSON polls (?status=1), until his server is ready
    launch, set_cookies = served.launch_json(WELCOME, BOB)
    assert launch["state"] == "ready", launch
    prefix = served.settings.url_prefix
    match = re.fullmatch(rf"/{prefix}/([0-9a-f]{{40}})/notebooks/{re.escape(WELCOME)}", launch["url"])
    assert match, f"unexpected launch URL {launch['url']!r}"
    bob_key = match.group(1)
    bob_cookie = cookie_value(set_cookies, COOKIE_NAME)
    mine = alice_key(served, browser)
    assert bob_key != mine

    # control: bob's cookie opens bob's server (so the refusals below are about the key, not the request)
    status, _, _, body = served.request(f"/{prefix}/{bob_key}/api/status", {"Cookie": f"{COOKIE_NAME}={bob_cookie}"})
    assert status == 200 and b"started" in body, (status, body[:300])

    # alice's browser on bob's server: an nbhosting refusal, not Jupyter
    for path in (f"/{prefix}/{bob_key}/notebooks/{WELCOME}", f"/{prefix}/{bob_key}/api/contents"):
        browser.get(served.url(path))
        until(
            browser,
            lambda b: b.title in (NO_COOKIE_TITLE, BAD_COOKIE_TITLE),
            lambda path=path: f"no refusal page for {path}: {describe_page(browser)}",
            timeout=20,
        )
        text = browser.find_element("tag name", "body").text
        assert re.search(r"Error 40[13]\.", text), text
        assert WELCOME not in text and LOOPS not in text and '"content"' not in text, (
            f"Jupyter content leaked at {path}: {text[:500]!r}"
        )
        assert not css(browser, "[class*='jp-']"), f"Jupyter UI at {path}"
        assert css(browser, "main.error h1"), f"not nbhosting's error page at {path}"
        status, _, _, body = served.request(path)  # the same, without cookie, as a status code
        assert status == 401, (path, status, body[:300])

    # bob's cookie, forged onto alice's server: refused with 403
    status, _, _, body = served.request(f"/{prefix}/{mine}/api/status", {"Cookie": f"{COOKIE_NAME}={bob_cookie}"})
    assert status == 403, (status, body[:300])
    assert BAD_COOKIE_TITLE.encode() in body and b'"started"' not in body


def test_legacy_prefix_works(served: Served, browser: Any) -> None:
    mine = alice_key(served, browser)
    started = time.monotonic()
    key = open_notebook_ui(served, browser, served.launch_path(LOOPS, ALICE, prefix="ipythonExercice"), LOOPS)
    assert key == mine, "the legacy URL opened another server than alice's"
    assert any("squares" in s for s in code_cell_sources(browser)), code_cell_sources(browser)
    assert student_copy(served, ALICE, LOOPS).is_file()
    print(f"\nlegacy URL to notebook UI in {time.monotonic() - started:.1f} s")


def test_a_cold_launch_shows_the_progress_page_then_redirects(served: Served) -> None:
    path = served.launch_path("01-welcome.ipynb", "e2e-carol")
    status, headers, cookies, body = served.request(path)
    assert status == 200, status  # a new student: the server is starting, the page says so at once
    assert b"Starting your notebook" in body and b"status=1" in body
    assert any("Partitioned" in c and "SameSite=None" in c and "HttpOnly" in c for c in cookies)
    ready, _ = served.launch_json("01-welcome.ipynb", "e2e-carol")
    assert ready["state"] == "ready"
    status, headers, _, _ = served.request(path)
    assert status == 302 and headers["location"] == ready["url"]


def test_a_notebook_embedded_in_a_course_page_iframe_works(served: Served, browser: Any) -> None:
    """The course page lives on another site (the platform's origin, http://127.0.0.1:PORT, vs https://localhost):
    the launch sets its cookie inside the iframe (SameSite=None; Secure; Partitioned), the notebook and its kernel
    come up, framed as the platforms' origins allow (Jupyter's own policy, with their frame-ancestors)."""
    launch = served.url(served.launch_path(LOOPS, "e2e-dave"))
    page = served.course.put(
        "/week1.html",
        f'<!doctype html><title>Course</title><h1>Week 1</h1><iframe id="nb" src="{launch}" width="1200" height="800">'
        "</iframe>",
    )
    browser.get(page)
    frame = browser.find_element("id", "nb")
    browser.switch_to.frame(frame)
    pattern = notebook_url_re(served, LOOPS)
    try:

        def embedded_ready(b: Any) -> bool:
            url = b.execute_script("return location.href")
            if css(b, "main.error"):
                return True
            return (
                bool(pattern.match(url))
                and bool(css(b, ".jp-Notebook-ExecutionIndicator[data-status='idle']"))
                and any("Python" in e.text for e in css(b, ".jp-KernelName"))
            )

        until(browser, embedded_ready, lambda: f"no notebook in the iframe: {describe_page(browser)}")
        assert not css(browser, "main.error"), describe_page(browser)
        assert pattern.match(browser.execute_script("return location.href"))
    finally:
        browser.switch_to.default_content()
