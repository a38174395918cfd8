"""Recovery on real rootless podman: the app killed in the middle of starts, and a host rebooted under students.

Whatever was cut half-way, the next start-up (``nbh serve``'s :func:`~nbhosting_server.serve.prepare`, which
reconciles) and the students' next clicks must leave every student exactly one working server, their files
as they were, and no stale record, socket folder or mount. Each test has its own students (root only).
"""

from __future__ import annotations

import os
import uuid

import pytest

from nbhosting_core import Hub, ServerState, ensure_layout
from tests.support import installation, jupyter_call

pytestmark = pytest.mark.podman

NOTEBOOK = "01-welcome.ipynb"
LAUNCH_DEADLINE = 180.0  # cold starts on a busy 2-core host: generous, fails clearly


def student(tag: str) -> str:
    return f"rec-{tag}-{uuid.uuid4().hex[:6]}"


def test_reconcile_never_touches_the_students_of_another_installation_on_the_host(settings, rootfs):
    hub = Hub(settings)
    launch = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, student("theirs")), timeout=LAUNCH_DEADLINE)
    with installation(rootfs) as other:  # same uid range, its own folders, records and podman storage
        ensure_layout(other)
        report = Hub(other).reconcile()
        assert launch.container not in report.adopted + report.removed
        assert not (other.run_dir / "podman" / f"{launch.user}.sock").exists()  # no podman service started there
        assert not (other.users_run_dir / str(launch.uid)).exists()
        assert not (other.podman_dir / launch.user).exists()
        assert not list(other.servers_dir.iterdir())
    server = hub.backend.find(launch.key)
    assert server is not None and server.state is ServerState.RUNNING and hub.backend.is_ready(server)


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_a_server_found_without_its_record_is_recorded_again_when_launched(settings, state):
    # what a crash leaves when podman finishes a creation after reconcile dropped its "creating" record
    hub = Hub(settings)
    launch = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, student(f"norec-{state}")), timeout=LAUNCH_DEADLINE)
    if state == "stopped":
        hub.stop(launch.container)
    (settings.servers_dir / f"{launch.container}.json").unlink()
    (settings.running_dir / f"{launch.key}.json").unlink(missing_ok=True)
    again = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, launch.student_id), timeout=LAUNCH_DEADLINE)
    assert again.key == launch.key and again.action.value == ("reuse" if state == "running" else "start")
    assert [s.state for s in hub.backend.list_servers() if s.name == launch.container] == [ServerState.RUNNING]
    cookie = hub.access_cookie(again)
    assert hub.authorize(f"/{settings.url_prefix}/{again.key}/api/status", [cookie.value]).allowed


def test_an_account_cut_before_its_home_was_handed_over_is_finished_at_the_next_click(settings):
    hub = Hub(settings)
    sid = student("home")
    account = hub.accounts.ensure(sid)
    os.chown(account.home, 0, 0)  # a crash between making the home (as root) and giving it to the student
    launch = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, sid), timeout=LAUNCH_DEADLINE)
    assert launch.state.value == "ready" and launch.uid == account.uid
    assert account.home.stat().st_uid == account.uid


def test_a_course_folder_cut_before_it_was_handed_over_is_the_students_at_the_next_click(settings):
    hub = Hub(settings)
    sid = student("folder")
    account = hub.accounts.ensure(sid)
    (account.home / "demo").mkdir()  # a crash between making the course folder (as root) and its chown
    launch = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, sid), timeout=LAUNCH_DEADLINE)
    assert (account.home / "demo").stat().st_uid == account.uid
    new_file = {"type": "file", "format": "text", "content": "mine"}
    assert jupyter_call(settings, hub.secret, launch.key, "PUT", "api/contents/new.txt", new_file)[0] == 201
