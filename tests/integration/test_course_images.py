"""Courses' own images, for real: built with podman FROM the default image, published as versioned shared rootfs,
served to real containers, replaced, restarted and pruned (root only).

One course with a tiny image (a Python module file added to the default image: seconds to build), in an images
folder of this module's own (the default image comes from the shared cache). The tests run in order: each
builds on the versions the previous one published.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import Action, Hub, ImageBuildError, Settings, ensure_layout
from nbhosting_core.system.courseimages import USED_MARKS, CourseImages, tag_of
from nbhosting_core.system.images import image_exists, podman_env
from nbhosting_core.system.runner import SubprocessRunner
from nbhosting_server.cli import main
from nbhosting_server.demo import DATASCIENCE_COURSE, DATASCIENCE_NOTEBOOK, ensure_datascience_course
from nbhosting_server.serve import settings_environment
from tests.support import Kernel, built_datascience_image, installation

pytestmark = pytest.mark.podman
COURSE = f"tiny-{uuid.uuid4().hex[:6]}"
CONTAINERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY nbh_tiny.py /tmp/nbh_tiny.py
RUN /opt/jupyter/bin/python -c \
    'import shutil, sysconfig; shutil.move("/tmp/nbh_tiny.py", sysconfig.get_paths()["purelib"])'
"""


def write_context(settings: Settings, answer: int, containerfile: str = CONTAINERFILE) -> None:
    context = settings.courses_dir / COURSE / ".nbhosting"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Containerfile").write_text(containerfile)
    (context / "nbh_tiny.py").write_text(f"ANSWER = {answer}\n")


@pytest.fixture(scope="module")
def settings(rootfs: Path) -> Iterator[Settings]:
    images_dir = Path(tempfile.mkdtemp(prefix="nbh-test-images-", dir="/tmp"))
    images_dir.chmod(0o755)  # students' podman reads the rootfs there
    try:
        with installation(rootfs, images_dir=images_dir) as s:
            ensure_layout(s)
            nbformat.write(new_notebook(cells=[new_code_cell("import nbh_tiny")]), str(_notebook(s)))
            write_context(s, answer=1)
            yield s
    finally:
        runner, env = SubprocessRunner(), podman_env(Settings().containers_conf)
        for folder in CourseImages(Settings(images_dir=images_dir)).folders():
            if image_exists(runner, tag_of(folder), env):
                runner.run(["podman", "rmi", "--force", tag_of(folder)], env=env)
        shutil.rmtree(images_dir, ignore_errors=True)


def _notebook(settings: Settings) -> Path:
    path = settings.courses_dir / COURSE / "01-tiny.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def hub(settings: Settings) -> Hub:
    return Hub(settings)


def answer_in(hub: Hub, key: str) -> str:
    result = Kernel(hub.settings, hub.secret, key).run("import nbh_tiny; print(nbh_tiny.ANSWER)", timeout=60)
    assert result["status"] == "ok", result
    return str(result["stdout"]).strip()


def opened(hub: Hub, student: str):  # type: ignore[no-untyped-def]
    return hub.wait_ready(hub.open_notebook(COURSE, "01-tiny.ipynb", student), timeout=90)


def test_a_course_image_is_built_once_and_its_servers_import_what_it_added(hub: Hub) -> None:
    lines: list[str] = []
    built = hub.images.build(COURSE, log=lines.append)
    assert built.built and built.version.number == 1 and built.rootfs.is_dir()
    assert built.log is not None and "STEP" in built.log.read_text()  # podman's own output, kept
    assert any(line.startswith("STEP") for line in lines)  # and streamed
    assert not hub.images.build(COURSE).built  # same context, same base: nothing to build
    launch = opened(hub, "alice")
    server = hub.backend.find(launch.key)
    assert server is not None and server.image == str(built.rootfs)
    assert answer_in(hub, launch.key) == "1"


def test_a_failed_build_keeps_the_previous_version_in_service(hub: Hub) -> None:
    write_context(hub.settings, answer=9, containerfile=CONTAINERFILE + "RUN echo broken-step-output && false\n")
    with pytest.raises(ImageBuildError) as failed:
        hub.images.build(COURSE)
    assert "broken-step-output" in failed.value.log_detail
    assert [v.number for v in hub.images.versions(COURSE)] == [1]
    assert "broken-step-output" in hub.images.build_logs(COURSE)[-1].read_text()
    hidden = (p for p in hub.images.images_dir.iterdir() if p.name.startswith(".") and p.name != USED_MARKS)
    half_made = [p for p in hidden if p.suffix != ".lock"]  # the marks of starts are no half-made image
    assert not half_made
    assert hub.image_for(COURSE) == str(hub.images.rootfs(hub.images.versions(COURSE)[0]))
    assert answer_in(hub, opened(hub, "bob").key) == "1"


def test_new_servers_get_the_new_version_and_a_running_one_keeps_the_old_until_restarted(hub: Hub) -> None:
    alice = opened(hub, "alice")
    write_context(hub.settings, answer=2)
    v2 = hub.images.build(COURSE)
    assert v2.built and v2.version.number == 2
    again = opened(hub, "alice")
    assert again.action is Action.REUSE and again.key == alice.key and answer_in(hub, again.key) == "1"
    carol = opened(hub, "carol")
    assert answer_in(hub, carol.key) == "2"
    old = {s.student_id for s in hub.old_servers(COURSE)}
    assert old == {"alice", "bob"}
    in_use = [s.image for s in hub.backend.list_servers()]
    assert hub.images.prune(in_use=in_use, in_service=[], dry_run=True).removed == []  # v1 still serves alice
    assert {s.student_id for s in hub.restart_old(COURSE)} == {"alice", "bob"}
    replaced = opened(hub, "alice")
    assert replaced.action is Action.REPLACE and replaced.key != alice.key and answer_in(hub, replaced.key) == "2"


def test_prune_removes_the_versions_no_server_uses_and_their_tags(hub: Hub) -> None:
    bob = next(s for s in hub.backend.list_servers() if s.student_id == "bob")
    hub.remove(bob.name)  # bob's stopped server still held v1
    v1 = hub.images.versions(COURSE)[0]
    in_use = [s.image for s in hub.backend.list_servers()]
    pruned = hub.images.prune(in_use=in_use, in_service=[hub.settings.image_rootfs])  # type: ignore[list-item]
    assert pruned.removed == [v1.name] and pruned.freed_bytes > 100 * 2**20
    assert [v.number for v in hub.images.versions(COURSE)] == [2]
    env = podman_env(hub.settings.containers_conf)
    assert not image_exists(SubprocessRunner(), tag_of(v1.name), env)
    assert image_exists(SubprocessRunner(), tag_of(hub.images.versions(COURSE)[0].name), env)
    assert hub.image_for(COURSE) == str(hub.images.rootfs(hub.images.versions(COURSE)[0]))


def nbh(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`nbh ARGV` on this installation (its settings as NBH_* variables, as the admin's shell would have them)."""
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    assert main(list(argv)) == 0, capsys.readouterr()
    return capsys.readouterr().out


def test_the_admin_builds_lists_sees_old_servers_restarts_them_and_prunes_from_the_cli(hub: Hub, monkeypatch, capsys):
    write_context(hub.settings, answer=3)
    out = nbh(hub.settings, monkeypatch, capsys, "course", "build", COURSE, "--no-prune")
    assert "STEP" in out and f"course {COURSE}: version 3 in service" in out
    listed = nbh(hub.settings, monkeypatch, capsys, "course", "images", COURSE)
    assert [line.split()[0] for line in listed.splitlines() if line.startswith("v")] == ["v2", "v3"]
    assert all(Path(line.split()[-1]).is_file() for line in listed.splitlines() if line.startswith("v"))
    rows = nbh(hub.settings, monkeypatch, capsys, "ls").splitlines()
    running = [row for row in rows if COURSE in row.split()[1:2] and " running " in row]
    assert running and all(f"{COURSE} v2 (old)" in row for row in running), rows
    assert "no unused image version" in nbh(hub.settings, monkeypatch, capsys, "image", "prune", "--dry-run")
    stopped = nbh(hub.settings, monkeypatch, capsys, "course", "restart-old", COURSE)
    assert stopped.count("stopped ") == len(running)
    assert answer_in(hub, opened(hub, "carol").key) == "3"


# ------------------------------------------------------------------------------- the demo's data-science course


@pytest.fixture(scope="module")
def demo_settings(rootfs: Path) -> Iterator[Settings]:
    """An installation on the shared images cache, with the demo's data-science course, its image built there as
    `nbh serve --demo` builds it (~25 s the first time on a host, then found up to date)."""
    built_datascience_image(rootfs)
    with installation(rootfs) as s:
        ensure_layout(s)
        ensure_datascience_course(s.courses_dir)
        yield s


def test_the_demo_data_science_course_draws_a_plot_in_its_own_image(demo_settings: Settings) -> None:
    hub = Hub(demo_settings)
    built = hub.images.build(DATASCIENCE_COURSE)  # a cache hit unless its context changed since
    launch = hub.wait_ready(hub.open_notebook(DATASCIENCE_COURSE, DATASCIENCE_NOTEBOOK, "plotter"), timeout=90)
    assert hub.backend.find(launch.key).image == str(built.rootfs)  # type: ignore[union-attr]
    cells = nbformat.read(str(demo_settings.courses_dir / DATASCIENCE_COURSE / DATASCIENCE_NOTEBOOK), as_version=4)
    code = "\n".join(cell.source for cell in cells.cells if cell.cell_type == "code" and "plot" in cell.source)
    png = "import io; buffer = io.BytesIO(); plt.gcf().savefig(buffer, format='png'); print(buffer.getvalue()[1:4])"
    result = Kernel(demo_settings, hub.secret, launch.key).run(f"{cells.cells[1].source}\n{code}\n{png}", timeout=120)
    assert result["status"] == "ok" and result["error"] is None, result
    assert "numpy 2" in str(result["stdout"]) and "b'PNG'" in str(result["stdout"]), result
