"""The workspace quota with real containers: a student who writes without end stops at their cap, alone."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from nbhosting_core import Hub, OverQuota
from nbhosting_core.system.mounts import is_mount_point
from nbhosting_core.system.quota import LoopQuota
from tests.support import Kernel, installation

pytestmark = pytest.mark.podman
QUOTA = 64 * 2**20


@pytest.fixture(scope="module")
def settings(rootfs):
    from nbhosting_core import ensure_layout
    from nbhosting_server.demo import ensure_demo_course

    with installation(rootfs, quota_mode="loop", workspace_quota=QUOTA) as s:
        ensure_layout(s)
        ensure_demo_course(s.courses_dir)
        yield s


def student(tag: str) -> str:
    return f"quota-{tag}-{uuid.uuid4().hex[:6]}"


FILL = """
import errno, os
written, code = 0, None
fd = os.open("/home/student/flood.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
for attempt in range(5):  # until even a synced filesystem has not one block left
    before = written
    for size in (2**20, 4096):
        chunk = b"x" * size
        while written < 4 * 2**30:
            try:
                written += os.write(fd, chunk)
            except OSError as exc:
                code = errno.errorcode[exc.errno]
                break
    os.fsync(fd)
    if written == before:
        break
os.close(fd)
print("stopped", code, written // 2**20)
"""


def test_a_student_writing_without_end_stops_at_their_quota_and_nobody_else_notices(settings):
    hub = Hub(settings)
    assert isinstance(hub.quota, LoopQuota)
    host_free = shutil.disk_usage(settings.data_root).free
    alice = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", student("alice")))
    bob = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", student("bob")))
    home = settings.students_dir / alice.user
    assert is_mount_point(home) and home.stat().st_mode & 0o777 == 0o700
    result = Kernel(settings, hub.secret, alice.key).run(FILL, timeout=120)
    words = str(result["stdout"]).split()
    assert words[:2] == ["stopped", "ENOSPC"], result
    assert int(words[2]) <= QUOTA // 2**20
    used, limit = hub.quota.usage(alice.user)
    assert used is not None and QUOTA * 0.8 < used <= limit
    image = hub.quota.image(alice.user)  # type: ignore[attr-defined]
    assert image.stat().st_size == QUOTA and image.stat().st_blocks * 512 <= QUOTA * 1.05
    assert host_free - shutil.disk_usage(settings.data_root).free < QUOTA * 1.5  # the host lost only the cap
    # bob writes as usual; alice can still read and delete her files
    assert (
        Kernel(settings, hub.secret, bob.key).run("open('/home/student/ok.txt', 'w').write('fine')")["status"] == "ok"
    )
    cleanup = Kernel(settings, hub.secret, alice.key).run("import os; os.remove('/home/student/flood.bin')")
    assert cleanup["status"] == "ok"


FILL_INODES = """
import errno, os
os.makedirs("/home/student/many", exist_ok=True)
count, code = 0, None
while count < 10**6:
    try:
        os.close(os.open(f"/home/student/many/{count}", os.O_WRONLY | os.O_CREAT))
    except OSError as exc:
        code = errno.errorcode[exc.errno]
        break
    count += 1
print("stopped", code, count)
"""


def test_a_full_workspace_refuses_a_new_copy_with_a_clear_message_and_keeps_everything(settings):
    hub = Hub(settings)
    sid = student("full")
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", sid))
    # full to the last inode: nothing, not even root's copy of a notebook, can be created there any more
    result = Kernel(settings, hub.secret, launch.key).run(FILL_INODES, timeout=120)
    assert str(result["stdout"]).split()[:2] == ["stopped", "ENOSPC"], result
    with pytest.raises(OverQuota) as refused:
        hub.open_notebook("demo", "02-loops.ipynb", sid)
    assert "full" in refused.value.message
    assert (settings.students_dir / launch.user / "demo" / "01-welcome.ipynb").exists()


def test_the_workspace_is_mounted_while_a_server_runs_and_kept_across_stops(settings):
    hub = Hub(settings)
    sid = student("cycle")
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", sid))
    home = settings.students_dir / launch.user
    Kernel(settings, hub.secret, launch.key).run("open('/home/student/mine.txt', 'w').write('kept')")
    hub.stop(launch.container)
    assert not is_mount_point(home) and not any(os.scandir(home))  # released: nothing held for a stopped server
    again = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", sid))
    assert again.key == launch.key and not again.copied
    assert (home / "demo" / "mine.txt").read_text() == "kept"


def test_a_larger_quota_grows_existing_workspaces_at_their_next_launch(settings):
    sid = student("grow")
    hub = Hub(settings)
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", sid))
    hub.stop(launch.container)
    bigger = Hub(settings.model_copy(update={"workspace_quota": 2 * QUOTA}))
    bigger.wait_ready(bigger.open_notebook("demo", "01-welcome.ipynb", sid))
    stats = os.statvfs(settings.students_dir / launch.user)
    assert stats.f_blocks * stats.f_frsize > QUOTA * 1.5
    assert (settings.students_dir / launch.user / "demo" / "01-welcome.ipynb").exists()
