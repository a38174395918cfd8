import os
import shutil

import pytest

from tests.support import built_rootfs, installation


def require_podman_host() -> None:
    missing = [tool for tool in ("podman", "runc", "newuidmap", "userdel", "unshare") if shutil.which(tool) is None]
    reason = "needs root" if os.geteuid() != 0 else f"missing {missing}" if missing else ""
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"integration tests cannot run: {reason} (CI must install everything)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def rootfs():
    require_podman_host()
    return built_rootfs()


@pytest.fixture(scope="module")
def settings(rootfs):
    from nbhosting_core import ensure_layout
    from nbhosting_server.demo import ensure_demo_course

    with installation(rootfs) as s:
        ensure_layout(s)
        ensure_demo_course(s.courses_dir)
        yield s
