"""Idle culling on real rootless podman and real Jupyter, with timeouts of seconds instead of hours (root only).

A server nobody uses is stopped and its student's next click starts it again with the same key and the same
files; a busy kernel or a page that keeps making requests keeps its server; the app's culler runs in one
worker only; idle podman services go away by themselves; Jupyter's own kernel culling reaches each server.
Each test has its own students.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbhosting_core import CullReason, Hub, Launch, ServerState, Settings, ensure_layout
from nbhosting_core.system.records import process_uid
from nbhosting_core.system.userpodman import UserPodman
from nbhosting_server.demo import ensure_demo_course
from tests.support import App, Kernel, gate_of, installation, jupyter_call

pytestmark = pytest.mark.podman

NOTEBOOK = "01-welcome.ipynb"
IDLE = 5.0  # seconds without a sign of life before a server is stopped (2 hours in production)
DEADLINE = 120.0  # generous: the host is shared and has 2 cores; a failure says what it waited for


def short_timeouts(rootfs: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return installation(rootfs, idle_timeout=IDLE, activity_flush=1, podman_service_idle=3, **overrides)


@pytest.fixture(scope="module")
def settings(rootfs) -> Iterator[Settings]:
    with short_timeouts(rootfs) as s:
        ensure_layout(s)
        ensure_demo_course(s.courses_dir)
        yield s


@pytest.fixture(scope="module")
def hub(settings: Settings) -> Hub:
    return Hub(settings)


def student(tag: str) -> str:
    return f"cull-{tag}-{uuid.uuid4().hex[:6]}"


def opened(hub: Hub, student_id: str) -> Launch:
    return hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, student_id), timeout=DEADLINE)


def wait_until(condition, what: str, deadline: float = DEADLINE, every: float = 0.5) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"not within {deadline:.0f} s: {what}"
        time.sleep(every)


def idle_for_longer_than_the_timeout(hub: Hub, launch: Launch) -> None:
    """Wait until the hub sees ``launch``'s server idle past ``idle_timeout`` (it counts Jupyter's activity too)."""

    def idle() -> bool:
        view = next(v for v in hub.list_servers(details=True) if v.server.key == launch.key)
        return view.idle_seconds is not None and view.idle_seconds > IDLE + 1

    wait_until(idle, f"{launch.container} idle for {IDLE} s")


def decision_on(decisions, launch: Launch):  # type: ignore[no-untyped-def]
    return next(d for d in decisions if d.name == launch.container)


def container_state(settings: Settings, hub: Hub, launch: Launch) -> str:
    account = hub.accounts.find(launch.student_id)
    assert account is not None
    data = UserPodman(settings, account).inspect(launch.container)
    assert data is not None, f"{launch.container} is gone from podman"
    return str(data["State"]["Status"])


def test_a_server_nobody_uses_is_stopped_and_comes_back_with_the_same_key_and_files(hub, settings):
    launch = opened(hub, student("idle"))
    cookie = gate_of(hub).access_cookie(launch)
    copy = settings.students_dir / launch.user / "demo" / NOTEBOOK
    before = copy.read_bytes()
    idle_for_longer_than_the_timeout(hub, launch)

    decision = decision_on(hub.cull(), launch)

    assert decision.cull and decision.reason is CullReason.IDLE
    assert container_state(settings, hub, launch) != "running"
    assert not (settings.jupyter_sockets_dir / launch.key).exists()
    refused = gate_of(hub).authorize(f"/{settings.url_prefix}/{launch.key}/api/contents", [cookie.value])
    assert (refused.allowed, refused.status, refused.reason) == (False, 410, "gone")
    again = opened(hub, launch.student_id)
    assert again.key == launch.key and again.action.value == "start"
    assert gate_of(hub).authorize(f"/{settings.url_prefix}/{again.key}/api/contents", [cookie.value]).allowed
    assert copy.read_bytes() == before


def test_a_server_whose_kernel_computes_is_kept_however_long_it_is_silent(hub, settings):
    launch = opened(hub, student("busy"))
    kernel = Kernel(settings, hub.secret, launch.key)
    result: dict[str, object] = {}
    computing = threading.Thread(target=lambda: result.update(kernel.run("import time; time.sleep(30)", timeout=90)))
    computing.start()
    try:
        server = hub.backend.find(launch.key)
        assert server is not None
        wait_until(lambda: (a := hub.backend.activity(server)) is not None and a.busy_kernels == 1, "kernel busy")
        idle_for_longer_than_the_timeout(hub, launch)

        decision = decision_on(hub.cull(), launch)

        assert not decision.cull and decision.reason is CullReason.BUSY
        assert container_state(settings, hub, launch) == "running"
    finally:
        computing.join(timeout=120)
    assert result.get("status") == "ok" and not result.get("died"), result  # the computation was never cut


def test_a_server_whose_page_keeps_making_requests_is_kept(hub, settings):
    launch = opened(hub, student("reading"))
    cookie = gate_of(hub).access_cookie(launch)
    uri = f"/{settings.url_prefix}/{launch.key}/api/contents/{NOTEBOOK}"
    until = time.monotonic() + IDLE + 3  # longer than the idle timeout, with a request every half second
    while time.monotonic() < until:
        assert gate_of(hub).authorize(uri, [cookie.value]).allowed
        time.sleep(0.5)

    decision = decision_on(hub.cull(), launch)

    assert not decision.cull and decision.reason is CullReason.ACTIVE
    assert decision.idle_seconds is not None and decision.idle_seconds < IDLE
    assert container_state(settings, hub, launch) == "running"


def test_jupyters_own_kernel_culling_reaches_the_server(settings):
    hub = Hub(settings.model_copy(update={"kernel_idle_timeout": 3}))
    launch = opened(hub, student("kernels"))
    kernel = Kernel(settings, hub.secret, launch.key)
    assert kernel.run("print(6 * 7)")["stdout"] == "42\n"

    def kernels() -> list[str]:
        status, body = jupyter_call(settings, hub.secret, launch.key, "GET", "api/kernels?no_track_activity=1")
        assert status == 200
        return [k["id"] for k in json.loads(body)]

    assert kernel.id in kernels()  # with the kernel started for the launch, if it is not culled yet
    wait_until(lambda: kernels() == [], f"kernel {kernel.id} shut down by Jupyter after 3 s idle")


def service_pids(uid: int) -> list[int]:
    """`podman system service` processes of ``uid``."""
    found = []
    for pid in (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()):
        if process_uid(pid) != uid:
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"podman" in argv[0] and b"system" in argv and b"service" in argv:
            found.append(pid)
    return found


def test_the_apps_culler_runs_in_one_worker_and_idle_podman_services_go_away(rootfs, tmp_path):
    with short_timeouts(rootfs, cull_interval=1) as s:
        ensure_layout(s)
        ensure_demo_course(s.courses_dir)
        app = App(s, tmp_path / "app.log", workers=2)
        app.start()
        try:
            hub = Hub(app.settings)
            launches = [opened(hub, student(f"app{i}")) for i in range(2)]

            def culls(launch: Launch) -> list[str]:
                pattern = rf"cull user={launch.user} course=demo key={launch.key[:8]} reason=idle"
                return re.findall(pattern, app.log_path.read_text())

            wait_until(
                lambda: all(culls(launch) for launch in launches),
                f"the app's culler stopping both idle servers:\n{app.log_tail()}",
            )
            time.sleep(3 * s.cull_interval)  # a few more passes: nobody stops them again
            log = app.log_path.read_text()
            leaders = re.findall(r"culler: this process \(pid (\d+)\) runs it for the host", log)
            assert len(leaders) == 1 and int(leaders[0]) in app.worker_pids(), log
            states = {v.server.key: v.server.state for v in hub.list_servers()}
            for launch in launches:
                assert len(culls(launch)) == 1, log  # stopped once, by one worker
                assert states[launch.key] is ServerState.STOPPED
            for launch in launches:  # the services the stops started are not needed any more
                wait_until(
                    lambda uid=launch.uid: not service_pids(uid),  # type: ignore[misc]
                    f"the podman service of {launch.user} exiting after {s.podman_service_idle} s idle",
                )
            for launch in launches:
                assert container_state(s, hub, launch) != "running"
        finally:
            app.stop()
