"""The staff pages in headless Chromium, with screenshots checked for what must show.

The app runs under uvicorn on a local port (plain http: the session cookie is ``nbh-staff``), around the admin test
app (tests/admin_app.py: a hub on the fake backend, staff ada (admin), tom (teacher of demo), ned (teacher of
other)); a few days of launches on the fake backend give the statistics their data. No Caddy and no podman: the
pages are the app's alone. Screenshots are saved under a temporary folder whose path each assertion's message
names; the plots' screenshots are read back (tests/e2e/pixels.py) to check they are not blank.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_notebook

from tests.admin_app import PASSWORD, AdminApp, make_admin_app
from tests.e2e.conftest import chromium, require_browser
from tests.e2e.pixels import decode_png
from tests.support import free_port

pytestmark = [pytest.mark.e2e]

DAY = 86400
STUDENTS = ["test:alice", "test:bob", "test:carol", "test:dave", "test:x%41y"]


class Site:
    """The admin app served by uvicorn in a thread, and where the screenshots go."""

    def __init__(self, admin: AdminApp, port: int, shots: Path) -> None:
        self.admin = admin
        self.base = f"http://127.0.0.1:{port}"
        self.shots = shots

    def url(self, path: str) -> str:
        return self.base + path


def with_launches(admin: AdminApp) -> None:
    """Five days of opens of two notebooks by a few students (each start seen ready), alice's server running."""
    course = admin.settings.courses_dir / "demo"
    nbformat.write(new_notebook(), str(course / "b.ipynb"))
    hub, clock = admin.hub, admin.clock
    for day in range(5):
        clock.now += DAY
        for n, student in enumerate(STUDENTS[: 2 + day % 4]):
            notebook = "a.ipynb" if (n + day) % 2 else "b.ipynb"
            hub.open_notebook("demo", notebook, student)
            clock.now += 2
            hub.launch_status("demo", notebook, student)
        hub.sample()
    for student in STUDENTS:
        hub.open_notebook("demo", "a.ipynb", student)
    clock.now += 2
    for student in STUDENTS:
        hub.launch_status("demo", "a.ipynb", student)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    import uvicorn

    admin = make_admin_app(tmp_path_factory.mktemp("admin-app"))
    with_launches(admin)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(admin.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Site(admin, port, tmp_path_factory.mktemp("admin-screenshots"))
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def browser(site: Site) -> Iterator[Any]:
    """A fresh headless Chromium (no session) for each test."""
    with chromium("nbh-admin-chromium-", page_load_timeout=30) as driver:
        yield driver


def shot(site: Site, driver: Any, name: str) -> Path:
    """A screenshot of the whole window, saved as ``name``.png; its path."""
    path = site.shots / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot {path}"
    return path


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def wait_for(driver: Any, condition: Any, what: str, timeout: float = 10.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: condition(d), message=what)


def log_in(site: Site, driver: Any, username: str, path: str) -> None:
    """Open ``path``: the login page comes first; log in through its form, and land on ``path``."""
    driver.get(site.url(path))
    assert "/admin/login?next=" in driver.current_url, driver.current_url
    css(driver, "#username")[0].send_keys(username)
    css(driver, "#password")[0].send_keys(PASSWORD)
    css(driver, "form.stacked button[type=submit]")[0].click()
    try:
        wait_for(driver, lambda d: d.current_url == site.url(path), f"back at {path} after the login")
    except Exception as exc:  # noqa: BLE001 - re-raised with what the browser shows
        where = shot(site, driver, f"login-{username}-failed")
        text = css(driver, "main")[0].text if css(driver, "main") else driver.page_source[:500]
        raise AssertionError(f"login as {username}: at {driver.current_url}: {text!r}: see {where}") from exc


def only_local_assets(driver: Any, site: Site) -> list[str]:
    """The resources the page loaded from anywhere but the site (none expected)."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [name for name in names if not name.startswith(site.base + "/")]


def test_a_teacher_logs_in_and_sees_the_course_its_statistics_and_its_servers(site, browser):
    log_in(site, browser, "tom", "/admin/courses/demo")
    path = shot(site, browser, "1-course")
    assert css(browser, "h1")[0].text == "Course demo", f"see {path}"
    assert css(browser, "form.try button")[0].is_displayed(), f"the Try button must show: see {path}"
    width = browser.execute_script("return getComputedStyle(document.querySelector('main')).maxWidth")
    assert width == "1152px", f"the app's stylesheet must apply (main.wide: 72rem), got {width}: see {path}"
    assert only_local_assets(browser, site) == [], f"see {path}"

    css(browser, 'a[href="/admin/courses/demo/statistics"]')[0].click()
    wait_for(browser, lambda d: "/statistics" in d.current_url, "the statistics page")
    path = shot(site, browser, "2-statistics")
    plots = css(browser, "figure svg")
    assert len(plots) >= 3, f"{len(plots)} plots: see {path}"
    for n, plot in enumerate(plots[:3]):
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
        size = plot.size
        assert plot.is_displayed() and size["width"] > 100 and size["height"] > 50, f"plot {n} is {size}: see {path}"
        png = plot.screenshot_as_png
        plot_path = site.shots / f"2-statistics-plot{n}.png"
        plot_path.write_bytes(png)
        image = decode_png(png)
        assert image.ink() > 0.01 and len(image.colors()) > 4, (
            f"plot {n} looks blank ({image.ink():.3%} drawn, {len(image.colors())} colours): see {plot_path}"
        )
    text = css(browser, "main")[0].text
    assert "students ever" in text and css(browser, ".figures b")[0].text == str(len(STUDENTS)), f"see {path}"

    browser.get(site.url("/admin/servers?course=demo"))
    path = shot(site, browser, "3-servers-teacher")
    row = css(browser, 'tr[data-student="test:alice"]')
    assert row, f"the servers table must list test:alice: see {path}"
    assert row[0].find_element("css selector", 'button[data-action="stop"]').is_displayed(), f"see {path}"
    assert "running" in row[0].text and "fake-image" in row[0].text, f"see {path}"


def test_a_student_id_with_a_percent_sign_reaches_its_log_through_its_link(site, browser):
    log_in(site, browser, "tom", "/admin/servers?course=demo")
    row = css(browser, 'tr[data-student="test:x%41y"]')
    assert row, f"see {shot(site, browser, '4-servers-percent')}"
    row[0].find_element("css selector", 'a[href$="/logs"]').click()
    wait_for(browser, lambda d: d.current_url.endswith("/logs"), "the log's page")
    path = shot(site, browser, "4-log")
    assert css(browser, "h1")[0].text == "Log of test:x%41y in demo", f"decoded once: see {path}"
    assert "[fake]" in css(browser, "pre.log")[0].text, f"see {path}"


def test_a_teacher_of_another_course_sees_neither_the_servers_nor_a_stop_button(site, browser):
    log_in(site, browser, "ned", "/admin/servers")
    path = shot(site, browser, "5-servers-other-teacher")
    assert not css(browser, 'tr[data-student="test:alice"]'), f"see {path}"
    assert not css(browser, 'button[data-action="stop"]'), f"see {path}"
    browser.get(site.url("/admin/servers?course=demo"))
    path = shot(site, browser, "5-servers-refused")
    assert css(browser, "h1")[0].text == "Not allowed", f"see {path}"


def test_an_admin_stops_a_server_with_its_button(site, browser):
    log_in(site, browser, "ada", "/admin/servers")
    assert css(browser, 'a[href="/admin/host"]'), "the admin's navigation has the host"
    row = css(browser, 'tr[data-student="test:bob"]')
    path = shot(site, browser, "6-servers-admin")
    assert row and row[0].find_element("css selector", 'button[data-action="stop"]').is_displayed(), f"see {path}"
    row[0].find_element("css selector", 'button[data-action="stop"]').click()
    wait_for(browser, lambda d: css(d, "p.flash"), "the flash message after Stop")
    path = shot(site, browser, "6-stopped")
    assert css(browser, "p.flash")[0].text == "Stopped the server of test:bob in demo.", f"see {path}"
    row = css(browser, 'tr[data-student="test:bob"]')[0]
    assert "stopped" in row.text and not row.find_elements("css selector", 'button[data-action="stop"]'), f"see {path}"
    server = next(v.server for v in site.admin.hub.list_servers() if v.server.student_id == "test:bob")
    assert server.state.value == "stopped"

    browser.get(site.url("/admin/host"))
    path = shot(site, browser, "7-host")
    plots = css(browser, "figure svg")
    assert len(plots) >= 4 and all(p.size["width"] > 100 for p in plots), f"see {path}"
