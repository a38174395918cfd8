"""What students can do, on the real stack (`nbh serve --demo`: Caddy, the app as its own user, the helper as root):
a share made from the student's server's host, read by anyone on nbhosting's origin, revoked; a workspace
downloaded; another student's cookie refused; the share's token in no log."""

from __future__ import annotations

import html
import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from nbhosting_core.access import COOKIE_NAME
from nbhosting_core.naming import user_name
from tests.e2e.conftest import Served
from tests.e2e.ui import css, open_notebook_ui, until

NOTEBOOK = "01-welcome.ipynb"


def student_base(served: Served, key: str) -> str:
    if served.settings.origin_mode == "subdomain":
        return f"{served.server_origin(key)}/_nbh/student"
    return f"{served.server_origin(key)}/{served.settings.url_prefix}/{key}/_nbh/student"


def test_a_student_shares_anyone_reads_it_inert_and_revoking_makes_it_404(served: Served) -> None:
    key, cookie = served.sign_in(NOTEBOOK, "student-e2e-alice")
    base = student_base(served, key)
    mine = {"Cookie": f"{COOKIE_NAME}={cookie}", "Origin": served.server_origin(key)}
    status, _, _, body = served.request(f"{base}/share?notebook={NOTEBOOK}", mine, method="POST")
    assert status == 200, body[:500]
    match = re.search(rb"/share\?s=([A-Za-z0-9_-]{43})", body)
    assert match, body[:800]
    token = match.group(1).decode()

    status, headers, cookies, page = served.request(f"/share?s={token}")  # nbhosting's origin, no cookie
    assert status == 200 and b"jp-Notebook" in page and not cookies
    assert headers["content-security-policy"] == "sandbox"
    assert headers["x-content-type-options"] == "nosniff" and "noindex" in headers["x-robots-tag"]

    status, _, _, _ = served.request(f"{base}/unshare?notebook={NOTEBOOK}", {"Cookie": mine["Cookie"]}, method="POST")
    assert status == 403  # no Origin: refused as any write from elsewhere
    status, _, _, body = served.request(f"{base}/unshare?notebook={NOTEBOOK}", mine, method="POST")
    assert status == 200, body[:300]
    assert served.request(f"/share?s={token}")[0] == 404
    assert token not in served.log_path.read_text(errors="replace")


def workspace_of(served: Served, student: str) -> Path:
    return served.settings.students_dir / user_name(served.student_id(student), served.settings.user_prefix) / "demo"


def make_it_theirs(path: Path, words: str) -> bytes:
    """The student's copy, changed as their own work (a cell of ``words``), owned by them: its new bytes."""
    node = json.loads(path.read_bytes())
    node["cells"].append({"cell_type": "markdown", "metadata": {}, "source": words})
    owner = path.stat()
    path.write_text(json.dumps(node))
    os.chown(path, owner.st_uid, owner.st_gid)
    return path.read_bytes()


def test_a_student_downloads_their_workspace_and_another_students_cookie_is_refused(served: Served) -> None:
    key, cookie = served.sign_in(NOTEBOOK, "student-e2e-bob")
    other_key, other_cookie = served.sign_in(NOTEBOOK, "student-e2e-carol")
    base = student_base(served, key)
    mine = {"Cookie": f"{COOKIE_NAME}={cookie}"}
    theirs = make_it_theirs(workspace_of(served, "student-e2e-bob") / NOTEBOOK, "bob's own words")

    # the menu's page lists the notebook, with a link to download it: followed as the browser would, through Caddy
    status, _, _, page = served.request(f"{base}/", mine)
    assert status == 200, page[:500]
    links = [html.unescape(u) for u in re.findall(r'href="([^"]*)"', page.decode())]
    download = f"{base}/download?notebook={NOTEBOOK}"
    assert download in [served.server_origin(key) + u for u in links], links
    assert f"{base.removeprefix(served.server_origin(key))}/share?notebook={NOTEBOOK}" in links
    status, headers, _, body = served.request(download, mine)
    assert status == 200 and headers["content-type"].startswith("application/x-ipynb+json")
    assert body == theirs

    status, headers, _, body = served.request(f"{base}/download-workspace", mine)
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        assert f"demo/{NOTEBOOK}" in z.namelist()
        assert z.read(f"demo/{NOTEBOOK}") == theirs
    status, _, _, _ = served.request(f"{base}/download-workspace", {"Cookie": f"{COOKIE_NAME}={other_cookie}"})
    assert status == 403
    assert served.request(f"{base}/download-workspace")[0] == 403
    assert served.request(f"{base}/", {"Cookie": f"{COOKIE_NAME}={other_cookie}"})[0] == 403


def test_the_notebook_ui_has_a_my_work_menu_and_a_course_copy_opens_trusted(served: Served, browser: Any) -> None:
    key = open_notebook_ui(served, browser, served.launch_path(NOTEBOOK, "student-e2e-dave"), NOTEBOOK)
    until(
        browser,
        lambda b: any(e.text == "My work" for e in css(b, ".lm-MenuBar-itemLabel")),
        lambda: f"no 'My work' menu: {[e.text for e in css(browser, '.lm-MenuBar-itemLabel')]}",
    )
    [menu] = [e for e in css(browser, ".lm-MenuBar-item") if e.text == "My work"]
    menu.click()
    until(
        browser,
        lambda b: "Download my workspace (zip)" in [e.text for e in css(b, ".lm-Menu-itemLabel")],
        lambda: f"its items: {[e.text for e in css(browser, '.lm-Menu-itemLabel')]}",
    )
    assert "Not Trusted" not in browser.find_element("tag name", "body").text
    # its first item opens, in a new tab, the page that lists the notebook with its actions
    notebook_tab = browser.current_window_handle
    [item] = [e for e in css(browser, ".lm-Menu-item") if e.text.startswith("Reset, backups")]
    item.click()
    until(browser, lambda b: len(b.window_handles) > 1, lambda: "the menu's item opened no tab")
    browser.switch_to.window([h for h in browser.window_handles if h != notebook_tab][0])
    until(
        browser,
        lambda b: any(e.text == NOTEBOOK for e in css(b, "li.notebook code")),
        lambda: f"the overview lists no {NOTEBOOK}: {browser.find_element('tag name', 'body').text[:500]}",
    )
    # first, the notebook the menu was opened from (its page's Referer), with its actions
    [row] = css(browser, "li.notebook.current")
    assert row.text.startswith(NOTEBOOK), row.text
    assert all(word in row.text for word in ("Download", "Share…", "Reset…", "Backups (0)")), row.text
    browser.close()
    browser.switch_to.window(notebook_tab)
    # the same check sees an untrusted notebook: one that did not come from the course
    user = user_name(served.student_id("student-e2e-dave"), served.settings.user_prefix)
    workspace = served.settings.students_dir / user / "demo"
    node = json.loads((workspace / NOTEBOOK).read_bytes())
    node["cells"].append({"cell_type": "code", "metadata": {}, "source": "2", "outputs": [], "execution_count": None})
    (workspace / "foreign.ipynb").write_text(json.dumps(node))
    os.chown(workspace / "foreign.ipynb", (workspace / NOTEBOOK).stat().st_uid, (workspace / NOTEBOOK).stat().st_gid)
    browser.get(served.server_url(key, "notebooks/foreign.ipynb"))
    until(
        browser,
        lambda b: "Not Trusted" in b.find_element("tag name", "body").text,
        lambda: "a foreign notebook is not shown as 'Not Trusted'",
    )
