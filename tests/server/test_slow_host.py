"""A slow host (a lecture starting: the helper's queue is long): every student gets the progress page at once, and
its polls learn how the open ended, without asking the host again meanwhile (TestClient, in-memory backend)."""

import json
import re
import threading
import time

import nbformat
import pytest
from nbformat.v4 import new_notebook
from starlette.testclient import TestClient

from nbhosting_core import Busy, FakeAccounts, FakeBackend, Hub, Launch, Requester, Settings
from nbhosting_core.gate import Gate
from nbhosting_server import app as app_module
from nbhosting_server import create_app
from tests.server.platform import PLATFORMS, signed_url


class SlowHost:
    """The hub, whose opens wait until ``go`` is set (or fail with ``failure``); counts what it is asked."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.go = threading.Event()
        self.failure: Exception | None = None
        self.opens = 0
        self.statuses = 0

    def open_notebook(
        self, course: str, notebook: str, student_id: str, *, requester: Requester | None = None
    ) -> Launch:
        self.opens += 1
        assert self.go.wait(30)
        if self.failure is not None:
            raise self.failure
        return self.hub.open_notebook(course, notebook, student_id, requester=requester)

    def launch_status(self, course: str, notebook: str, student_id: str) -> Launch:
        self.statuses += 1
        return self.hub.launch_status(course, notebook, student_id)


@pytest.fixture
def slow(tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "ANSWER_WITHIN", 0.05)
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run")
    settings.data_root.mkdir(parents=True)
    settings.effective_platforms_file.write_text(PLATFORMS)
    (settings.courses_dir / "demo").mkdir(parents=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "demo" / "a.ipynb"))
    hub = Hub(settings, backend=FakeBackend(ready_after=0.0), accounts=FakeAccounts(settings.students_dir))
    host = SlowHost(hub)
    with TestClient(create_app(settings, launcher=host, gate=Gate.of(hub)), base_url="https://testserver") as client:
        yield host, client
    host.go.set()


def poll_url(page: str) -> str:
    launch = json.loads(re.search(r"var launch = (\"[^\"]*\")", page).group(1))
    return launch + "&status=1"


def until_done(host: SlowHost, client: TestClient, url: str) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = client.get(url)
        if answer.json()["state"] != "starting" or host.statuses:
            return {"status": answer.status_code, **answer.json()}
        time.sleep(0.02)
    raise AssertionError("the open never ended")


def test_a_launch_the_host_is_slow_to_open_gets_the_progress_page_at_once_and_its_polls_do_not_ask_again(slow):
    host, client = slow
    started = time.monotonic()
    page = client.get(signed_url(time.time(), "alice"))
    assert page.status_code == 200 and "Starting your notebook" in page.text
    assert time.monotonic() - started < 5
    for _ in range(3):
        poll = client.get(poll_url(page.text))
        assert poll.status_code == 200 and poll.json() == {"state": "starting", "url": None}
    assert host.opens == 1 and host.statuses == 0  # one open, the polls answered by the app itself
    host.go.set()
    done = until_done(host, client, poll_url(page.text))
    assert done["status"] == 200 and done["state"] == "ready" and done["url"]
    assert host.opens == 1  # the open that ended was taken up, not made again


def test_a_refusal_of_an_open_that_outlived_the_first_answer_is_what_the_next_poll_says(slow):
    host, client = slow
    page = client.get(signed_url(time.time(), "bob"))
    assert page.status_code == 200 and "Starting your notebook" in page.text
    host.failure = Busy("Too many notebooks are being opened from here right now.", retry_after=7.0, why="client:x")
    host.go.set()
    deadline = time.monotonic() + 10
    while (poll := client.get(poll_url(page.text))).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert poll.status_code == 503 and poll.json()["state"] == "busy" and poll.json()["retry_after"] == 7
    assert host.opens == 1 and host.statuses == 0
