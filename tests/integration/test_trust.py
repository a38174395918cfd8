"""Trusted copies, in real containers: a notebook copied from the course opens trusted for its student, a copy
changed behind Jupyter's back does not, and what the student saves stays trusted across a restart."""

from __future__ import annotations

import json
import uuid

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from nbhosting_core import Hub, Launch
from tests.integration.test_flow import jupyter

pytestmark = pytest.mark.podman

NOTEBOOK = "trust/plot.ipynb"


@pytest.fixture(scope="module")
def hub(settings):
    course = settings.courses_dir / "demo" / "trust"
    course.mkdir(parents=True, exist_ok=True)
    # an output a notebook must be trusted to show (HTML with a script): what "Not Trusted" hides
    html = new_output("display_data", data={"text/html": "<b id='x'>hi</b><script>1</script>"})
    cells = [new_code_cell("1 + 1"), new_code_cell("display(HTML(...))", outputs=[html])]
    nbformat.write(new_notebook(cells=cells), str(course / "plot.ipynb"))
    return Hub(settings)


def opened(hub: Hub, student_id: str) -> Launch:
    return hub.wait_ready(hub.open_notebook("demo", NOTEBOOK, student_id), timeout=60)


def trusted(hub: Hub, launch: Launch) -> list[bool]:
    status, model = jupyter(hub, launch.key, "GET", f"/api/contents/{NOTEBOOK}")
    assert status == 200, model
    return [cell["metadata"].get("trusted") for cell in model["content"]["cells"] if cell["cell_type"] == "code"]


def test_a_copy_from_the_course_opens_trusted_and_a_copy_changed_behind_jupyters_back_does_not(hub, settings):
    launch = opened(hub, f"int-trust-{uuid.uuid4().hex[:6]}")
    assert trusted(hub, launch) == [True, True]
    copy = settings.students_dir / launch.user / "demo" / NOTEBOOK
    data = json.loads(copy.read_text())
    data["cells"][1]["outputs"][0]["data"]["text/html"] = "<script>alert('changed')</script>"
    copy.write_text(json.dumps(data))  # (as root, in the test: the student's own tools would do the same)
    assert trusted(hub, launch) == [False, False]


def test_what_the_student_saves_stays_trusted_across_a_restart(hub, settings):
    launch = opened(hub, f"int-trust-{uuid.uuid4().hex[:6]}")
    status, model = jupyter(hub, launch.key, "GET", f"/api/contents/{NOTEBOOK}")
    content = model["content"]
    content["cells"][0]["source"] = "2 + 2"
    status, _ = jupyter(hub, launch.key, "PUT", f"/api/contents/{NOTEBOOK}", {"type": "notebook", "content": content})
    assert status == 200
    assert trusted(hub, launch) == [True, True]
    [server] = [v.server for v in hub.list_servers() if v.server.key == launch.key]
    hub.stop(server.name)
    again = opened(hub, launch.student_id)
    assert again.key == launch.key and trusted(hub, again) == [True, True]
    store = settings.students_dir / launch.user / "demo" / ".local" / "share" / "jupyter" / "nbsignatures.db"
    assert store.is_file() and store.stat().st_uid == launch.uid  # the student's own store, in their workspace
