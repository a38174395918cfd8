"""What students can do with their notebooks, for real (root, rootless podman, real Jupyter and nbconvert):
a share rendered in the student's own container, as them; a reset's backup theirs; a zip without their links."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile

import pytest

from nbhosting_core import Hub
from nbhosting_core.shares import read_page
from tests.support import jupyter_call

pytestmark = pytest.mark.podman


@pytest.fixture(scope="module")
def hub(settings):
    return Hub(settings)


def test_a_share_is_rendered_by_nbconvert_in_the_students_container_and_revoked(hub, settings, caplog):
    student = f"int-share-{uuid.uuid4().hex[:6]}"
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", student), timeout=60)
    caplog.set_level("INFO")
    share = hub.work.share("demo", "01-welcome.ipynb", student)
    page = read_page(settings, share.token)
    assert page is not None and page.lstrip().lower().startswith(b"<!doctype html")
    assert b"jp-Notebook" in page or b"jp-Cell" in page  # nbconvert's own markup, not the fake's
    [render] = [r for r in caplog.records if r.getMessage().startswith("render ")]
    assert f"user={launch.user}" in render.getMessage() and "exit 0" in render.getMessage()
    assert not any(share.token in r.getMessage() for r in caplog.records)
    assert hub.work.unshare("demo", "01-welcome.ipynb", student) is not None
    assert read_page(settings, share.token) is None


def test_reset_keeps_a_backup_owned_by_the_student_and_the_zip_leaves_their_links_out(hub, settings):
    student = f"int-reset-{uuid.uuid4().hex[:6]}"
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", student), timeout=60)
    workspace = settings.students_dir / launch.user / "demo"
    os.symlink("/etc/shadow", workspace / "shadow")  # as a student's kernel could
    os.lchown(workspace / "shadow", launch.uid, launch.uid)
    reset = hub.work.reset("demo", "01-welcome.ipynb", student)
    assert reset.backup is not None and reset.copied
    home = settings.students_dir / launch.user
    backup = home / ".nbhosting" / "backups" / "demo" / "01-welcome.ipynb" / f"{reset.backup.id}.ipynb"
    assert backup.stat().st_uid == launch.uid and (workspace / "01-welcome.ipynb").stat().st_uid == launch.uid
    download = hub.work.download_workspace("demo", student)
    with zipfile.ZipFile(io.BytesIO(download.stream.read())) as z:
        assert "demo/shadow" not in z.namelist() and "demo/01-welcome.ipynb" in z.namelist()
        assert all(b"root:" not in z.read(name) for name in z.namelist())


def test_the_notebook_ui_gets_a_my_work_menu_from_nbhostings_settings_overrides(hub, settings):
    student = f"int-menu-{uuid.uuid4().hex[:6]}"
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", student), timeout=60)
    status, body = jupyter_call(
        settings, hub.secret, launch.key, "GET", "lab/api/settings/@jupyterlab/mainmenu-extension:plugin"
    )
    assert status == 200, body[:300]
    menus = json.loads(body)["schema"]["properties"]["menus"]["default"]
    [mine] = [m for m in menus if m["id"] == "jp-mainmenu-nbhosting"]
    assert [i["args"]["url"] for i in mine["items"]] == ["/_nbh/student/", "/_nbh/student/download-workspace"]
