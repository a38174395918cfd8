"""A student in headless Chromium, through Caddy over HTTPS, against the real stack (`nbh serve --demo`).

Each notebook server on its own origin (``https://<key>.nb.localhost:18443``, the default): a launch on nbhosting's
origin hands the access cookie over to the server's origin with a one-time ticket. The tests of this module run in
order and share one browser (alice's): the first one runs and saves a cell, the next ones build on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from nbhosting_core.access import COOKIE_NAME
from nbhosting_core.naming import user_name
from nbhosting_core.system.secretfile import load_or_create_secret, secret_owners
from nbhosting_core.system.services import service_group
from tests.e2e.conftest import Served
from tests.e2e.ui import (
    code_cell_sources,
    css,
    describe_page,
    kernels,
    open_notebook_ui,
    run_first_cell,
    serve_log_since,
    until,
)
from tests.support import execute_request, jupyter_call

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

ALICE, BOB = "e2e-alice", "e2e-bob"
WELCOME, LOOPS = "01-welcome.ipynb", "02-loops.ipynb"
SOURCE = "6*7"
SCREENSHOT = Path("/tmp/nbh-e2e-notebook.png")
NO_COOKIE_TITLE = "Open this notebook from your course"  # the app's 401 page (see nbhosting_server.app)
BAD_COOKIE_TITLE = "Not your notebook"  # its 403 page


# ----------------------------------------------------------------------------------------------- helpers


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
    assert browser.current_url.startswith(served.server_origin(key) + "/"), "not on the server's own origin"
    assert copy.is_file(), f"the launch did not give alice her copy at {copy}"
    before = copy.read_bytes()
    assert saved_cell(copy) is None, "alice's fresh copy already holds the edited cell"

    run_first_cell(browser, SOURCE, "42")
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


def test_a_students_cookie_opens_their_server_only_and_is_never_sent_to_another_servers_origin(
    served: Served, browser: Any
) -> None:
    bob_key, bob_cookie = served.sign_in(WELCOME, BOB)  # bob, from Python: polls, then the ticket
    mine = alice_key(served, browser)
    assert bob_key != mine

    # control: bob's cookie opens bob's server (so the refusals below are about the key, not the request)
    status, _, _, body = served.request(
        served.server_url(bob_key, "api/status"), {"Cookie": f"nbh_access={bob_cookie}"}
    )
    assert status == 200 and b"started" in body, (status, body[:300])

    # alice's browser on bob's server: her cookie is her server's host's only, so the browser sends none there
    for path in (f"notebooks/{WELCOME}", "api/contents"):
        url = served.server_url(bob_key, path)
        browser.get(url)
        until(
            browser,
            lambda b: b.title in (NO_COOKIE_TITLE, BAD_COOKIE_TITLE),
            lambda url=url: f"no refusal page for {url}: {describe_page(browser)}",
            timeout=20,
        )
        text = browser.find_element("tag name", "body").text
        assert browser.title == NO_COOKIE_TITLE and "Error 401." in text, "alice's cookie was sent to bob's server"
        assert WELCOME not in text and LOOPS not in text and '"content"' not in text, (
            f"Jupyter content leaked at {url}: {text[:500]!r}"
        )
        assert not css(browser, "[class*='jp-']"), f"Jupyter UI at {url}"
        assert css(browser, "main.error h1"), f"not nbhosting's error page at {url}"
        assert browser.get_cookies() == [], "the browser holds a cookie for bob's server's host"
        status, _, _, body = served.request(url)  # the same, without cookie, as a status code
        assert status == 401, (url, status, body[:300])

    # bob's cookie, forged onto alice's server: refused with 403
    status, _, _, body = served.request(served.server_url(mine, "api/status"), {"Cookie": f"nbh_access={bob_cookie}"})
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


def test_a_cold_launch_shows_the_progress_page_then_goes_to_the_servers_origin_with_a_one_time_ticket(
    served: Served,
) -> None:
    path = served.launch_path("01-welcome.ipynb", "e2e-carol")
    status, headers, cookies, body = served.request(path)
    assert status == 200, status  # a new student: the server is starting, the page says so at once
    assert b"Starting your notebook" in body and b"status=1" in body
    assert cookies == []  # nbhosting's origin never holds a server's cookie
    ready = served.launch_json("01-welcome.ipynb", "e2e-carol")
    assert ready["state"] == "ready"
    status, headers, cookies, _ = served.request(path)
    assert status == 302 and cookies == []
    ticket_url = headers["location"]
    key = ticket_url.split("/")[2].split(".")[0]
    assert ticket_url.startswith(f"{served.server_origin(key)}/_nbh/ticket?t=")

    status, headers, cookies, _ = served.request(ticket_url)
    assert status == 302 and headers["location"] == f"/nb/{key}/notebooks/01-welcome.ipynb"
    [cookie] = cookies
    attributes = {a.strip().split("=")[0] for a in cookie.split(";")[1:]}
    assert attributes == {"Max-Age", "Path", "Secure", "HttpOnly", "SameSite", "Partitioned"}  # no Domain
    assert "Path=/;" in cookie and "SameSite=None" in cookie

    status, _, cookies, body = served.request(ticket_url)  # the same ticket again
    assert status == 403 and cookies == [] and b"used already" in body
    status, _, cookies, _ = served.request(ticket_url.replace(key, "f" * 40, 1))  # on another server's host
    assert status in (403, 404) and cookies == []
    log = served.log_path.read_text(errors="replace")
    ticket = urllib.parse.parse_qs(urllib.parse.urlsplit(ticket_url).query)["t"][0]
    assert ticket not in log and ticket.rsplit(".", 1)[1] not in log, "a ticket reached the log"
    assert "ticket-spent" in log


def test_a_launch_in_an_iframe_of_a_course_page_runs_a_cell_and_that_page_cannot_use_its_cookie(
    served: Served, browser: Any
) -> None:
    """The course page is on another site (the platform's origin, http://127.0.0.1:PORT): the launch goes to the
    server's origin inside the iframe, whose ticket sets the cookie there (SameSite=None; Secure; Partitioned), and
    a cell runs. The course page itself then tries the student's server with that cookie: a kernel websocket and
    a write are refused, by forward-auth, for their origin."""
    launch = served.url(served.launch_path(LOOPS, "e2e-dave"))
    page = served.course.put(
        "/week1.html",
        f'<!doctype html><title>Course</title><h1>Week 1</h1><iframe id="nb" src="{launch}" width="1200" height="800">'
        "</iframe>",
    )
    browser.get(page)
    browser.switch_to.frame(browser.find_element("id", "nb"))
    pattern = served.notebook_url_re(LOOPS)
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
        match = pattern.match(browser.execute_script("return location.href"))
        assert match is not None
        key = match.group(1)
        run_first_cell(browser, "6*7", "42")
    finally:
        browser.switch_to.default_content()

    # the course page (top level, the platform's origin) tries the student's server with the student's cookie
    [kernel] = kernels(served, key)
    ws_url = served.server_origin(key).replace("https:", "wss:") + f"/nb/{key}/api/kernels/{kernel}/channels"
    offset = served.log_path.stat().st_size
    opened = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const ws = new WebSocket(arguments[0]);
        ws.onopen = () => { ws.close(); done("open"); };
        ws.onerror = () => done("refused");
        setTimeout(() => done("timeout"), 20000);
        """,
        ws_url,
    )
    assert opened == "refused", f"a course page opened the student's kernel websocket: {opened}"
    write = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "POST", mode: "no-cors", credentials: "include",
                             headers: {"Content-Type": "text/plain"}, body: "{}"})
          .then(() => done("sent"), (e) => done("failed " + e));
        """,
        served.server_url(key, "api/kernels"),
    )
    assert write == "sent"  # no-cors: the page cannot read the answer, but Jupyter would have acted on it
    assert kernels(served, key) == [kernel], "a course page started a kernel in the student's server"
    until(
        browser,
        lambda _: serve_log_since(served, offset).count(f"to key={key[:8]}: other-origin") >= 2,
        lambda: f"forward-auth did not refuse both for their origin:\n{serve_log_since(served, offset)[-2000:]}",
        timeout=10,
    )


def test_a_cross_site_websocket_and_a_cross_site_write_with_a_students_cookie_are_refused(served: Served) -> None:
    from websockets.exceptions import InvalidStatus

    key, cookie = served.sign_in(WELCOME, "e2e-frank")
    own = served.server_origin(key)
    other_server = served.server_origin("e" * 40)
    secret = load_or_create_secret(served.settings.secret_file, owners=secret_owners(served.settings.app_user))
    status, body = jupyter_call(served.settings, secret, key, "POST", "api/kernels", {"name": "python3"})
    assert status == 201, body[:300]
    kernel = json.loads(body)["id"]
    ws_url = own.replace("https:", "wss:") + f"/nb/{key}/api/kernels/{kernel}/channels"
    with_cookie = {"Cookie": f"nbh_access={cookie}"}

    for origin in ("https://evil.example", other_server, served.base_url, served.course.origin, "null"):
        with pytest.raises(InvalidStatus) as refused:
            served.websocket(ws_url, {**with_cookie, "Origin": origin})
        assert refused.value.response.status_code == 403, origin
        assert b"can only come from the notebook itself" in refused.value.response.body
        status, _, _, body = served.request(
            served.server_url(key, "api/contents/evil.txt"),
            {**with_cookie, "Origin": origin, "Content-Type": "application/json"},
            method="PUT",
            body=json.dumps({"type": "file", "format": "text", "content": "pwned"}).encode(),
        )
        assert status == 403 and b"can only come from the notebook itself" in body, (origin, status)
    assert not (student_copy(served, "e2e-frank", "evil.txt")).exists()

    # control: from the server's own origin, the same websocket runs code and the same write lands
    with served.websocket(ws_url, {**with_cookie, "Origin": own}) as ws:
        request = execute_request("print(6 * 7)")
        msg_id = request["header"]["msg_id"]  # type: ignore[index]
        ws.send(json.dumps(request))
        deadline = time.monotonic() + 30
        out = ""
        while "42" not in out and time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=30))
            if message.get("msg_type") == "stream" and message["parent_header"].get("msg_id") == msg_id:
                out += message["content"]["text"]
        assert "42" in out
    status, _, _, body = served.request(
        served.server_url(key, "api/contents/mine.txt"),
        {**with_cookie, "Origin": own, "Content-Type": "application/json"},
        method="PUT",
        body=json.dumps({"type": "file", "format": "text", "content": "mine"}).encode(),
    )
    assert status in (200, 201), (status, body[:300])
    assert student_copy(served, "e2e-frank", "mine.txt").read_text() == "mine"


def test_jupyters_own_policy_is_kept_and_a_servers_service_worker_scope_is_never_widened(served: Served) -> None:
    key, cookie = served.sign_in(WELCOME, "e2e-erin")
    with_cookie = {"Cookie": f"nbh_access={cookie}"}
    expected = f"frame-ancestors 'self' {served.base_url} {served.course.origin}; report-uri /nb/{key}/"
    status, headers, _, _ = served.request(served.server_url(key, f"notebooks/{WELCOME}"), with_cookie)
    assert status == 200 and headers["content-security-policy"].startswith(expected), headers
    status, headers, _, _ = served.request(served.server_url(key, f"files/{WELCOME}"), with_cookie)
    assert status == 200 and headers["content-security-policy"].endswith("; sandbox allow-scripts"), headers
    assert headers["content-security-policy"].startswith(expected)

    # what a student's server sends is theirs (their kernel can serve anything in Jupyter's place): Caddy passes
    # it, but never a Service-Worker-Allowed that would give a service worker more than its own folder. Another
    # student's server, never proxied to yet (Caddy would reuse a kept-alive connection to the Jupyter it replaces)
    key, cookie = served.sign_in(WELCOME, "e2e-gina")
    with_cookie = {"Cookie": f"nbh_access={cookie}"}
    import http.server
    import socketserver
    import threading

    class StudentsOwn(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Service-Worker-Allowed", "/")
            self.end_headers()
            self.wfile.write(b"self.addEventListener('fetch', () => {});")

        def log_message(self, *args: Any) -> None:
            pass

    class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        def get_request(self) -> Any:
            request, _ = super().get_request()
            return request, ("student", 0)

    link = served.settings.jupyter_sockets_dir / key / "jupyter.sock"
    link.unlink()
    server = UnixServer(str(link), StudentsOwn)
    os.chown(link, -1, service_group(served.settings.caddy_user) or -1)  # what root gives a student's socket
    os.chmod(link, 0o660)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, headers, _, body = served.request(served.server_url(key, "sw.js"), with_cookie)
    finally:
        server.shutdown()
        server.server_close()
        link.unlink()
    assert status == 200 and b"addEventListener" in body, (status, body[:200])
    assert "service-worker-allowed" not in headers, headers


def test_the_demo_link_nbh_serve_prints_opens_the_notebook(served: Served, browser: Any) -> None:
    printed = re.search(r"open the demo notebook [^:]*: (https://\S+)", served.log_path.read_text(errors="replace"))
    assert printed, "nbh serve --demo printed no demo link"
    browser.get(printed.group(1))
    pattern = served.notebook_url_re(WELCOME)
    until(
        browser,
        lambda b: bool(pattern.match(b.current_url)) and bool(css(b, ".jp-Notebook .jp-CodeCell .cm-content")),
        lambda: f"the demo link opened no notebook: {describe_page(browser)}",
    )


def test_the_second_demo_link_opens_a_course_whose_own_image_draws_a_plot(served: Served, browser: Any) -> None:
    log = served.log_path.read_text(errors="replace")
    printed = re.search(r"a course with its own image [^:]*: (https://\S+)", log)
    assert printed, "nbh serve --demo printed no link to the data-science course"
    assert printed.group(1).startswith(served.base_url), printed.group(1)
    open_notebook_ui(served, browser, printed.group(1).removeprefix(served.base_url), "01-plot.ipynb")
    source = "import pandas as pd; pd.Series([1, 3, 2]).plot(title='own image'); print('plotted')"
    cell = run_first_cell(browser, source, "plotted")
    until(
        browser,
        lambda _: bool(cell.find_elements("css selector", ".jp-OutputArea-output img")),
        lambda: f"no plot drawn: {describe_page(browser)}",
    )


def test_caddys_own_endpoints_of_the_app_are_not_reachable_from_outside(served: Served) -> None:
    """The review's /_nbh/auth%0A: Caddy matched the exact path while the app's router ignored a final newline."""
    key, cookie = served.sign_in(WELCOME, "e2e-probe")
    for path in ("/_nbh/auth", "/_nbh/auth%0A", "/_nbh/auth/", "/_nbh/auth/x", "/_nbh/tls-ask?domain=x"):
        for url in (served.url(path), served.server_origin(key) + path):
            status, headers, _, body = served.request(
                url,
                {"Cookie": f"{COOKIE_NAME}={cookie}", "X-Forwarded-Uri": f"/nb/{key}/", "X-Forwarded-Method": "GET"},
            )
            assert status == 404, (url, status, body[:200])
            assert "authorization" not in headers and b"token " not in body, url
