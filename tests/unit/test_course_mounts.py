"""What a notebook server sees of its course: read-only folders at the same place in the workspace, and the
Python modules folder on PYTHONPATH (the container spec, pure; the folders checked on a real checkout)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from nbhosting_core import Account, Settings
from nbhosting_core.containers import WORKDIR, container_spec
from nbhosting_core.courseconfig import CourseConfig, CourseMounts, parse_course_config

KEY = "c" * 40


def spec(mounts: CourseMounts | None):
    account = Account(student_id="st", user="nbh-u", uid=1000001, gid=1000001, home=Path("/h"))
    return container_spec(
        Settings(),
        account,
        "c1",
        KEY,
        "TOKEN",
        Path("/h/c1"),
        Path("/run/x"),
        Path("/rootfs"),
        course_mounts=mounts,
    )


def test_without_course_mounts_the_spec_is_unchanged():
    assert spec(None) == spec(CourseMounts(checkout=Path("/courses/c1")))


def test_read_only_folders_are_bound_read_only_over_the_same_paths_of_the_workspace():
    s = spec(CourseMounts(checkout=Path("/courses/c1"), readonly=[PurePosixPath("media/img"), PurePosixPath("data")]))
    binds = [m for m in s["mounts"] if m["source"].startswith("/courses/")]
    assert binds == [
        {
            "destination": f"{WORKDIR}/data",
            "source": "/courses/c1/data",
            "type": "bind",
            "options": ["rbind", "ro", "nosuid", "nodev"],
        },
        {
            "destination": f"{WORKDIR}/media/img",
            "source": "/courses/c1/media/img",
            "type": "bind",
            "options": ["rbind", "ro", "nosuid", "nodev"],
        },
    ]
    assert "PYTHONPATH" not in s["env"]


def test_the_python_modules_folder_is_read_only_and_on_pythonpath():
    s = spec(CourseMounts(checkout=Path("/courses/c1"), pythonpath=PurePosixPath("lib")))
    (bind,) = [m for m in s["mounts"] if m["source"] == "/courses/c1/lib"]
    assert bind["destination"] == f"{WORKDIR}/lib" and "ro" in bind["options"]
    assert s["env"]["PYTHONPATH"] == f"{WORKDIR}/lib"


def test_only_plain_folders_of_the_checkout_are_mounted(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "media").symlink_to("/etc")
    (tmp_path / "tools").symlink_to(tmp_path / "lib")
    defaults = CourseConfig().mounts(tmp_path)
    assert defaults.readonly == [PurePosixPath("data")] and defaults.pythonpath is None
    linked = parse_course_config('readonly = ["media", "nothing"]\npythonpath = "tools"\n').mounts(tmp_path)
    assert linked.readonly == [] and linked.pythonpath is None
    chosen = parse_course_config('readonly = ["data"]\npythonpath = "lib"\n').mounts(tmp_path)
    assert chosen.readonly == [PurePosixPath("data")] and chosen.pythonpath == PurePosixPath("lib")
