"""Abuse at the door, through the app (TestClient, in-memory backend): 503 + Retry-After, and what never counts."""

import json
import re

import nbformat
import pytest
from nbformat.v4 import new_notebook
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_server import create_app
from tests.server.platform import PLATFORMS, signed_url


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def url(student, notebook="a.ipynb", course="demo"):
    return signed_url(Clock.now, student, notebook, course)


class Door:
    """An app whose door lets each client create 3 servers at once, then one every 30 s, and at most ``cap`` run."""

    def __init__(self, tmp_path, cap=100):
        self.settings = Settings(
            data_root=tmp_path / "data",
            run_dir=tmp_path / "run",
            creation_client_burst=3,
            creation_client_per_minute=2,
            max_running=cap,
            busy_retry_after=20,
        )
        self.settings.data_root.mkdir(parents=True)
        self.settings.effective_platforms_file.write_text(PLATFORMS)
        (self.settings.courses_dir / "demo").mkdir(parents=True)
        nbformat.write(new_notebook(), str(self.settings.courses_dir / "demo" / "a.ipynb"))
        self.clock = Clock()
        self.backend = FakeBackend(ready_after=1.0, clock=self.clock)
        self.accounts = FakeAccounts(self.settings.students_dir)
        self.hub = Hub(self.settings, backend=self.backend, accounts=self.accounts, clock=self.clock)
        self.app = create_app(hub=self.hub)

    def client(self, address="203.0.113.7"):
        return TestClient(self.app, base_url="https://testserver", client=(address, 40000))

    def created(self):
        return [verb for verb, _ in self.backend.journal if verb == "create"]


@pytest.fixture
def door(tmp_path):
    return Door(tmp_path)


def test_a_burst_beyond_the_limit_gets_503_with_retry_after_and_creates_nothing_more(door):
    client = door.client()
    for i in range(3):
        assert client.get(url(f"s{i}")).status_code == 200  # the progress page
    for i in range(3, 10):
        refused = client.get(url(f"s{i}"))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "30"
        assert "Notebooks are busy right now" in refused.text and "tries again by itself" in refused.text
        assert "text/html" in refused.headers["content-type"] and "Traceback" not in refused.text
    assert len(door.created()) == 3 and len(door.accounts.created) == 3


def test_the_busy_page_launches_again_by_itself_keeping_the_query_string(door):
    client = door.client()
    for i in range(3):
        client.get(url(f"s{i}"))
    launch = url("late")
    page = client.get(launch).text
    again = json.loads(re.search(r"var again = (\"[^\"]*\")", page).group(1))
    assert again == launch and "signature=" in again  # the signed launch exactly as sent
    assert '<meta http-equiv="refresh" content="30">' in page  # without scripts too


def test_a_poll_that_would_create_past_the_limit_answers_busy_in_json(door):
    client = door.client()
    for i in range(3):
        client.get(url(f"s{i}"))
    poll = client.get(url("late") + "&status=1")
    assert poll.status_code == 503 and poll.headers["retry-after"] == "30"
    assert poll.json()["state"] == "busy" and poll.json()["retry_after"] == 30 and poll.json()["reason"] == "busy"
    assert "in a moment" in poll.json()["message"]


def test_the_limit_lets_a_client_in_again_at_the_sustained_rate(door):
    client = door.client()
    for i in range(4):
        client.get(url(f"s{i}"))
    door.clock.now += 30
    assert client.get(url("s4")).status_code == 200
    assert client.get(url("s5")).status_code == 503


def test_reopening_a_running_server_is_never_limited(door):
    client = door.client()
    for i in range(3):
        client.get(url(f"s{i}"))
    assert client.get(url("s3")).status_code == 503  # the client's creations are spent
    door.clock.now += 1  # the servers answer
    for _ in range(30):
        again = client.get(url("s0"), follow_redirects=False)
        assert again.status_code == 302 and "/_nbh/ticket?t=" in again.headers["location"]
        assert client.get(url("s1") + "&status=1").json()["state"] == "ready"
    assert len(door.created()) == 3


def test_the_cap_of_running_servers_answers_503_until_one_stops(tmp_path):
    door = Door(tmp_path, cap=2)
    door.client("198.51.100.1").get(url("a"))
    door.client("198.51.100.2").get(url("b"))
    refused = door.client("198.51.100.3").get(url("c"))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "20"
    assert "All notebook servers are in use" in refused.text
    assert len(door.created()) == 2
    door.hub.stop(door.backend.list_servers()[0].name)
    assert door.client("198.51.100.3").get(url("c")).status_code == 200


@pytest.mark.parametrize(("course", "notebook", "status"), [("nope", "a.ipynb", 404), ("demo", "no.ipynb", 404)])
def test_unknown_courses_and_notebooks_are_refused_before_the_door_and_draw_nothing(door, course, notebook, status):
    client = door.client()
    for i in range(20):
        response = client.get(url(f"s{i}", notebook=notebook, course=course))
        assert response.status_code == status and "retry-after" not in response.headers
    assert door.created() == [] and door.accounts.created == []
    assert client.get(url("real")).status_code == 200  # the client's burst is whole


def test_clients_are_counted_apart_by_the_address_the_proxy_forwards(door):
    behind_caddy = TestClient(
        ProxyHeadersMiddleware(door.app, trusted_hosts="127.0.0.1"),  # as `nbh serve` runs uvicorn
        base_url="https://testserver",
        client=("127.0.0.1", 40000),
    )
    for i in range(3):
        assert behind_caddy.get(url(f"a{i}"), headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    assert behind_caddy.get(url("a3"), headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 503
    assert behind_caddy.get(url("b0"), headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200


def test_a_client_that_is_not_the_proxy_cannot_choose_the_address_it_is_counted_as(door):
    direct = TestClient(
        ProxyHeadersMiddleware(door.app, trusted_hosts="127.0.0.1"),
        base_url="https://testserver",
        client=("203.0.113.9", 40000),
    )
    codes = [direct.get(url(f"s{i}"), headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(5)]
    assert codes == [200, 200, 200, 503, 503]
