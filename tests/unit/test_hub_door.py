"""The hub asks the door before it makes anything: rates for what creates, the cap for what would run.

Against the in-memory backend and the real counters (SQLite in a temporary RUN_DIR): the hub decides whether a
launch would make something, the counters hold across processes (tests/unit/test_counters.py).
"""

from __future__ import annotations

import logging
import threading

import nbformat
import pytest
from nbformat.v4 import new_notebook

from nbhosting_core import Busy, FakeAccounts, FakeBackend, Hub, NotFound, OverQuota, Requester, Settings
from nbhosting_core.system.quota import NoQuota

EDX = Requester(platform="edx", address="203.0.113.7")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def make_hub(tmp_path, clock, **overrides):
    values = dict(
        data_root=tmp_path / "data",
        run_dir=tmp_path / "run",
        creation_platform_burst=100,
        creation_client_burst=3,
        creation_client_per_minute=2,
        max_running=100,
        busy_retry_after=30,
    )
    settings = Settings(**(values | overrides))
    (settings.courses_dir / "python").mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "python" / "intro.ipynb"))
    backend = FakeBackend(clock=clock)
    return Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), clock=clock), backend


def open_as(hub, student, requester=EDX, course="python"):
    return hub.open_notebook(course, "intro.ipynb", student, requester=requester)


def made(hub, backend):
    return [verb for verb, _ in backend.journal], list(hub.accounts.created)


def test_new_students_beyond_a_clients_burst_are_refused_with_when_to_come_back_and_nothing_is_made(tmp_path, clock):
    hub, backend = make_hub(tmp_path, clock)
    for i in range(3):
        open_as(hub, f"s{i}")
    before = made(hub, backend)
    with pytest.raises(Busy) as refused:
        open_as(hub, "s3")
    assert refused.value.why == "client:203.0.113.7" and refused.value.retry_after == 30
    assert made(hub, backend) == before  # no account, no server
    clock.now += 30
    open_as(hub, "s3")  # one more after the sustained interval


def test_reopening_a_running_server_never_asks_the_door(tmp_path, clock):
    hub, backend = make_hub(tmp_path, clock, max_running=1, creation_client_burst=1)
    first = open_as(hub, "alice")
    for _ in range(20):  # the client's burst and the cap are both spent: alice's server runs, she gets it back
        assert open_as(hub, "alice").key == first.key
    with pytest.raises(Busy):
        open_as(hub, "bob")


def test_a_second_course_of_a_known_student_is_a_creation(tmp_path, clock):
    hub, _ = make_hub(tmp_path, clock, creation_client_burst=1)
    (hub.settings.courses_dir / "other").mkdir()
    nbformat.write(new_notebook(), str(hub.settings.courses_dir / "other" / "intro.ipynb"))
    open_as(hub, "alice")
    with pytest.raises(Busy):
        open_as(hub, "alice", course="other")


def test_starting_a_stopped_server_meets_the_cap_but_draws_on_no_rate(tmp_path, clock):
    hub, backend = make_hub(tmp_path, clock, max_running=1, creation_client_burst=1)
    alice = open_as(hub, "alice")
    hub.stop(alice.container)
    again = open_as(hub, "alice")  # the client's burst is spent: a start is not a creation
    assert again.key == alice.key and backend.journal[-1] == ("start", alice.container)
    hub.stop(alice.container)
    open_as(hub, "bob", requester=Requester("edx", "198.51.100.9"))  # takes the only place
    with pytest.raises(Busy) as refused:
        open_as(hub, "alice")
    assert refused.value.why == "cap"


def test_a_broken_server_replaced_is_a_creation(tmp_path, clock):
    hub, backend = make_hub(tmp_path, clock, creation_client_burst=1)
    alice = open_as(hub, "alice")
    backend.break_server(alice.container)
    with pytest.raises(Busy) as refused:
        open_as(hub, "alice")
    assert refused.value.why.startswith("client:")


def test_the_cap_refuses_new_servers_and_frees_a_place_when_one_stops(tmp_path, clock):
    hub, backend = make_hub(tmp_path, clock, max_running=2)
    a = open_as(hub, "a", requester=Requester("edx", "198.51.100.1"))
    open_as(hub, "b", requester=Requester("edx", "198.51.100.2"))
    with pytest.raises(Busy) as refused:
        open_as(hub, "c", requester=Requester("edx", "198.51.100.3"))
    assert refused.value.why == "cap" and refused.value.retry_after == 30
    assert "c" not in str(hub.accounts.created) and len(backend.list_servers()) == 2
    hub.stop(a.container)
    open_as(hub, "c", requester=Requester("edx", "198.51.100.3"))


def test_an_admins_launch_draws_on_no_rate_but_meets_the_cap(tmp_path, clock):
    hub, _ = make_hub(tmp_path, clock, max_running=5, creation_client_burst=1, creation_platform_burst=1)
    for i in range(5):
        open_as(hub, f"s{i}", requester=None)
    with pytest.raises(Busy) as refused:
        open_as(hub, "s5", requester=None)
    assert refused.value.why == "cap"


@pytest.mark.parametrize(("course", "notebook"), [("nope", "intro.ipynb"), ("python", "missing.ipynb")])
def test_unknown_courses_and_notebooks_are_refused_before_the_door_is_asked(tmp_path, clock, course, notebook):
    hub, backend = make_hub(tmp_path, clock, creation_client_burst=1)
    for i in range(10):
        with pytest.raises(NotFound):
            hub.open_notebook(course, notebook, f"s{i}", requester=EDX)
    assert made(hub, backend) == ([], [])
    open_as(hub, "real")  # the client's one creation is still there: unknown links drew nothing


def test_a_launch_that_fails_gives_its_place_under_the_cap_back(tmp_path, clock):
    class FullQuota(NoQuota):
        full = True

        def check(self, account):
            if self.full:
                raise OverQuota("full", log_detail=account.user)

    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=1)
    (settings.courses_dir / "python").mkdir(parents=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "python" / "intro.ipynb"))
    quota = FullQuota(settings)
    hub = Hub(
        settings,
        backend=FakeBackend(clock=clock),
        accounts=FakeAccounts(settings.students_dir),
        quota=quota,
        clock=clock,
    )
    with pytest.raises(OverQuota):
        open_as(hub, "alice")
    assert hub.counters.counts(now=clock.now, ttl=60).claims == {}
    quota.full = False
    open_as(hub, "bob")  # alice's failed launch holds no place


def test_the_door_logs_who_asked_what_and_why(tmp_path, clock, caplog):
    hub, _ = make_hub(tmp_path, clock, creation_client_burst=1)
    with caplog.at_level(logging.INFO, logger="nbhosting_core.hub"):
        alice = open_as(hub, "alice")
        with pytest.raises(Busy):
            open_as(hub, "bob")
    allowed, refused = (r.getMessage() for r in caplog.records if r.getMessage().startswith("door:"))
    assert f"allowed create (new account) user={alice.user} platform=edx client=203.0.113.7" in allowed
    assert "refused create (new account)" in refused and "client:203.0.113.7" in refused and "retry in 30s" in refused


def test_launches_at_once_never_run_more_servers_than_the_cap(tmp_path, clock):
    hub, backend = make_hub(tmp_path, clock, max_running=3)
    outcomes: list[str] = []

    def one(i: int) -> None:
        try:
            open_as(hub, f"s{i}", requester=Requester("edx", f"198.51.100.{i}"))
            outcomes.append("ok")
        except Busy as exc:
            outcomes.append(exc.why)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["cap"] * 9 + ["ok"] * 3
    assert len(backend.list_running()) == 3
    assert hub.counters.counts(now=clock.now, ttl=60).claims == {}  # released: the running servers count
