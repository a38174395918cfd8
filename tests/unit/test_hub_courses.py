"""The hub with courses from git: a pull never touches students' copies, archived courses refuse launches, and
Jupytext notebooks open as .ipynb. A real Hub on the in-memory backend, real git repositories."""

from __future__ import annotations

import pytest

from nbhosting_core import CourseArchived, FakeAccounts, FakeBackend, Hub, Settings
from tests.gitrepos import course_repo, notebook_text

MARKDOWN = "---\njupytext:\n  text_representation:\n    format_name: myst\n---\n\n```{code-cell}\n6 * 7\n```\n"


@pytest.fixture
def hub(tmp_path):
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=100)
    return Hub(settings, backend=FakeBackend(), accounts=FakeAccounts(settings.students_dir))


@pytest.fixture
def upstream(tmp_path):
    return course_repo(tmp_path / "upstream")


def test_a_notebook_changed_upstream_after_a_student_edited_it_stays_the_students(hub, upstream):
    hub.courses.create("python", str(upstream.path))
    launch = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    copy = hub.settings.students_dir / launch.user / "python" / "w1" / "intro.ipynb"
    copy.write_text("alice's own work")
    upstream.write("w1/intro.ipynb", notebook_text("'the new version'")).commit("intro rewritten")
    assert hub.courses.pull("python").ok
    assert "the new version" in (hub.courses.path("python") / "w1" / "intro.ipynb").read_text()
    again = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    assert not again.copied and copy.read_text() == "alice's own work"
    bob = hub.open_notebook("python", "w1/intro.ipynb", "bob")  # a newcomer gets the new version
    bobs = hub.settings.students_dir / bob.user / "python" / "w1" / "intro.ipynb"
    assert bob.copied and "the new version" in bobs.read_text()


def test_an_archived_course_refuses_launches_and_makes_nothing(hub, upstream):
    hub.courses.create("python", str(upstream.path))
    hub.courses.archive("python")
    with pytest.raises(CourseArchived) as refused:
        hub.open_notebook("python", "w1/intro.ipynb", "alice")
    assert "closed" in refused.value.message
    assert hub.accounts.find("alice") is None and hub.backend.list_servers() == []
    hub.courses.unarchive("python")
    assert hub.open_notebook("python", "w1/intro.ipynb", "alice").copied


def test_a_jupytext_notebook_opens_as_the_students_ipynb(hub, upstream):
    upstream.write("w3/quiz.md", MARKDOWN).commit("a Jupytext notebook")
    hub.courses.create("python", str(upstream.path))
    launch = hub.open_notebook("python", "w3/quiz", "alice")
    assert launch.notebook == "w3/quiz.ipynb" and launch.url.endswith("/w3/quiz.ipynb")
    copy = hub.settings.students_dir / launch.user / "python" / "w3" / "quiz.ipynb"
    assert launch.copied and "6 * 7" in copy.read_text()
    status = hub.launch_status("python", "w3/quiz.md", "alice")
    assert status.url == launch.url


def test_the_course_chooses_its_ui_else_the_hosts(hub, upstream):
    hub.courses.create("python", str(upstream.path))  # its course.toml says ui = "lab"
    assert hub.settings.ui == "notebook"
    launch = hub.open_notebook("python", "w1/intro", "alice")
    assert launch.url == f"/nb/{launch.key}/lab/tree/w1/intro.ipynb"
    upstream.write(".nbhosting/course.toml", "").commit("no preference")
    hub.courses.pull("python")
    assert hub.launch_status("python", "w1/intro", "alice").url == f"/nb/{launch.key}/notebooks/w1/intro.ipynb"


def test_a_copy_waits_while_a_pull_rewrites_the_course_and_then_gets_the_whole_new_file(hub, upstream):
    import threading
    import time

    hub.courses.create("python", str(upstream.path))
    done: list[str] = []
    with hub.courses.changing("python"):  # a pull's reset in progress
        opener = threading.Thread(target=lambda: done.append(hub.open_notebook("python", "w1/intro", "alice").user))
        opener.start()
        time.sleep(0.5)
        assert done == []  # the launch waits: no copy is read from a checkout being rewritten
        intro = hub.courses.path("python") / "w1" / "intro.ipynb"
        intro.write_text(notebook_text("'rewritten meanwhile'"))
    opener.join(timeout=10)
    assert done and "rewritten meanwhile" in (hub.settings.students_dir / done[0] / "python/w1/intro.ipynb").read_text()


def test_a_refused_configuration_is_reported_with_its_line_and_never_stops_launches(hub, upstream):
    from nbhosting_core import InvalidInput
    from nbhosting_core.system.courseimages import course_image_choice

    upstream.write(".nbhosting/course.toml", 'ui = "lab"\nimage = "../elsewhere"\n').commit("a typo")
    hub.courses.create("python", str(upstream.path))
    with pytest.raises(InvalidInput, match=r"course\.toml, line 2: image"):
        course_image_choice(hub.courses.path("python"))  # what `nbh course build` says
    assert "line 2" in (hub.courses.show("python").config_error or "")
    launch = hub.open_notebook("python", "w1/intro", "alice")  # served with the defaults meanwhile
    assert launch.copied and "/notebooks/" in launch.url and hub.image_for("python") is None
