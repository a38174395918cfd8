"""The app and courses: an archived course's launches get a clear 410 page (and JSON for polls); a Jupytext
notebook named without extension launches. In-process (TestClient), on the in-memory backend."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from nbhosting_core import FakeAccounts, FakeBackend, Hub
from nbhosting_core.helper.protocol import ErrorBody, error_body, error_of
from nbhosting_server import create_app
from tests.server.platform import demo_settings, signed_url

NOW = 1000.0


@pytest.fixture
def setup(tmp_path):
    settings = demo_settings(tmp_path)
    (settings.courses_dir / "demo" / "b.md").write_text("# a Jupytext notebook\n\n```python\n1 + 1\n```\n")
    backend = FakeBackend(ready_after=1.0, clock=lambda: NOW)
    hub = Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), clock=lambda: NOW)
    return hub, TestClient(create_app(hub=hub), base_url="https://testserver"), backend


def test_an_archived_courses_launch_gets_a_clear_410_page_and_creates_nothing(setup):
    hub, client, backend = setup
    hub.courses.archive("demo")
    response = client.get(signed_url(NOW, "alice", "a.ipynb", "demo"))
    assert response.status_code == 410 and "text/html" in response.headers["content-type"]
    assert "This course is closed" in response.text and "no longer be opened" in response.text
    assert "Traceback" not in response.text and "retry" not in response.text.lower()
    assert backend.journal == [] and not hub.settings.students_dir.exists()


def test_an_archived_courses_poll_answers_json(setup):
    hub, client, _ = setup
    hub.courses.archive("demo")
    response = client.get(signed_url(NOW, "alice", "a.ipynb", "demo") + "&status=1")
    assert response.status_code == 410
    assert response.json()["state"] == "failed" and response.json()["reason"] == "course-archived"


def test_the_archived_refusal_crosses_the_helper_as_itself():
    from nbhosting_core import CourseArchived

    again = error_of(ErrorBody.model_validate(error_body(CourseArchived("closed")).model_dump()))
    assert isinstance(again, CourseArchived) and again.message == "closed"


def test_a_jupytext_notebook_named_without_extension_launches(setup):
    hub, client, _ = setup
    response = client.get(signed_url(NOW, "alice", "b", "demo"), follow_redirects=False)
    assert response.status_code == 200 and "Starting" in response.text
    (user,) = [p.name for p in hub.settings.students_dir.iterdir()]
    assert (hub.settings.students_dir / user / "demo" / "b.ipynb").is_file()
