"""The notebook image: built locally, exported as a shared read-only rootfs, and run through the real spec.

Needs root, podman, runc, uidmap (newuidmap), mmdebstrap (first build only) and the Debian/PyPI mirrors
(first build only). The rootfs is built into the shared cache (``tests.support.IMAGES_DIR``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import uuid
from pathlib import Path

import pytest

from nbhosting_core import Hub, Settings, SubprocessRunner
from nbhosting_core.system import images
from tests.support import IMAGES_DIR, Kernel, jupyter_call

pytestmark = pytest.mark.podman
CONTAINERS_CONF = Settings().containers_conf


def test_second_call_is_a_cache_hit(rootfs: Path) -> None:
    logs: list[str] = []
    again = images.ensure_rootfs(
        context_dir=images.DEFAULT_CONTEXT_DIR, images_dir=IMAGES_DIR, containers_conf=CONTAINERS_CONF, log=logs.append
    )
    assert again == rootfs and logs == []  # nothing built, nothing said
    assert rootfs.parent.name == f"default-{images.context_hash(images.DEFAULT_CONTEXT_DIR, images.LOCAL_BASE_IMAGE)}"


def test_mount_targets_and_contract(rootfs: Path) -> None:
    for name in ("home/student", "nbhosting/run"):
        assert (rootfs / name).is_dir()
        assert (rootfs / name).stat().st_mode & 0o777 == 0o755
    for name in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):
        assert (rootfs / name).is_file() and not (rootfs / name).is_symlink(), name
    # tmpfs targets must be empty (rootless tmpcopyup cannot chown root-owned files): podman creates
    # /run/.containerenv in the /run tmpfs.
    for name in ("run", "tmp", "var/tmp"):
        assert (rootfs / name).is_dir() and not list((rootfs / name).iterdir()), name
    assert os.readlink(rootfs / "etc/mtab") == "/proc/mounts"
    for name in ("usr/bin/tini", "usr/local/bin/nbhosting-jupyter"):
        assert (rootfs / name).stat().st_mode & 0o555 == 0o555, name
    assert (rootfs / "opt/jupyter/bin/jupyter-server").exists()


def test_everything_world_readable(rootfs: Path) -> None:
    """The rootless user namespace maps the host's root to nobody: files need o+r, directories o+rx."""
    unreadable = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            needed = 0o005 if stat.S_ISDIR(mode) else 0o004
            if not stat.S_ISLNK(mode) and mode & needed != needed:
                unreadable.append(path)
    allowed = {str(rootfs / "etc/shadow"), str(rootfs / "etc/gshadow")}
    assert set(unreadable) <= allowed, unreadable[:20]


def test_startup_optimisations(rootfs: Path) -> None:
    site = next((rootfs / "opt/jupyter/lib").glob("python3*/site-packages"))
    assert not list(site.glob("rfc3987_syntax*")), "rfc3987-syntax costs ~0.6 s at every start"
    # read-only rootfs: every module must come with its .pyc, Python can never write it at run time
    missing = [p for p in (site / "jupyter_server").rglob("*.py") if not _has_pyc(p)]
    assert not missing, missing[:5]
    config = json.loads((rootfs / "opt/jupyter/etc/jupyter/jupyter_server_config.json").read_text())
    assert config["LabApp"]["extension_manager"] == "readonly"
    # the first UI's exporters' list and languages' names come from a file made at build time (nbhosting_lighter)
    assert config["ServerApp"]["extra_services"] == ["nbhosting_lighter"]
    built = json.loads((site / "nbhosting_lighter.json").read_text())
    assert built["exporters"]["html"] == {"output_mimetype": "text/html"} and "en" in built["display_names"]
    assert _has_pyc(site / "nbhosting_lighter.py")
    lsp = json.loads((rootfs / "opt/jupyter/etc/jupyter/jupyter_server_config.d/jupyter_lsp.json").read_text())
    assert lsp["ServerApp"]["jpserver_extensions"]["jupyter_lsp"] is False


def _has_pyc(source: Path) -> bool:
    return any((source.parent / "__pycache__").glob(f"{source.stem}.cpython-*.pyc"))


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    """Two concurrent callers: one builds (under the lock), the other waits and gets the same rootfs."""
    context = tmp_path / "tiny"
    context.mkdir()
    (context / "Containerfile").write_text(
        f"ARG BASE_IMAGE\nFROM $BASE_IMAGE\nRUN mkdir -p /home/student /nbhosting/run\nLABEL t={uuid.uuid4()}\n"
    )
    images_dir = tmp_path / "images"
    logs: list[str] = []
    results: list[Path] = []

    def build() -> None:
        results.append(
            images.ensure_rootfs(
                context_dir=context, images_dir=images_dir, containers_conf=CONTAINERS_CONF, log=logs.append
            )
        )

    threads = [threading.Thread(target=build) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert len(results) == 2 and results[0] == results[1]
        assert sum(line.startswith("building the notebook image") for line in logs) == 1, logs
        assert (results[0] / "usr/bin").is_dir() and (results[0] / "home/student").is_dir()
        assert [p.name for p in images_dir.iterdir() if not p.name.startswith(".")] == [results[0].parent.name]
    finally:
        tag = f"localhost/nbhosting-tiny:{images.context_hash(context, images.LOCAL_BASE_IMAGE)}"
        env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
        SubprocessRunner().run(["podman", "rmi", "--force", tag], env=env)
        shutil.rmtree(images_dir, ignore_errors=True)


def test_a_failed_build_is_an_image_build_error_with_the_steps_output(tmp_path: Path) -> None:
    context = tmp_path / "failing"
    context.mkdir()
    (context / "Containerfile").write_text("ARG BASE_IMAGE\nFROM $BASE_IMAGE\nRUN echo 'step output here' && false\n")
    with pytest.raises(images.ImageBuildError) as failed:
        images.ensure_rootfs(
            context_dir=context, images_dir=tmp_path / "images", containers_conf=CONTAINERS_CONF, log=lambda line: None
        )
    assert "step output here" in failed.value.log_detail and failed.value.reason == "image-build-failed"
    assert not [p for p in (tmp_path / "images").iterdir() if not p.name.startswith(".")]  # nothing half-made


def test_both_uis_render_and_a_kernel_runs_code_in_a_server_of_the_real_spec(settings: Settings) -> None:
    hub = Hub(settings)
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", f"img-{uuid.uuid4().hex[:6]}"))
    for page in ("lab/tree/01-welcome.ipynb", "notebooks/01-welcome.ipynb"):
        status, body = jupyter_call(settings, hub.secret, launch.key, "GET", page)
        assert status == 200, (page, body[:300])
    result = Kernel(settings, hub.secret, launch.key).run("print(6 * 7)", timeout=60)
    assert result["stdout"] == "42\n" and result["status"] == "ok", result
