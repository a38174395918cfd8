"""Recovery on real rootless podman: the app killed in the middle of starts, and a host rebooted under students.

Whatever was cut half-way, the next start-up (``nbh serve``'s :func:`~nbhosting_server.serve.prepare`, which
reconciles) and the students' next clicks must leave every student exactly one working server, their files
as they were, and no stale record, socket folder or mount. Each test has its own students (root only).
"""

from __future__ import annotations

import uuid

import pytest

from nbhosting_core import Hub, ServerState, ensure_layout
from tests.support import installation

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
