"""Courses from git against real rootless podman and real Jupyter (root only): a Jupytext notebook opens in a
student's server, the course's data is there read-only and its modules on PYTHONPATH, a pull never touches
what the student wrote, and what a reset or a first copy brings from a pull opens trusted in the server that runs."""

from __future__ import annotations

import json
import uuid

import pytest

from nbhosting_core import Action, Hub, Launch, LaunchState
from tests.gitrepos import Upstream, notebook_text
from tests.support import Kernel, jupyter_call

pytestmark = pytest.mark.podman

QUIZ = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
---

# A Jupytext quiz

```{code-cell}
import helpers
helpers.answer()
```
"""


@pytest.fixture(scope="module")
def hub(settings):
    return Hub(settings)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    up = Upstream(tmp_path_factory.mktemp("courses") / "gitcourse")
    up.write("w1/intro.ipynb", notebook_text("'version 1'"))
    up.write("w3/quiz.md", QUIZ)
    up.write("data/numbers.csv", "1,2,3\n")
    up.write("lib/helpers.py", "def answer():\n    return 42\n")
    up.write(".nbhosting/course.toml", 'pythonpath = "lib"\n')
    up.commit("a course with a Jupytext notebook, data and modules")
    return up


@pytest.fixture(scope="module")
def course(hub, upstream):
    name = f"git-{uuid.uuid4().hex[:6]}"
    hub.courses.create(name, str(upstream.path))
    return name


def opened(hub: Hub, course: str, notebook: str, tag: str) -> Launch:
    launch = hub.wait_ready(hub.open_notebook(course, notebook, f"crs-{tag}-{uuid.uuid4().hex[:6]}"), timeout=60)
    assert launch.state is LaunchState.READY
    return launch


def test_a_jupytext_notebook_opens_as_a_notebook_in_a_real_server(hub, settings, course):
    launch = opened(hub, course, "w3/quiz", "jupytext")
    assert launch.url.endswith("/notebooks/w3/quiz.ipynb")
    status, body = jupyter_call(settings, hub.secret, launch.key, "GET", "api/contents/w3/quiz.ipynb")
    assert status == 200, body
    model = json.loads(body)
    assert model["type"] == "notebook" and model["content"]["metadata"]["kernelspec"]["name"] == "python3"
    assert [c["cell_type"] for c in model["content"]["cells"]] == ["markdown", "code"]
    assert model["content"]["cells"][1]["metadata"].get("trusted") is True  # made by nbhosting: trusted, as any copy
    copy = settings.students_dir / launch.user / course / "w3" / "quiz.ipynb"
    assert copy.stat().st_uid == launch.uid
    # the code of its cell runs: the course's modules are on PYTHONPATH
    kernel = Kernel(settings, hub.secret, launch.key)
    assert kernel.run("import helpers; print(helpers.answer())")["stdout"] == "42\n"


def test_the_courses_data_is_there_read_only_beside_the_students_notebooks(hub, settings, course):
    launch = opened(hub, course, "w1/intro.ipynb", "data")
    kernel = Kernel(settings, hub.secret, launch.key)
    assert kernel.run("print(open('data/numbers.csv').read().strip())")["stdout"] == "1,2,3\n"
    written = kernel.run(
        "import errno\ntry:\n    open('data/mine.csv', 'w')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])"
    )
    assert written["stdout"] == "EROFS\n"
    assert kernel.run("open('lib/x.py', 'w')")["error"] == "OSError"
    assert not (settings.courses_dir / course / "data" / "mine.csv").exists()


def test_a_pull_brings_new_material_and_never_touches_what_the_student_wrote(hub, settings, course, upstream):
    launch = opened(hub, course, "w1/intro.ipynb", "pull")
    mine = {"type": "notebook", "content": json.loads(notebook_text("'my own work'"))}
    status, _ = jupyter_call(settings, hub.secret, launch.key, "PUT", "api/contents/w1/intro.ipynb", mine)
    assert status == 200
    upstream.write("w1/intro.ipynb", notebook_text("'version 2'"))
    upstream.write("data/numbers.csv", "4,5,6\n").commit("version 2")
    assert hub.courses.pull(course).ok
    again = hub.wait_ready(hub.open_notebook(course, "w1/intro.ipynb", launch.student_id), timeout=60)
    assert again.key == launch.key and not again.copied
    _, body = jupyter_call(settings, hub.secret, launch.key, "GET", "api/contents/w1/intro.ipynb")
    assert "my own work" in body.decode() and "version 2" not in body.decode()
    # the running server sees the course's new data at once
    kernel = Kernel(settings, hub.secret, launch.key)
    assert kernel.run("print(open('data/numbers.csv').read().strip())")["stdout"] == "4,5,6\n"


def trusted_cells(settings, hub: Hub, key: str, notebook: str) -> tuple[str, list[bool]]:
    """The notebook as the running server reads it (its text), and whether Jupyter trusts each code cell."""
    status, body = jupyter_call(settings, hub.secret, key, "GET", f"api/contents/{notebook}")
    assert status == 200, body
    cells = json.loads(body)["content"]["cells"]
    return body.decode(), [c["metadata"].get("trusted") for c in cells if c["cell_type"] == "code"]


def test_after_a_pull_a_reset_and_a_new_notebook_open_trusted_in_the_server_already_running(
    hub, settings, course, upstream
):
    launch = opened(hub, course, "w1/intro.ipynb", "reset")
    assert trusted_cells(settings, hub, launch.key, "w1/intro.ipynb")[1] == [True]
    mine = {"type": "notebook", "content": json.loads(notebook_text("'what I wrote'"))}
    status, _ = jupyter_call(settings, hub.secret, launch.key, "PUT", "api/contents/w1/intro.ipynb", mine)
    assert status == 200
    marker = f"upstream {uuid.uuid4().hex[:6]}"
    upstream.write("w1/intro.ipynb", notebook_text(f"'{marker}'"))
    upstream.write("w4/added.ipynb", notebook_text("'added upstream'")).commit(marker)
    assert hub.courses.pull(course).ok

    # the student's copy is theirs: a pull leaves it alone
    again = hub.wait_ready(hub.open_notebook(course, "w1/intro.ipynb", launch.student_id), timeout=60)
    assert again.key == launch.key and not again.copied
    text, trusted = trusted_cells(settings, hub, launch.key, "w1/intro.ipynb")
    assert "what I wrote" in text and marker not in text and trusted == [True]  # signed by Jupyter at their save

    # a reset gives the course's new version, theirs kept as a backup, trusted in the server that runs since before
    reset = hub.work.reset(course, "w1/intro.ipynb", launch.student_id)
    assert reset.copied and reset.backup is not None
    home = settings.students_dir / launch.user
    backup = home / ".nbhosting" / "backups" / course / "w1" / "intro.ipynb" / f"{reset.backup.id}.ipynb"
    assert "what I wrote" in backup.read_text()
    text, trusted = trusted_cells(settings, hub, launch.key, "w1/intro.ipynb")
    assert marker in text and "what I wrote" not in text
    assert trusted == [True]

    # a notebook the pull brought, first opened now: copied into the same running server, and trusted there
    added = hub.wait_ready(hub.open_notebook(course, "w4/added.ipynb", launch.student_id), timeout=60)
    assert added.key == launch.key and added.copied and added.action is Action.REUSE
    text, trusted = trusted_cells(settings, hub, launch.key, "w4/added.ipynb")
    assert "added upstream" in text and trusted == [True]


def test_copies_stay_trusted_across_pulls_and_restarts_a_reset_made_while_stopped_too(hub, settings, course, upstream):
    upstream.write("w5/kept.ipynb", notebook_text("'kept 1'"))
    upstream.write("w5/reset.ipynb", notebook_text("'reset 1'")).commit("week 5")
    assert hub.courses.pull(course).ok
    launch = opened(hub, course, "w5/kept.ipynb", "restart")
    assert hub.open_notebook(course, "w5/reset.ipynb", launch.student_id).copied
    hub.stop(launch.container)

    upstream.write("w5/kept.ipynb", notebook_text("'kept 2'"))
    upstream.write("w5/reset.ipynb", notebook_text("'reset 2'")).commit("week 5, second version")
    assert hub.courses.pull(course).ok
    assert hub.work.reset(course, "w5/reset.ipynb", launch.student_id).copied  # while stopped: the second version
    upstream.write("w5/reset.ipynb", notebook_text("'reset 3'")).commit("week 5, third version")
    assert hub.courses.pull(course).ok

    # started again: the course lists its third versions, root's record the copies it made before
    again = hub.wait_ready(hub.open_notebook(course, "w5/kept.ipynb", launch.student_id), timeout=60)
    assert again.key == launch.key and again.action is Action.START and not again.copied
    text, trusted = trusted_cells(settings, hub, launch.key, "w5/kept.ipynb")
    assert "kept 1" in text and trusted == [True]
    text, trusted = trusted_cells(settings, hub, launch.key, "w5/reset.ipynb")
    assert "reset 2" in text and trusted == [True]
