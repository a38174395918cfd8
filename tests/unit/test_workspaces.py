import os
from pathlib import PurePosixPath

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import Account, InvalidInput, InvalidNotebook, NotFound, Settings
from nbhosting_core.workspaces import Workspaces


@pytest.fixture
def env(tmp_path):
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run")
    course = settings.courses_dir / "c1"
    (course / "w1").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("1+1")]), str(course / "w1" / "a.ipynb"))
    (course / "broken.ipynb").write_text("{not json")
    home = settings.students_dir / "nbh-x"
    home.mkdir(parents=True)
    account = Account(student_id="x", user="nbh-x", uid=os.getuid(), gid=os.getgid(), home=home)
    return Workspaces(settings), account, course, home


def test_first_access_copies_the_course_notebook(env):
    ws, account, course, home = env
    assert ws.ensure_copy(account, "c1", PurePosixPath("w1/a.ipynb")) is True
    copy = home / "c1" / "w1" / "a.ipynb"
    assert copy.read_bytes() == (course / "w1" / "a.ipynb").read_bytes()
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".nbh-copy")]


def test_an_existing_student_copy_is_never_overwritten(env):
    ws, account, _, home = env
    ws.ensure_copy(account, "c1", PurePosixPath("w1/a.ipynb"))
    copy = home / "c1" / "w1" / "a.ipynb"
    copy.write_text("my own work")
    assert ws.ensure_copy(account, "c1", PurePosixPath("w1/a.ipynb")) is False
    assert copy.read_text() == "my own work"


def test_a_symlink_planted_in_the_workspace_is_not_followed(env, tmp_path):
    ws, account, _, home = env
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "c1").mkdir()
    (home / "c1" / "w1").symlink_to(outside)
    with pytest.raises(InvalidInput, match="not a plain folder"):
        ws.ensure_copy(account, "c1", PurePosixPath("w1/a.ipynb"))
    assert list(outside.iterdir()) == []


def test_a_symlinked_notebook_name_is_left_alone(env, tmp_path):
    ws, account, _, home = env
    target = tmp_path / "target"
    (home / "c1" / "w1").mkdir(parents=True)
    (home / "c1" / "w1" / "a.ipynb").symlink_to(target)
    assert ws.ensure_copy(account, "c1", PurePosixPath("w1/a.ipynb")) is False
    assert not target.exists()


def test_unknown_course_or_notebook_is_not_found(env):
    ws, account, _, home = env
    with pytest.raises(NotFound, match="no course"):
        ws.ensure_copy(account, "nope", PurePosixPath("a.ipynb"))
    with pytest.raises(NotFound, match="no notebook"):
        ws.ensure_copy(account, "c1", PurePosixPath("w1/zz.ipynb"))
    assert not (home / "nope").exists()


def test_a_course_symlink_leading_outside_the_course_is_refused(env, tmp_path):
    ws, account, course, _ = env
    secret = tmp_path / "secret.ipynb"
    secret.write_text("{}")
    (course / "evil.ipynb").symlink_to(secret)
    with pytest.raises(InvalidInput, match="outside"):
        ws.ensure_copy(account, "c1", PurePosixPath("evil.ipynb"))


def test_an_invalid_course_notebook_is_reported_and_not_copied(env):
    ws, account, _, home = env
    with pytest.raises(InvalidNotebook, match="broken.ipynb"):
        ws.ensure_copy(account, "c1", PurePosixPath("broken.ipynb"))
    assert not (home / "c1" / "broken.ipynb").exists()


def test_has_copy_sees_files_and_dangling_links(env, tmp_path):
    ws, account, _, home = env
    assert not ws.has_copy(account, "c1", PurePosixPath("w1/a.ipynb"))
    ws.ensure_copy(account, "c1", PurePosixPath("w1/a.ipynb"))
    assert ws.has_copy(account, "c1", PurePosixPath("w1/a.ipynb"))
    (home / "c1" / "dangling.ipynb").symlink_to(tmp_path / "nowhere")
    assert ws.has_copy(account, "c1", PurePosixPath("dangling.ipynb"))
