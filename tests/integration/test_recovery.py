"""Recovery on real rootless podman: the app killed in the middle of starts, and a host rebooted under students.

Whatever was cut half-way, the next start-up (``nbh serve``'s :func:`~nbhosting_server.serve.prepare`, which
reconciles) and the students' next clicks must leave every student exactly one working server, their files
as they were, and no stale record, socket folder or mount. Each test has its own students (root only).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbhosting_core import (
    Hub,
    Launch,
    NbhostingError,
    ReconcileReport,
    ServerState,
    Settings,
    ensure_layout,
    signed_launch_path,
)
from nbhosting_core.containers import MARKER
from nbhosting_core.naming import subid_range
from nbhosting_core.platforms import load_platforms
from nbhosting_core.system.cgroups import limiter_for
from nbhosting_core.system.mounts import mounts
from nbhosting_core.system.records import Records, process_uid
from nbhosting_core.system.userpodman import UserPodman
from nbhosting_server.demo import DEMO_PLATFORM, ensure_demo_course, ensure_demo_platform
from nbhosting_server.serve import prepare
from tests.support import App, gate_of, installation, jupyter_call, unmount_below

pytestmark = pytest.mark.podman

NOTEBOOK = "01-welcome.ipynb"
LAUNCH_DEADLINE = 180.0  # ten cold starts at once on a busy 2-core host: generous, fails clearly
NOTES = "my own notes, written before the power cut"


def student(tag: str) -> str:
    return f"rec-{tag}-{uuid.uuid4().hex[:6]}"


def launch_path(settings: Settings, student_id: str) -> str:
    """The demo platform's signed launch URL for ``student_id`` (whose nbhosting id is ``demo:<id>``)."""
    ensure_demo_platform(settings.effective_platforms_file)
    platform = load_platforms(settings.effective_platforms_file).get(DEMO_PLATFORM)
    assert platform is not None
    return signed_launch_path(platform, "demo", NOTEBOOK, student_id, int(time.time()) + 3600)


def scoped(student_id: str) -> str:
    """nbhosting's id of the demo platform's student ``student_id``."""
    return f"{DEMO_PLATFORM}:{student_id}"


def launched_ready(app: App, student_id: str, deadline: float) -> dict[str, str]:
    """What the progress page does: poll the launch until the server is ready; its last answer."""
    while True:
        status, body = app.get(launch_path(app.settings, student_id) + "&status=1", {"Accept": "application/json"})
        assert status == 200, f"the launch of {student_id} answered {status}: {body[:500]!r}\n{app.log_tail()}"
        answer: dict[str, str] = json.loads(body)
        if answer["state"] == "ready":
            return answer
        assert time.monotonic() < deadline, f"{student_id} not ready in time: {answer}\n{app.log_tail()}"
        time.sleep(0.2)


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> Iterator[App]:
    running = App(settings, tmp_path / "app.log")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def reconcile_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="nbhosting_core")
    return caplog


def reconciled(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the backend said it did while reconciling (one line per server or file)."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("reconcile: ")]


def startup_report(caplog: pytest.LogCaptureFixture) -> ReconcileReport:
    """The report of the reconcile the start-up made (the hub logs it whole)."""
    reports = [r.report for r in caplog.records if isinstance(getattr(r, "report", None), ReconcileReport)]
    assert len(reports) == 1, f"the start-up reconciled {len(reports)} times"
    return reports[0]


def host_state(settings: Settings) -> dict[str, object]:
    """Records, run records, socket folders and mounts as they are on disk now (for assertion messages)."""
    records = Records(settings.servers_dir, settings.running_dir)
    return {
        "servers": {r.name: (r.phase, r.key[:8]) for r in records.servers()},
        "runs": sorted(r.key[:8] for r in records.runs()),
        "socket folders": sorted(p.name[:8] for p in settings.jupyter_sockets_dir.iterdir()),
        "mounted": sorted(m.target.name[:8] for m in mounts() if m.target.parent == settings.jupyter_sockets_dir),
    }


def assert_consistent(settings: Settings, hub: Hub) -> set[str]:
    """No half-made record, no stale run record, socket folder or mount: the keys of the running servers."""
    records = Records(settings.servers_dir, settings.running_dir)
    state = host_state(settings)
    assert all(r.phase == "created" for r in records.servers()), state
    running = {s.key for s in hub.backend.list_servers() if s.state is ServerState.RUNNING}
    assert {r.key for r in records.runs()} == running, state
    assert {p.name for p in settings.jupyter_sockets_dir.iterdir()} == running, state
    mounted = {m.target.name for m in mounts() if m.target.parent == settings.jupyter_sockets_dir}
    assert mounted == running, state
    return running


def containers_of(settings: Settings, hub: Hub, student_id: str) -> list[dict[str, object]]:
    account = hub.accounts.find(student_id)
    assert account is not None, f"{student_id} has no account"
    return UserPodman(settings, account).list(MARKER)


def copy_of(settings: Settings, hub: Hub, student_id: str, notebook: str = NOTEBOOK) -> Path:
    account = hub.accounts.find(student_id)
    assert account is not None
    return settings.students_dir / account.user / "demo" / notebook


def test_the_app_killed_during_ten_starts_leaves_each_student_one_working_server(settings, app, reconcile_log):
    students = [student(f"kill{i}") for i in range(10)]
    app.start()
    answers: dict[str, tuple[int, bytes]] = {}
    go = threading.Barrier(len(students))

    paths = {s: launch_path(settings, s) for s in students}

    def click(student_id: str) -> None:
        go.wait()
        answers[student_id] = app.get(paths[student_id])

    clicks = [threading.Thread(target=click, args=(s,)) for s in students]
    for t in clicks:
        t.start()
    # kill as soon as a third server record appears: that server is being created right now, earlier ones
    # may be running already, later students may have an account or not yet
    records = Records(settings.servers_dir, settings.running_dir)
    deadline = time.monotonic() + LAUNCH_DEADLINE
    ids = {scoped(s) for s in students}
    while len([r for r in records.servers() if r.student_id in ids]) < 3:
        assert time.monotonic() < deadline, f"no server creation began:\n{app.log_tail()}"
        time.sleep(0.005)
    app.kill()
    at_kill = host_state(settings)
    for t in clicks:
        t.join(timeout=60)
    ours = [r for r in records.servers() if r.student_id in ids]
    complete = {r.name for r in ours if r.phase == "created" and records.run(r.key) is not None}
    half_made = {r.name for r in ours if r.phase == "creating"}
    # the kill landed mid-way (whatever the timing, some students were cut before their server ran)
    assert len(complete) < len(students), f"every start had finished before the kill: {at_kill}"
    checked = len(records.servers())

    served = prepare(app.settings, demo=True, log=False)  # what `nbh serve` does before its processes start
    report = startup_report(reconcile_log)
    assert half_made <= set(report.adopted) | set(report.removed), (report, at_kill)  # finished, or removed
    assert not complete & set(report.removed + report.adopted), (report, at_kill)  # what ran is left alone
    assert report.checked == checked
    hub = Hub(served)
    assert_consistent(settings, hub)
    app.start()

    deadline = time.monotonic() + LAUNCH_DEADLINE
    for s in students:  # each student clicks again (their first click may have got no answer)
        status, body = app.get(launch_path(settings, s))
        assert status in (200, 302), f"{s}: {status} {body[:300]!r}\n{app.log_tail()}"
    ready = {s: launched_ready(app, s, deadline) for s in students}

    servers = {v.server.student_id: v.server for v in hub.list_servers() if v.server.student_id in ids}
    assert set(servers) == ids
    for s in students:
        server = servers[scoped(s)]
        assert server.state is ServerState.RUNNING and ready[s]["container"] == server.name
        found = containers_of(settings, hub, scoped(s))
        assert len(found) == 1, f"{s} has {len(found)} containers"
        labels = found[0]["Labels"]
        assert isinstance(labels, dict) and labels[MARKER] == server.key
        assert found[0]["State"] == "running"
        status, _ = jupyter_call(settings, hub.secret, server.key, "GET", f"api/contents/{NOTEBOOK}")
        assert status == 200
        copy = copy_of(settings, hub, scoped(s))
        assert copy.read_bytes() == (settings.courses_dir / "demo" / NOTEBOOK).read_bytes()
        assert not list(copy.parent.glob(".nbh-copy-*")), "a half-written copy was left in the workspace"
    running = assert_consistent(settings, hub)
    assert {servers[scoped(s)].key for s in students} <= running
    print("state at the kill:", at_kill, "reconcile:", report, *reconciled(reconcile_log), sep="\n")


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
    cookie = gate_of(hub).access_cookie(again)
    assert gate_of(hub).authorize(f"/{settings.url_prefix}/{again.key}/api/status", [cookie.value]).allowed


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


def kill_every_process_of(uids: set[int]) -> None:
    """What a power cut does to these uids: every process of theirs (servers, conmon, podman, pause) is gone."""
    deadline = time.monotonic() + 30
    while True:
        alive = [pid for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()) if process_uid(pid) in uids]
        if not alive:
            return
        assert time.monotonic() < deadline, f"processes {alive} outlive SIGKILL"
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file below ``home`` with its content (what "the student's files are intact" compares)."""
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def test_after_a_reboot_every_student_gets_their_server_back_with_their_files(rootfs, reconcile_log):
    with installation(rootfs) as s:  # its own RUN_DIR: the "reboot" wipes it
        ensure_layout(s)
        ensure_demo_course(s.courses_dir)
        hub = Hub(s)
        edited, running, stopped = (student(tag) for tag in ("edited", "running", "stopped"))
        before = {
            sid: hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, sid), timeout=LAUNCH_DEADLINE)
            for sid in (edited, running, stopped)
        }
        status, body = jupyter_call(s, hub.secret, before[edited].key, "GET", f"api/contents/{NOTEBOOK}")
        assert status == 200
        notebook = json.loads(body)["content"]
        notebook["cells"][0]["source"] = NOTES
        model = {"type": "notebook", "format": "json", "content": notebook}
        assert jupyter_call(s, hub.secret, before[edited].key, "PUT", f"api/contents/{NOTEBOOK}", model)[0] == 200
        text = {"type": "file", "format": "text", "content": "draft"}
        assert jupyter_call(s, hub.secret, before[edited].key, "PUT", "api/contents/draft.txt", text)[0] == 201
        # (taken while every workspace is mounted: a stopped student's is not, until their next launch)
        files = {sid: snapshot(hub.accounts.find(sid).home) for sid in before}  # type: ignore[union-attr]
        hub.stop(before[stopped].container)

        # the power cut: every process of these students dies, RUN_DIR (a tmpfs) and its mounts are gone
        uids = set()
        for launch in before.values():
            first, count = subid_range(
                launch.uid, uid_min=s.uid_min, subid_base=s.subid_base, subid_count=s.subid_count
            )
            uids |= {launch.uid, *range(first, first + count)}
        kill_every_process_of(uids)
        unmount_below(s.run_dir)
        unmount_below(s.students_dir)  # students' workspaces, and the shared mount they sit in
        shutil.rmtree(s.run_dir)
        for launch in before.values():
            limiter_for(s).release(launch.container)  # a reboot empties the limit groups

        # a fresh start, as `nbh serve` makes it
        ensure_layout(s)
        report = Hub(s).reconcile()
        # nothing runs, nothing stale survived the wipe but the subordinate ids of who worked at the power cut
        held = sorted(f"resources of {before[sid].user}" for sid in (edited, running))
        assert report == ReconcileReport(cleared=held, checked=3), report
        names = {launch.container for launch in before.values()}
        assert {line.split()[1] for line in reconciled(reconcile_log) if line.endswith("starts it again")} == names
        assert not any(p.name.endswith(".json") for p in s.running_dir.iterdir())
        states = {v.server.student_id: v.server.state for v in Hub(s).list_servers()}
        assert states == {sid: ServerState.STOPPED for sid in before}, states

        hub = Hub(s)
        after = {
            sid: hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, sid), timeout=LAUNCH_DEADLINE) for sid in before
        }
        for sid, launch in after.items():
            assert launch.key == before[sid].key and launch.action.value == "start", (sid, launch.action)
            assert snapshot(hub.accounts.find(sid).home) == files[sid]  # type: ignore[union-attr]
        status, body = jupyter_call(s, hub.secret, after[edited].key, "GET", f"api/contents/{NOTEBOOK}")
        assert status == 200 and json.loads(body)["content"]["cells"][0]["source"] == NOTES
        edited_copy = json.loads(copy_of(s, hub, edited).read_text())
        assert "".join(edited_copy["cells"][0]["source"]) == NOTES
        listed = {v.server.student_id: v.server.state for v in hub.list_servers()}
        assert listed == {sid: ServerState.RUNNING for sid in before}, listed
        assert_consistent(s, hub)
        for sid in before:
            assert len(containers_of(s, hub, sid)) == 1
        print("reconcile after the reboot:", report, *reconciled(reconcile_log), sep="\n")


def test_a_running_server_whose_records_were_lost_is_found_again_by_reconcile(settings, reconcile_log):
    hub = Hub(settings)
    launch = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, student("lost")), timeout=LAUNCH_DEADLINE)
    (settings.servers_dir / f"{launch.container}.json").unlink()
    (settings.running_dir / f"{launch.key}.json").unlink()
    assert launch.container not in [s.name for s in hub.backend.list_servers()]
    report = Hub(settings).reconcile()
    assert launch.container in report.adopted
    assert any(launch.container in line and "without a record" in line for line in reconciled(reconcile_log))
    again = Hub(settings).open_notebook("demo", NOTEBOOK, launch.student_id)
    assert again.key == launch.key and again.action.value == "reuse" and again.state.value == "ready"


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


def test_reconcile_run_while_students_launch_never_breaks_a_launch(settings):
    # `nbh reconcile` on a live host: it must not clear what a launch is making right now
    hub = Hub(settings)
    launches: dict[str, object] = {}
    reconciling = threading.Event()
    reports: list[ReconcileReport] = []

    def reconcile_again_and_again() -> None:
        while not reconciling.is_set():
            reports.append(Hub(settings).reconcile())

    def click(student_id: str) -> None:
        try:
            launches[student_id] = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, student_id), timeout=90)
        except NbhostingError as exc:
            launches[student_id] = exc

    Hub(settings).reconcile()  # settle what earlier tests left: the reports below are about these launches
    loop = threading.Thread(target=reconcile_again_and_again)
    loop.start()
    clicks = [threading.Thread(target=click, args=(student(f"live{i}"),)) for i in range(6)]
    try:
        for t in clicks:
            t.start()
        for t in clicks:
            t.join(timeout=120)
    finally:
        reconciling.set()
        loop.join(timeout=60)
    failed = {sid: result for sid, result in launches.items() if not isinstance(result, Launch)}
    assert len(launches) == 6 and not failed, failed
    assert len(reports) > 1  # it did run during the launches
    assert not any(r.removed or r.cleared for r in reports), [r for r in reports if r.removed or r.cleared]
    assert_consistent(settings, hub)


def test_runtime_files_left_by_a_remove_cut_half_way_are_cleared_by_reconcile(settings):
    hub = Hub(settings)
    launch = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, student("cut-rm")), timeout=LAUNCH_DEADLINE)
    account = hub.accounts.find(launch.student_id)
    assert account is not None
    Hub(settings).reconcile()  # settle what earlier tests left: the report below is about this server only
    UserPodman(settings, account).remove(launch.container)  # a remove cut after podman's part and the record's
    (settings.servers_dir / f"{launch.container}.json").unlink()

    report = Hub(settings).reconcile()

    assert report.cleared == [
        f"run record {launch.container}",
        f"socket folder {launch.key[:8]}",
        f"limit groups {launch.container}",
        f"resources of {launch.user}",
    ], report
    assert not (settings.running_dir / f"{launch.key}.json").exists()
    assert not (settings.jupyter_sockets_dir / launch.key).exists()
    assert_consistent(settings, hub)
    again = hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, launch.student_id), timeout=LAUNCH_DEADLINE)
    assert again.action.value == "create" and again.key != launch.key
