"""Students' pages in the app (TestClient, in-memory backend): only the server's owner acts, writes come from its
own origin, downloads are files, shared pages are inert (sandboxed, not sniffed, not indexed) and revocable."""

from __future__ import annotations

import html
import io
import json
import logging
import re
import urllib.parse
import zipfile

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from starlette.testclient import TestClient

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_core.access import COOKIE_NAME, access_cookie_value
from nbhosting_core.origins import notebook_path, server_origin
from nbhosting_server import create_app
from nbhosting_server.logs import mask_query


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path, mode="subdomain"):
    settings = Settings(
        data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=100, origin_mode=mode, start_timeout=30
    )
    course = settings.courses_dir / "demo"
    course.mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("print('course')")]), str(course / "a.ipynb"))
    hub = Hub(settings, backend=FakeBackend(clock=Clock()), accounts=FakeAccounts(settings.students_dir), clock=Clock())
    client = TestClient(create_app(hub=hub), base_url="https://testserver")
    return hub, client


class Student:
    def __init__(self, hub: Hub, client: TestClient, name: str) -> None:
        self.launch = hub.open_notebook("demo", "a.ipynb", name)
        self.key = self.launch.key
        self.cookie = f"{COOKIE_NAME}={access_cookie_value(hub.secret, self.key, self.launch.user, 1000, 3600)}"
        self.origin = server_origin(hub.settings, self.key)
        self.base = "/_nbh/student" if hub.settings.origin_mode == "subdomain" else f"/nb/{self.key}/_nbh/student"
        self.client = client

    def get(self, path: str, **headers: str):
        return self.client.get(self.base + path, headers={"X-Nbh-Key": self.key, "Cookie": self.cookie, **headers})

    def post(self, path: str, origin: str | None = None, **headers: str):
        sent = {"X-Nbh-Key": self.key, "Cookie": self.cookie, "Origin": origin or self.origin, **headers}
        return self.client.post(self.base + path, headers=sent)


@pytest.fixture(params=["subdomain", "path"])
def setup(request, tmp_path):
    hub, client = make(tmp_path, request.param)
    return hub, client, Student(hub, client, "alice"), Student(hub, client, "bob")


def copy_of(hub, name="alice"):
    return hub.accounts.find(name).home / "demo" / "a.ipynb"


def test_the_owner_resets_sees_the_backup_and_restores_it(setup):
    hub, _, alice, _ = setup
    nbformat.write(new_notebook(cells=[new_code_cell("print('mine')")]), str(copy_of(hub)))
    confirm = alice.get("/reset?notebook=a.ipynb")
    assert confirm.status_code == 200 and 'method="post"' in confirm.text
    done = alice.post("/reset?notebook=a.ipynb")
    assert done.status_code == 200 and "kept as backup" in done.text
    assert "course" in copy_of(hub).read_text()
    [backup] = hub.work.backups("demo", None, "alice")
    listing = alice.get("/backups")
    assert backup.id in listing.text and "Restore" in listing.text
    restored = alice.post(f"/restore?notebook=a.ipynb&backup={backup.id}")
    assert restored.status_code == 200 and "mine" in copy_of(hub).read_text()


def test_another_students_cookie_no_cookie_or_another_hosts_key_are_refused(setup):
    hub, client, alice, bob = setup
    before = copy_of(hub).read_bytes()
    as_bob = client.post(
        alice.base.replace(alice.key, bob.key) + "/reset?notebook=a.ipynb",
        headers={"X-Nbh-Key": alice.key, "Cookie": bob.cookie, "Origin": alice.origin},
    )
    assert as_bob.status_code in (400, 403)
    anonymous = {"X-Nbh-Key": alice.key, "Origin": alice.origin}
    nobody = client.post(alice.base + "/reset?notebook=a.ipynb", headers=anonymous)
    assert nobody.status_code == 403
    no_key = client.get(alice.base + "/download?notebook=a.ipynb", headers={"Cookie": alice.cookie})
    assert no_key.status_code == 403  # not routed by Caddy from the server's host
    assert copy_of(hub).read_bytes() == before and hub.work.backups("demo", None, "alice") == []


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://testserver"])
def test_a_write_from_another_origin_is_refused(setup, origin):
    hub, _, alice, _ = setup
    if origin == "https://testserver" and hub.settings.origin_mode == "path":
        origin = "https://other.example"
    assert alice.post("/reset?notebook=a.ipynb", origin=origin).status_code == 403
    cross = alice.post("/reset?notebook=a.ipynb", origin=alice.origin, **{"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert hub.work.backups("demo", None, "alice") == []


def test_downloads_are_files_and_the_zip_holds_the_workspace(setup):
    hub, _, alice, _ = setup
    notebook = alice.get("/download?notebook=a.ipynb")
    assert notebook.status_code == 200 and notebook.headers["content-type"].startswith("application/x-ipynb+json")
    assert "attachment" in notebook.headers["content-disposition"] and json.loads(notebook.content)["cells"]
    (copy_of(hub).parent / "secret").symlink_to("/etc/shadow")
    workspace = alice.get("/download-workspace")
    assert workspace.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(workspace.content)) as z:
        assert z.namelist() == ["demo/a.ipynb"]


def test_a_share_is_served_inert_on_the_sites_origin_and_gone_once_revoked(setup, caplog):
    hub, client, alice, _ = setup
    page = alice.post("/share?notebook=a.ipynb")
    assert page.status_code == 200 and "/share?s=" in page.text
    [share] = hub.work.shares("demo", "alice")
    caplog.set_level(logging.INFO)
    shared = client.get(f"/share?s={share.token}")
    assert shared.status_code == 200 and "print" in shared.text
    assert shared.headers["content-security-policy"] == "sandbox"
    assert shared.headers["x-content-type-options"] == "nosniff"
    assert "noindex" in shared.headers["x-robots-tag"]
    assert not any(share.token in r.getMessage() for r in caplog.records if r.name.startswith("nbhosting"))
    assert mask_query(f"/share?s={share.token}") == "/share?s=REDACTED"
    assert share.token in alice.get("/share?notebook=a.ipynb").text  # the owner sees the link again
    assert alice.post("/unshare?notebook=a.ipynb").status_code == 200
    gone = client.get(f"/share?s={share.token}")
    assert gone.status_code == 404 and "noindex" in gone.headers["x-robots-tag"]


def test_a_bad_notebook_path_is_a_400(setup):
    _, _, alice, _ = setup
    assert alice.get("/download?notebook=../../etc/passwd").status_code == 400
    assert alice.get("/download").status_code == 400


def urls(page: str) -> list[str]:
    """Where the page's links and forms lead (as the browser reads them: unescaped)."""
    return [html.unescape(u) for u in re.findall(r'(?:href|action)="([^"]*)"', page)]


def test_the_overview_lists_the_students_notebooks_each_with_its_actions(setup):
    hub, _, alice, _ = setup
    nested = copy_of(hub).parent / "w1" / "é & <b>.ipynb"
    nested.parent.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("print('mine')")]), str(nested))
    (copy_of(hub).parent / "notes.txt").write_text("not a notebook")
    hub.work.reset("demo", "a.ipynb", "alice")  # a backup of a.ipynb

    overview = alice.get("/")

    assert overview.status_code == 200 and "<b>" not in overview.text  # a name is text, never markup
    assert "notes.txt" not in overview.text
    found = urls(overview.text)
    for name in ("a.ipynb", "w1/é & <b>.ipynb"):
        query = urllib.parse.urlencode({"notebook": name})
        for action in ("download", "share", "reset", "backups"):
            assert f"{alice.base}/{action}?{query}" in found, (action, name)
        assert notebook_path(hub.settings, alice.key, name) in found  # the name opens the notebook
    assert "Backups (1)" in overview.text and "Backups (0)" in overview.text
    # each link works, as the student's browser follows it
    download = alice.get(f"/download?{urllib.parse.urlencode({'notebook': 'w1/é & <b>.ipynb'})}")
    assert download.status_code == 200 and download.content == nested.read_bytes()
    reset = alice.get(f"/reset?{urllib.parse.urlencode({'notebook': 'a.ipynb'})}")
    assert reset.status_code == 200 and 'method="post"' in reset.text


def test_a_shared_notebooks_row_has_its_link_and_a_revoke_button_that_works(setup):
    hub, client, alice, _ = setup
    share = hub.work.share("demo", "a.ipynb", "alice")
    overview = alice.get("/").text
    assert f"/share?s={share.token}" in overview and "Share…" not in overview
    [revoke] = re.findall(r'<form class="inline" method="post" action="([^"]*)"><button>Revoke', overview)
    revoke = html.unescape(revoke)
    assert revoke == f"{alice.base}/unshare?notebook=a.ipynb"
    assert client.post(revoke, headers={"X-Nbh-Key": alice.key, "Cookie": alice.cookie}).status_code == 403  # no Origin
    done = alice.client.post(revoke, headers={"X-Nbh-Key": alice.key, "Cookie": alice.cookie, "Origin": alice.origin})
    assert done.status_code == 200 and client.get(f"/share?s={share.token}").status_code == 404
    assert "Share…" in alice.get("/").text


def test_the_overview_of_a_student_whose_notebooks_are_gone_still_offers_a_reset(setup):
    hub, _, alice, _ = setup
    hub.work.share("demo", "a.ipynb", "alice")
    copy_of(hub).unlink()
    overview = alice.get("/").text
    assert "No notebook in your workspace yet" in overview
    assert 'name="notebook"' in overview and "/reset" in overview  # the course's version can be had again
    assert "Also shared" in overview  # the share of a deleted notebook can still be revoked
    assert alice.post("/reset?notebook=a.ipynb").status_code == 200 and copy_of(hub).exists()


def test_the_overview_lists_backups_and_shares(setup):
    hub, _, alice, _ = setup
    hub.work.reset("demo", "a.ipynb", "alice")
    hub.work.share("demo", "a.ipynb", "alice")
    overview = alice.get("/")
    assert overview.status_code == 200 and "Backups" in overview.text and "shared link" in overview.text


def test_opened_from_a_notebooks_page_the_overview_shows_that_notebook_first(setup):
    hub, _, alice, bob = setup
    (copy_of(hub).parent / "b.ipynb").write_bytes(copy_of(hub).read_bytes())
    page = alice.origin + notebook_path(hub.settings, alice.key, "b.ipynb")
    first = alice.get("/", Referer=page).text
    [current] = re.findall(r'<li class="notebook current">.*?</li>', first)
    assert "<code>b.ipynb</code>" in current and f"{alice.base}/download?notebook=b.ipynb" in html.unescape(current)
    assert first.index("The notebook you came from") < first.index("Your notebooks")
    # another server's page, a path that is no notebook of the list, no Referer: the list alone
    for referer in (bob.origin + notebook_path(hub.settings, bob.key, "b.ipynb"), page.replace("b.ipynb", "zz.ipynb")):
        assert "notebook current" not in alice.get("/", Referer=referer).text
    assert "notebook current" not in alice.get("/").text
