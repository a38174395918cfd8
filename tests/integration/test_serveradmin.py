"""What admins do to students' servers, on real rootless podman and real Jupyter (root only): the logs of a running
and of a stopped server, read through the student's own podman; a restart on the same image (same key) and onto the
course's newer image (a new server); another student's server untouched throughout; the same through the helper."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbhosting_core import Hub, ServerState
from nbhosting_core.serveradmin import MAX_LOG_BYTES
from tests.unit.test_helper import Running
from tests.unit.test_serveradmin import Images

pytestmark = pytest.mark.podman


@pytest.fixture(scope="module")
def newer(settings) -> Iterator[Path]:
    """A "newer image" of the course: the same rootfs at another path, bind-mounted (runc refuses a symlink) before
    any student's podman starts."""
    alias = settings.data_root / "rootfs-newer"
    alias.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(settings.image_rootfs), str(alias)], check=True)
    try:
        yield alias
    finally:
        subprocess.run(["umount", "-l", str(alias)], check=False)


@pytest.fixture(scope="module")
def hub(settings, newer) -> Hub:
    hub = Hub(settings)
    hub.images = Images()  # type: ignore[assignment]
    return hub


def student(tag: str) -> str:
    return f"int-admin-{tag}-{uuid.uuid4().hex[:6]}"


def ready(hub: Hub, student_id: str) -> None:
    deadline = time.monotonic() + 60
    while not hub.backend.is_ready(hub.server_view("demo", student_id).server):
        assert time.monotonic() < deadline, f"{student_id}'s server did not answer"
        time.sleep(0.2)


def test_logs_restart_and_another_students_server_untouched(hub: Hub, newer: Path) -> None:
    alice, bob = student("a"), student("b")
    first = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", alice), timeout=60)
    other = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", bob), timeout=60)
    bob_before = hub.server_view("demo", bob).server

    printed = hub.server_logs("demo", alice, lines=50)
    assert "Jupyter Server" in printed and printed.endswith("\n") and len(printed.splitlines()) <= 50
    assert len(hub.server_logs("demo", alice, lines=1).splitlines()) == 1

    restarted = hub.restart_server("demo", alice)  # the same image: the same server, started again
    assert restarted.key == first.key and restarted.state is ServerState.RUNNING
    ready(hub, alice)
    assert hub.server_logs("demo", alice, lines=2000).count("Jupyter Server") >= 2  # both starts, one log

    hub.stop_server("demo", alice)
    stopped = hub.server_logs("demo", alice, lines=2000)  # a stopped server's log, through its student's podman
    assert "Jupyter Server" in stopped and len(stopped.encode()) <= MAX_LOG_BYTES

    hub.images.current["demo"] = newer  # type: ignore[attr-defined]
    assert hub.server_view("demo", alice).old_image is True
    moved = hub.restart_server("demo", alice)  # onto the course's newer image: a new server, files kept
    assert moved.key != first.key and moved.image == hub.image_for("demo") and moved.state is ServerState.RUNNING
    ready(hub, alice)
    assert hub.server_view("demo", alice).old_image is False
    assert (hub.accounts.find(alice).home / "demo" / "01-welcome.ipynb").is_file()  # type: ignore[union-attr]

    bob_after = hub.server_view("demo", bob).server
    assert bob_after == bob_before and bob_after.key == other.key and hub.backend.is_ready(bob_after)
    hub.images.current.clear()  # type: ignore[attr-defined]


def test_the_same_through_the_helper(hub: Hub) -> None:
    carol = student("c")
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", carol), timeout=60)
    running = Running(hub, timeout=60)
    running.server.admin = hub
    try:
        client = running.client
        client.timeout = 70
        assert "Jupyter Server" in client.server_logs("demo", carol, lines=20)
        assert carol in {v.server.student_id for v in client.list_servers(course="demo", details=True)}
        restarted = client.restart_server("demo", carol)
        assert restarted.key == launch.key and restarted.state is ServerState.RUNNING
        assert client.stop_server("demo", carol).state is ServerState.STOPPED
    finally:
        running.close()
