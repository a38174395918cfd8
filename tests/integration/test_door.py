"""The door on a real host: the app in two worker processes (as `nbh serve` runs it) and real podman.

Launches at once, served by whichever worker, share one set of counters (RUN_DIR/throttle): a client gets exactly
its burst of new servers; the cap counts the servers podman runs.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from nbhosting_core import Hub, ServerState, ensure_layout, signed_launch_path
from nbhosting_core.platforms import load_platforms
from nbhosting_server.demo import DEMO_PLATFORM, ensure_demo_course, ensure_demo_platform
from tests.support import App, installation

pytestmark = pytest.mark.podman


def test_the_door_holds_across_the_apps_worker_processes_and_counts_what_podman_runs(rootfs, tmp_path):
    with installation(rootfs, creation_client_burst=2, creation_client_per_minute=0.01, max_running=3) as s:
        ensure_layout(s)
        ensure_demo_course(s.courses_dir)
        ensure_demo_platform(s.effective_platforms_file)
        platform = load_platforms(s.effective_platforms_file).get(DEMO_PLATFORM)
        assert platform is not None

        def url(student: str) -> str:
            return signed_launch_path(platform, "demo", "01-welcome.ipynb", student, int(time.time()) + 600)

        app = App(s, tmp_path / "app.log", workers=2)
        app.start()
        try:
            tag = uuid.uuid4().hex[:6]
            statuses: list[int] = []

            def launch(i: int) -> None:  # one client (this host), six new students at once
                statuses.append(app.get(url(f"door-{tag}-{i}"), headers={"X-Forwarded-For": "198.51.100.1"})[0])

            threads = [threading.Thread(target=launch, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(statuses) == [200, 200, 503, 503, 503, 503], app.log_tail()
            running = [v for v in Hub(s).list_servers() if v.server.state is ServerState.RUNNING]
            assert len(running) == 2

            # another client: its own burst, until the cap (3 servers running) says no
            status, _ = app.get(url(f"door-{tag}-b1"), headers={"X-Forwarded-For": "198.51.100.2"})
            assert status == 200
            status, body = app.get(url(f"door-{tag}-b2"), headers={"X-Forwarded-For": "198.51.100.2"})
            assert status == 503 and b"All notebook servers are in use" in body
            log = app.log_path.read_text()
            assert log.count("door: allowed create") == 3 and "client=198.51.100.2: cap, running 3/3" in log
        finally:
            app.stop()
