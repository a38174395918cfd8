"""The course page: a signed link shows a student the course's tracks, each notebook a working launch link, those
they opened marked; any other link gets a clear refusal and nothing is created. In-process, in-memory backend."""

from __future__ import annotations

import re
import urllib.parse

import nbformat
import pytest
from nbformat.v4 import new_notebook
from starlette.testclient import TestClient

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_core.coursepages import signed_course_page_path
from tests.server.platform import PLATFORMS, TEST

NOW = 1000.0


@pytest.fixture
def setup(tmp_path):
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", start_timeout=30, max_running=100)
    settings.data_root.mkdir(parents=True)
    settings.effective_platforms_file.write_text(PLATFORMS)
    course = settings.courses_dir / "demo"
    for path in ("intro.ipynb", "w1/a.ipynb", "w1/b.ipynb", "w2/c.ipynb", "data/not-a-course-notebook.ipynb"):
        (course / path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(new_notebook(), str(course / path))
    backend = FakeBackend(ready_after=1.0, clock=lambda: NOW)
    hub = Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), clock=lambda: NOW)
    return hub, TestClient(create_app_for(hub), base_url="https://testserver"), backend


def create_app_for(hub):
    from nbhosting_server import create_app

    return create_app(hub=hub)


def page_url(student="alice", course="demo", expires=None):
    assert TEST is not None
    return signed_course_page_path(TEST, course, student, expires or int(NOW) + 600)


def links(page: str) -> dict[str, str]:
    return {name: href.replace("&amp;", "&") for href, name in re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)}


def test_a_signed_link_shows_the_tracks_with_a_launch_link_per_notebook(setup):
    _, client, backend = setup
    response = client.get(page_url())
    assert response.status_code == 200 and response.headers["referrer-policy"] == "no-referrer"
    sections = re.findall(r"<h3>([^<]+)</h3>", response.text)
    assert sections == ["demo", "w1", "w2"]  # top notebooks, then one section per top folder; data/ is left out
    found = links(response.text)
    assert list(found) == ["intro.ipynb", "w1/a.ipynb", "w1/b.ipynb", "w2/c.ipynb"]
    assert "opened" not in response.text
    assert backend.journal == []  # a page view creates nothing
    launched = client.get(found["w1/b.ipynb"], follow_redirects=False)
    assert launched.status_code == 200 and "Starting" in launched.text


def test_the_notebooks_this_student_opened_are_marked(setup):
    _, client, _ = setup
    client.get(links(client.get(page_url()).text)["w1/a.ipynb"])
    page = client.get(page_url()).text
    assert re.search(r">w1/a\.ipynb</a> <span class=\"opened\"", page)
    assert not re.search(r">w1/b\.ipynb</a> <span", page)
    assert "opened" not in client.get(page_url(student="bob")).text  # someone else's page


def test_an_opened_notebook_offers_its_students_pages_through_its_own_signed_launch(setup):
    _, client, _ = setup
    client.get(links(client.get(page_url()).text)["w1/a.ipynb"])
    page = client.get(page_url()).text
    found = links(page)
    launch = found["w1/a.ipynb"]
    assert [found[label] for label in ("download", "share", "reset…", "backups")] == [
        f"{launch}&then={then}" for then in ("download", "share", "reset", "backups")
    ]
    assert page.count("then=") == 4  # for the notebook opened only: the others have no copy yet
    answer = client.get(found["reset…"], follow_redirects=False)
    assert answer.status_code == 200 and "Starting" in answer.text  # the launch, going on to the reset page


def test_the_links_are_for_that_student_and_course_until_the_page_expires(setup):
    _, client, _ = setup
    href = links(client.get(page_url(expires=int(NOW) + 120)).text)["w2/c.ipynb"]
    parts = urllib.parse.urlsplit(href)
    assert parts.path == "/notebookLazyCopy/demo/w2/c.ipynb/alice"
    assert dict(urllib.parse.parse_qsl(parts.query))["expires"] == str(int(NOW) + 120)


@pytest.mark.parametrize(
    ("mangle", "status"),
    [
        (lambda url: url.split("?")[0], 403),  # unsigned
        (lambda url: url.replace("/alice?", "/mallory?"), 403),  # another student
        (lambda url: url.replace("signature=", "signature=x"), 403),
        (lambda url: url.replace("/course/demo/", "/course/other/"), 403),
    ],
)
def test_any_other_link_is_refused_with_a_clear_page(setup, mangle, status):
    _, client, backend = setup
    response = client.get(mangle(page_url()))
    assert response.status_code == status and "does not come from your course" in response.text
    assert backend.journal == []


def test_an_expired_link_and_an_unknown_course_say_so(setup):
    _, client, _ = setup
    assert client.get(page_url(expires=int(NOW) - 1)).status_code == 403
    response = client.get(page_url(course="nope"))
    assert response.status_code == 404 and "no course named" in response.text
