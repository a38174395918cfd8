"""Which image a course's servers get, and what happens to servers when it changes (the hub, on the fake backend).

No podman: image folders are made by hand (a folder with a ``rootfs`` inside is a published version).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import (
    Action,
    CommandFailed,
    FakeAccounts,
    FakeBackend,
    Hub,
    InvalidInput,
    NotFound,
    ServerState,
    Settings,
)
from nbhosting_core.system.courseimages import CourseImages, course_image_choice
from nbhosting_server.imagecli import make_commands

H1, H2 = "aaaaaaaaaaaa", "bbbbbbbbbbbb"


class NoPodman:
    """A runner for which no image exists (prune has no tag to remove)."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
        self.commands.append(list(argv))
        raise CommandFailed(argv, 1, "no such image")

    def stream(self, argv: Sequence[str], **kwargs: object) -> str:
        raise AssertionError("nothing is built here")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", image_rootfs=tmp_path / "default-x" / "rootfs")
    for course in ("plain", "ds", "sharing"):
        (s.courses_dir / course).mkdir(parents=True)
        nbformat.write(new_notebook(cells=[new_code_cell("1")]), str(s.courses_dir / course / "nb.ipynb"))
    (s.courses_dir / "ds" / ".nbhosting").mkdir()
    (s.courses_dir / "ds" / ".nbhosting" / "Containerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (s.courses_dir / "sharing" / ".nbhosting").mkdir()
    (s.courses_dir / "sharing" / ".nbhosting" / "course.toml").write_text('image = "ds"\n')
    return s


def publish(settings: Settings, name: str) -> str:
    rootfs = settings.effective_images_dir / name / "rootfs"
    (rootfs / "usr").mkdir(parents=True)
    (rootfs / "usr" / "file").write_bytes(b"x" * 10000)
    return str(rootfs)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def hub(settings: Settings, backend: FakeBackend) -> Hub:
    return Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), runner=NoPodman())


# ------------------------------------------------------------------------------------- the course's choice


def test_a_course_without_configuration_runs_its_own_image_if_it_has_a_containerfile(settings):
    assert course_image_choice(settings.courses_dir / "plain") == "default"
    assert course_image_choice(settings.courses_dir / "ds") == "course"


def test_the_configuration_names_the_image_default_own_or_another_courses(settings):
    config = settings.courses_dir / "ds" / ".nbhosting" / "course.toml"
    for value in ("default", "course", "other-course"):
        config.write_text(f'image = "{value}"\n')
        assert course_image_choice(settings.courses_dir / "ds") == value
    assert course_image_choice(settings.courses_dir / "sharing") == "ds"


@pytest.mark.parametrize("text", ['image = "../etc"\n', "image = 3\n", "image = \n"])
def test_a_bad_image_in_the_configuration_is_refused_with_its_file(settings, text):
    config = settings.courses_dir / "ds" / ".nbhosting" / "course.toml"
    config.write_text(text)
    with pytest.raises(InvalidInput) as refused:
        course_image_choice(settings.courses_dir / "ds")
    assert "course.toml" in str(refused.value) or "course name" in str(refused.value)


# ------------------------------------------------------------------------------------- which image a server gets


def test_new_servers_get_their_courses_newest_version_or_the_default(hub, settings, backend):
    v1, v2 = publish(settings, f"course-ds-1-{H1}"), publish(settings, f"course-ds-2-{H2}")
    assert hub.image_for("ds") == v2
    assert hub.image_for("sharing") == v2  # a course may run another course's image
    assert hub.image_for("plain") == str(settings.image_rootfs)
    launch = hub.open_notebook("ds", "nb.ipynb", "alice")
    assert backend.find(launch.key).image == v2 and v1 != v2


def test_a_course_whose_image_has_no_version_yet_gets_the_default(hub, settings):
    assert hub.image_for("ds") == str(settings.image_rootfs)


def test_a_running_server_keeps_its_version_a_stopped_one_is_replaced_on_the_newest(hub, settings, backend):
    v1 = publish(settings, f"course-ds-1-{H1}")
    first = hub.open_notebook("ds", "nb.ipynb", "alice")
    v2 = publish(settings, f"course-ds-2-{H2}")
    kept = hub.open_notebook("ds", "nb.ipynb", "alice")
    assert kept.key == first.key and backend.find(kept.key).image == v1
    assert [s.student_id for s in hub.old_servers("ds")] == ["alice"]
    hub.stop(first.container)
    replaced = hub.open_notebook("ds", "nb.ipynb", "alice")
    assert replaced.action is Action.REPLACE and backend.find(replaced.key).image == v2
    assert hub.old_servers() == []


def test_restart_old_stops_only_running_servers_on_an_old_image_of_that_course(hub, settings, backend):
    publish(settings, f"course-ds-1-{H1}")
    old = hub.open_notebook("ds", "nb.ipynb", "alice")
    shared = hub.open_notebook("sharing", "nb.ipynb", "alice")
    plain = hub.open_notebook("plain", "nb.ipynb", "alice")
    publish(settings, f"course-ds-2-{H2}")
    new = hub.open_notebook("ds", "nb.ipynb", "bob")
    assert {s.name for s in hub.restart_old("ds")} == {old.container}
    states = {s.name: s.state for s in backend.list_servers()}
    assert states[old.container] is ServerState.STOPPED
    assert states[new.container] is states[shared.container] is states[plain.container] is ServerState.RUNNING
    assert {s.name for s in hub.restart_old()} == {shared.container}  # every course's


# ------------------------------------------------------------------------------------------------- pruning


def test_prune_removes_unused_old_versions_and_says_how_much_it_freed(hub, settings, backend):
    v1 = publish(settings, f"course-ds-1-{H1}")
    launch = hub.open_notebook("ds", "nb.ipynb", "alice")
    publish(settings, f"course-ds-2-{H2}")
    publish(settings, f"course-ds-3-{H2[:-1]}c")
    in_use = [s.image for s in backend.list_servers()]
    assert hub.images.prune(in_use=in_use, in_service=[]).removed == [f"course-ds-2-{H2}"]  # v1 serves alice
    hub.stop(launch.container)
    hub.remove(launch.container)
    dry = hub.images.prune(in_use=[], in_service=[], dry_run=True)
    assert dry.removed == [f"course-ds-1-{H1}"] and dry.freed_bytes >= 10000 and Path(v1).is_dir()
    done = hub.images.prune(in_use=[], in_service=[])
    assert done.removed == dry.removed and not Path(v1).exists()
    assert [v.number for v in CourseImages(settings).versions("ds")] == [3]


def _age(path: Path, seconds: float) -> None:
    os.utime(path, (time.time() - seconds, time.time() - seconds))


def test_the_automatic_prune_keeps_a_version_started_on_or_published_within_its_grace(hub, settings, backend):
    v1 = publish(settings, f"course-ds-1-{H1}")
    launch = hub.open_notebook("ds", "nb.ipynb", "alice")  # a start on v1 marks it used now
    mark = settings.effective_images_dir / ".used" / f"course-ds-1-{H1}"
    assert launch.action is Action.CREATE and mark.is_file()
    publish(settings, f"course-ds-2-{H2}")
    hub.stop(launch.container)
    hub.remove(launch.container)  # no server uses v1 any more
    _age(Path(v1).parent, 7200)  # published two hours ago, started on a moment ago
    assert hub.prune_images(keep_used_within=3600).removed == []
    _age(mark, 7200)  # nobody started on it within the hour: it may go, with its mark
    assert hub.prune_images(keep_used_within=3600).removed == [f"course-ds-1-{H1}"]
    assert not Path(v1).exists() and not mark.exists()


def test_the_automatic_prune_keeps_a_version_published_within_its_grace_even_if_never_used(hub, settings):
    v1, _ = publish(settings, f"course-ds-1-{H1}"), publish(settings, f"course-ds-2-{H2}")
    assert hub.prune_images(keep_used_within=3600).removed == []
    _age(Path(v1).parent, 7200)
    assert hub.prune_images(keep_used_within=3600, dry_run=True).removed == [f"course-ds-1-{H1}"]
    assert hub.prune_images().removed == [f"course-ds-1-{H1}"]  # by hand (nbh image prune): no grace


def test_a_reused_server_does_not_mark_its_image(hub, settings):
    publish(settings, f"course-ds-1-{H1}")
    hub.open_notebook("ds", "nb.ipynb", "alice")
    mark = settings.effective_images_dir / ".used" / f"course-ds-1-{H1}"
    _age(mark, 7200)
    assert hub.open_notebook("ds", "nb.ipynb", "alice").action is Action.REUSE
    assert mark.stat().st_mtime < time.time() - 3600


def test_the_helper_prunes_on_its_schedule_or_not_at_all(settings, backend, tmp_path):
    from nbhosting_core.helper.service import image_pruner

    off = Hub(settings.model_copy(update={"image_prune_interval": 0}), backend=backend, runner=NoPodman())
    assert image_pruner(off) is None
    hub = Hub(
        settings.model_copy(update={"image_prune_grace": 3600}),
        backend=backend,
        accounts=FakeAccounts(settings.students_dir),
        runner=NoPodman(),
    )
    v1, _ = publish(settings, f"course-ds-1-{H1}"), publish(settings, f"course-ds-2-{H2}")
    pruner = image_pruner(hub)
    assert pruner is not None
    assert pruner.run_once()[0].removed == []  # published a moment ago
    _age(Path(v1).parent, 7200)
    assert pruner.run_once()[0].removed == [f"course-ds-1-{H1}"]
    pruner.stop()


def test_prune_takes_default_images_older_than_the_one_in_service_never_newer_ones(hub, settings):
    older, current, newer = (publish(settings, f"default-{c * 12}") for c in "123")
    for age, rootfs in ((300, older), (200, current), (100, newer)):
        os.utime(Path(rootfs).parent, (time.time() - age, time.time() - age))
    pruned = hub.images.prune(in_use=[], in_service=[Path(current)])
    assert pruned.removed == ["default-111111111111"]  # the newer one is another nbhosting's (an upgrade, a branch)
    assert Path(current).is_dir() and Path(newer).is_dir()


# ------------------------------------------------------------------------------------- the admin's commands


def test_restart_old_json_lists_the_servers_it_stopped(hub, settings, capsys):
    v1 = publish(settings, f"course-ds-1-{H1}")
    hub.open_notebook("ds", "nb.ipynb", "alice")
    publish(settings, f"course-ds-2-{H2}")
    hub.open_notebook("ds", "nb.ipynb", "bob")  # on v2: not old
    restart_old = make_commands(lambda s: hub)["restart-old"]
    assert restart_old(settings, argparse.Namespace(name="ds", json=True)) == 0
    stopped = json.loads(capsys.readouterr().out)["stopped"]
    assert [(s["student_id"], s["course"], s["image"], s["image_label"]) for s in stopped] == [
        ("alice", "ds", v1, "ds v1")
    ]
    assert restart_old(settings, argparse.Namespace(name="ds", json=True)) == 0
    assert json.loads(capsys.readouterr().out) == {"stopped": []}


def write_log(settings: Settings, name: str, text: str) -> Path:
    path = settings.effective_images_dir / "logs" / "course-ds" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_last_builds_log_is_read_with_its_outcome(settings):
    images = CourseImages(settings)
    assert images.read_build_log("ds") is None
    write_log(settings, "20261101T000000Z-1.log", "STEP 1/2\ncourse ds: version 1 published in 3.0 s: /x\n")
    last = write_log(settings, "20261102T000000Z-1.log", "STEP 1/2\nError: building at STEP 2\n")
    found = images.read_build_log("ds")
    assert found is not None and found.path == str(last) and found.outcome == "failed or unfinished"
    assert found.log == "STEP 1/2\nError: building at STEP 2\n" and not found.truncated and found.version is None
    write_log(settings, "20261103T000000Z-1.log", "course ds: version 1 is up to date (course-ds-1-x)\n")
    assert images.read_build_log("ds").outcome == "up to date"  # type: ignore[union-attr]


def test_a_versions_build_log_is_read_by_number_and_an_unknown_version_is_refused(settings):
    folder = Path(publish(settings, f"course-ds-1-{H1}")).parent
    (folder / "build.log").write_text("course ds: version 1 published in 3.0 s: /x\n")
    found = CourseImages(settings).read_build_log("ds", version=1)
    assert found is not None and found.version == 1 and found.outcome == "published"
    with pytest.raises(NotFound):
        CourseImages(settings).read_build_log("ds", version=2)
    with pytest.raises(InvalidInput):
        CourseImages(settings).read_build_log("../ds")


def test_a_long_build_log_is_read_bounded_from_a_whole_line_and_controls_are_replaced(settings):
    lines = [f"line {i:06d} " + "x" * 50 for i in range(20000)]  # ~1.2 MB
    write_log(settings, "20261101T000000Z-1.log", "\x1b[31mred\n" + "\n".join(lines) + "\n")
    found = CourseImages(settings).read_build_log("ds", max_bytes=4096)
    assert found is not None and found.truncated and len(found.log.encode()) <= 4096
    assert found.log.startswith("line ") and found.log.endswith(lines[-1] + "\n")
    write_log(settings, "20261102T000000Z-1.log", "\x1b[31mred\r\n")
    assert CourseImages(settings).read_build_log("ds").log == "\ufffd[31mred\ufffd\n"  # type: ignore[union-attr]


def test_a_build_log_that_is_a_symlink_is_not_followed(settings, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root's secret\n")
    link = settings.effective_images_dir / "logs" / "course-ds" / "20261101T000000Z-1.log"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    assert CourseImages(settings).read_build_log("ds") is None
