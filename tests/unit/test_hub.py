"""The hub's every flow, against the in-memory backend: open, follow a start, authorise, stop, cull, and failures.

Milliseconds each: no root, no podman. The same flows run for real in tests/integration.
"""

from __future__ import annotations

import threading

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import (
    Action,
    FakeAccounts,
    FakeBackend,
    Hub,
    InvalidInput,
    InvalidNotebook,
    LaunchRefused,
    LaunchState,
    NotFound,
    RuntimeUnavailable,
    ServerActivity,
    ServerState,
    Settings,
    StartFailed,
    StartTimeout,
    Usage,
)
from nbhosting_core.access import COOKIE_NAME
from tests.support import gate_of


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings(tmp_path):
    s = Settings(
        data_root=tmp_path / "data", run_dir=tmp_path / "run", start_timeout=30, idle_timeout=7200, max_running=100
    )
    course = s.courses_dir / "python"
    (course / "w1").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("1 + 1")]), str(course / "w1" / "intro.ipynb"))
    nbformat.write(new_notebook(cells=[new_code_cell("2 + 2")]), str(course / "loops.ipynb"))
    (course / "broken.ipynb").write_text("{not a notebook")
    return s


@pytest.fixture
def backend(clock):
    return FakeBackend(ready_after=2.0, clock=clock)


@pytest.fixture
def accounts(settings):
    return FakeAccounts(settings.students_dir)


@pytest.fixture
def hub(settings, backend, accounts, clock):
    return Hub(settings, backend=backend, accounts=accounts, clock=clock)


# ------------------------------------------------------------------------------------------ opening


def test_a_first_open_creates_the_account_the_copy_and_a_starting_server(hub, settings, backend, accounts):
    launch = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    assert launch.state is LaunchState.STARTING and launch.action is Action.CREATE and launch.created
    assert launch.copied and accounts.created == ["alice"]
    copy = settings.students_dir / launch.user / "python" / "w1" / "intro.ipynb"
    assert copy.read_bytes() == (settings.courses_dir / "python" / "w1" / "intro.ipynb").read_bytes()
    assert launch.url == f"/nb/{launch.key}/notebooks/w1/intro.ipynb"
    assert backend.workspace_of(launch.container) == settings.students_dir / launch.user / "python"


def test_the_launch_is_followed_until_jupyter_answers(hub, clock):
    launch = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    assert hub.launch_status("python", "w1/intro.ipynb", "alice").state is LaunchState.STARTING
    clock.advance(2)
    ready = hub.launch_status("python", "w1/intro.ipynb", "alice")
    assert ready.state is LaunchState.READY and ready.key == launch.key


def test_opening_again_reuses_the_server_and_never_overwrites_the_students_copy(hub, settings, clock):
    first = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    copy = settings.students_dir / first.user / "python" / "w1" / "intro.ipynb"
    copy.write_text("my own work")
    clock.advance(5)
    again = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    assert again.key == first.key and again.action is Action.REUSE and again.state is LaunchState.READY
    assert not again.copied and copy.read_text() == "my own work"


def test_a_second_notebook_of_the_course_opens_in_the_same_server(hub):
    first = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    second = hub.open_notebook("python", "loops.ipynb", "alice")
    assert second.key == first.key and second.copied and not second.created


def test_two_students_get_two_servers(hub):
    alice = hub.open_notebook("python", "loops.ipynb", "alice")
    bob = hub.open_notebook("python", "loops.ipynb", "bob")
    assert alice.user != bob.user and alice.key != bob.key and alice.container != bob.container


def test_concurrent_opens_of_one_student_give_one_server(hub, backend):
    launches = []
    threads = [
        threading.Thread(target=lambda: launches.append(hub.open_notebook("python", "loops.ipynb", "zoe")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({launch.key for launch in launches}) == 1
    assert sum(launch.created for launch in launches) == 1
    assert [verb for verb, _ in backend.journal] == ["create"]


@pytest.mark.parametrize(
    ("course", "notebook", "student", "error"),
    [
        ("bad..course", "loops.ipynb", "alice", InvalidInput),
        ("python", "../etc/passwd.ipynb", "alice", InvalidInput),
        ("python", "loops.ipynb", "bad id", InvalidInput),
        ("nope", "loops.ipynb", "alice", NotFound),
        ("python", "missing.ipynb", "alice", NotFound),
        ("python", "broken.ipynb", "alice", InvalidNotebook),
    ],
)
def test_bad_launches_create_nothing(hub, backend, accounts, course, notebook, student, error):
    with pytest.raises(error):
        hub.open_notebook(course, notebook, student)
    assert accounts.created == [] and backend.journal == []


def test_an_engine_that_cannot_be_reached_fails_the_launch_and_the_next_one_works(hub, backend):
    backend.unavailable()
    with pytest.raises(RuntimeUnavailable):
        hub.open_notebook("python", "loops.ipynb", "alice")
    assert hub.open_notebook("python", "loops.ipynb", "alice").created


# ------------------------------------------------------------------------------- failures while starting


def test_a_server_that_dies_while_starting_is_reported_and_removed_so_the_retry_starts_afresh(hub, backend):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    backend.crash(launch.container, output="ImportError: no module named jupyter_server")
    with pytest.raises(StartFailed) as failure:
        hub.launch_status("python", "loops.ipynb", "alice")
    assert "stopped while starting" in failure.value.message
    assert "ImportError" in failure.value.log_detail  # for the admin, not the student
    assert backend.list_servers() == []
    retry = hub.open_notebook("python", "loops.ipynb", "alice")
    assert retry.created and retry.key != launch.key


def test_a_server_that_never_answers_times_out_and_is_removed(hub, backend, clock):
    backend.ready_after = float("inf")
    hub.open_notebook("python", "loops.ipynb", "alice")
    clock.advance(29)
    assert hub.launch_status("python", "loops.ipynb", "alice").state is LaunchState.STARTING
    clock.advance(2)
    with pytest.raises(StartTimeout):
        hub.launch_status("python", "loops.ipynb", "alice")
    assert backend.list_servers() == []


def test_following_a_launch_that_was_never_made_says_so(hub):
    with pytest.raises(NotFound):
        hub.launch_status("python", "loops.ipynb", "nobody")


def test_a_server_stopped_long_ago_is_not_a_failed_start_and_the_next_open_starts_it(hub, backend, clock):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    clock.advance(10)
    hub.stop(launch.container)
    clock.advance(3600)
    with pytest.raises(NotFound):
        hub.launch_status("python", "loops.ipynb", "alice")
    assert backend.list_servers()[0].state is ServerState.STOPPED  # not removed
    again = hub.open_notebook("python", "loops.ipynb", "alice")
    assert again.action is Action.START and again.key == launch.key


def test_wait_ready_blocks_until_ready_for_scripts(settings, accounts):
    hub = Hub(settings, backend=FakeBackend(ready_after=0.05), accounts=accounts)
    launch = hub.wait_ready(hub.open_notebook("python", "loops.ipynb", "alice"), timeout=5)
    assert launch.state is LaunchState.READY and launch.created and launch.copied  # what the launch did, kept


# ---------------------------------------------------------------------------------------- images


def test_a_new_image_never_cuts_a_running_session_but_replaces_a_stopped_server(hub, backend, clock):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    backend.image = "fake-image-2"
    assert hub.open_notebook("python", "loops.ipynb", "alice").key == launch.key
    hub.stop(launch.container)
    replaced = hub.open_notebook("python", "loops.ipynb", "alice")
    assert replaced.action is Action.REPLACE and replaced.key != launch.key


def test_a_broken_server_is_replaced(hub, backend):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    backend.break_server(launch.container)
    assert hub.open_notebook("python", "loops.ipynb", "alice").action is Action.REPLACE


# ----------------------------------------------------------------------------------- access


def cookie_of(hub, launch):
    return [gate_of(hub).access_cookie(launch).value]


def test_the_owner_gets_through_with_the_token_and_launches_and_requests_count_as_activity(hub, clock):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    assert hub.activity.last_seen(launch.key) == clock.now
    clock.advance(600)
    decision = gate_of(hub).authorize(f"/nb/{launch.key}/api/kernels", cookie_of(hub, launch))
    assert decision.allowed and decision.authorization.startswith("token ")
    assert hub.activity.last_seen(launch.key) == clock.now


def test_a_student_who_comes_back_while_the_culler_decides_keeps_their_server(settings, accounts, clock):
    class ComingBack(FakeBackend):
        """The student clicks again right while the culler asks their server for its activity."""

        hub: Hub

        def activity(self, server):
            self.hub.open_notebook("python", "loops.ipynb", server.student_id)
            return super().activity(server)

    backend = ComingBack(clock=clock)
    hub = Hub(settings, backend=backend, accounts=accounts, clock=clock)
    backend.hub = hub
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    clock.advance(3 * 3600)
    [decision] = hub.cull()
    assert not decision.cull and decision.reason.value == "active"
    assert backend.list_servers()[0].state is ServerState.RUNNING and launch.container == backend.list_servers()[0].name


def test_a_cookie_is_scoped_to_its_server(hub):
    alice = hub.open_notebook("python", "loops.ipynb", "alice")
    bob = hub.open_notebook("python", "loops.ipynb", "bob")
    cookie = gate_of(hub).access_cookie(alice)
    # set by alice's server's own origin, with no Domain: her server's host only, every path of it
    assert cookie.name == COOKIE_NAME and cookie.path == "/" and cookie.key == alice.key
    refused = gate_of(hub).authorize(f"/nb/{bob.key}/api/contents", [cookie.value])
    assert not refused.allowed and refused.status == 403


def test_in_path_mode_a_cookie_is_scoped_to_its_servers_path(settings, backend, accounts, clock):
    hub = Hub(settings.model_copy(update={"origin_mode": "path"}), backend=backend, accounts=accounts, clock=clock)
    alice = hub.open_notebook("python", "loops.ipynb", "alice")
    assert gate_of(hub).access_cookie(alice).path == f"/nb/{alice.key}/"


# ------------------------------------------------------------------------------------------- tickets


def ticket_of(url):
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    return parts, query


def test_a_ready_launch_goes_to_its_servers_own_origin_with_a_ticket_for_the_notebook(hub, clock):
    launch = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    parts, query = ticket_of(gate_of(hub).ticket_url(launch))
    assert (
        f"{parts.scheme}://{parts.netloc}"
        == gate_of(hub).server_origin(launch.key)
        == f"https://{launch.key}.nb.localhost:8443"
    )
    assert parts.path == "/_nbh/ticket" and query["next"] == launch.url
    cookie = gate_of(hub).redeem_ticket(query["t"], host_key=launch.key)
    assert cookie.key == launch.key and gate_of(hub).authorize(launch.url, [cookie.value]).allowed


def test_a_ticket_is_good_once(hub):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    _, query = ticket_of(gate_of(hub).ticket_url(launch))
    gate_of(hub).redeem_ticket(query["t"], host_key=launch.key)
    with pytest.raises(LaunchRefused) as refused:
        gate_of(hub).redeem_ticket(query["t"], host_key=launch.key)
    assert refused.value.why == "ticket-spent"


def test_a_ticket_is_good_on_its_own_servers_host_only(hub):
    alice = hub.open_notebook("python", "loops.ipynb", "alice")
    bob = hub.open_notebook("python", "loops.ipynb", "bob")
    _, query = ticket_of(gate_of(hub).ticket_url(alice))
    for host_key in (bob.key, None):
        with pytest.raises(LaunchRefused) as refused:
            gate_of(hub).redeem_ticket(query["t"], host_key=host_key)
        assert refused.value.why == "ticket-host"
    assert gate_of(hub).redeem_ticket(query["t"], host_key=alice.key).key == alice.key  # not spent by the refusals


def test_a_ticket_expires_after_a_minute(hub, clock):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    _, query = ticket_of(gate_of(hub).ticket_url(launch))
    clock.advance(61)
    with pytest.raises(LaunchRefused) as refused:
        gate_of(hub).redeem_ticket(query["t"], host_key=launch.key)
    assert refused.value.why == "ticket-expired"


def test_in_path_mode_the_ticket_is_taken_on_the_sites_own_origin(settings, backend, accounts, clock):
    hub = Hub(settings.model_copy(update={"origin_mode": "path"}), backend=backend, accounts=accounts, clock=clock)
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    parts, query = ticket_of(gate_of(hub).ticket_url(launch))
    assert f"{parts.scheme}://{parts.netloc}" == "https://localhost:8443"
    assert gate_of(hub).redeem_ticket(query["t"], host_key=None).path == f"/nb/{launch.key}/"


def test_a_ticket_never_reaches_a_log_line(hub, caplog):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    url = gate_of(hub).ticket_url(launch)
    _, query = ticket_of(url)
    with caplog.at_level("DEBUG"):
        cookie = gate_of(hub).redeem_ticket(query["t"], host_key=launch.key)
        with pytest.raises(LaunchRefused):
            gate_of(hub).redeem_ticket(query["t"], host_key=launch.key)
    assert "handed over" in caplog.text and "ticket-spent" in caplog.text
    nonce, mac = query["t"].split(".")[3:]
    assert nonce not in caplog.text and mac not in caplog.text and cookie.value not in caplog.text


def test_on_demand_tls_is_allowed_for_existing_servers_hosts_only(hub):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    assert gate_of(hub).may_certify(f"{launch.key}.nb.localhost")
    assert not gate_of(hub).may_certify(f"{'b' * 40}.nb.localhost")  # no such server
    assert not gate_of(hub).may_certify("localhost") and not gate_of(hub).may_certify(f"x.{launch.key}.nb.localhost")
    assert not gate_of(hub).may_certify(f"{launch.key}.nb.elsewhere.org")


def test_a_stopped_server_answers_gone_with_a_way_back(hub):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    hub.stop(launch.container)
    decision = gate_of(hub).authorize(f"/nb/{launch.key}/", cookie_of(hub, launch))
    assert not decision.allowed and decision.status == 410 and decision.reason == "gone"


# -------------------------------------------------------------------------------------- the host


def test_list_and_show_every_server_with_idle_time_and_usage(hub, backend, clock):
    alice = hub.open_notebook("python", "loops.ipynb", "alice")
    hub.open_notebook("python", "loops.ipynb", "bob")
    clock.advance(120)
    views = hub.list_servers()
    assert sorted(v.server.student_id for v in views) == ["alice", "bob"]
    assert all(v.idle_seconds == 120 and v.age_seconds == 120 for v in views)
    backend.set_usage(alice.container, Usage(memory_bytes=50 * 2**20, pids=7))
    shown = hub.server(alice.container)
    assert shown.usage.memory_bytes == 50 * 2**20 and shown.activity is not None
    with pytest.raises(NotFound):
        hub.server("nbh-nobody-python")


def test_stop_and_remove_keep_the_students_files(hub, settings, backend):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    copy = settings.students_dir / launch.user / "python" / "loops.ipynb"
    hub.stop(launch.container)
    assert backend.list_servers()[0].state is ServerState.STOPPED and copy.exists()
    hub.remove(launch.container)
    assert backend.list_servers() == [] and copy.exists()
    with pytest.raises(NotFound):
        hub.stop(launch.container)


def test_cull_stops_only_idle_servers_and_says_why(hub, backend, clock):
    idle = hub.open_notebook("python", "loops.ipynb", "idle-student")
    reading = hub.open_notebook("python", "loops.ipynb", "reading-student")
    computing = hub.open_notebook("python", "loops.ipynb", "computing-student")
    clock.advance(3 * 3600)
    gate_of(hub).authorize(f"/nb/{reading.key}/api/contents", cookie_of(hub, reading))
    backend.set_activity(
        computing.container, ServerActivity(last_activity=clock.now - 3 * 3600, kernels=1, busy_kernels=1)
    )
    decisions = {d.name: d for d in hub.cull()}
    assert decisions[idle.container].cull and decisions[idle.container].reason.value == "idle"
    assert not decisions[reading.container].cull and not decisions[computing.container].cull
    states = {s.name: s.state for s in backend.list_servers()}
    assert states == {
        idle.container: ServerState.STOPPED,
        reading.container: ServerState.RUNNING,
        computing.container: ServerState.RUNNING,
    }
    again = hub.open_notebook("python", "loops.ipynb", "idle-student")  # the next click: same key, work intact
    assert again.action is Action.START and again.key == idle.key


def test_a_dry_run_cull_stops_nothing(hub, backend, clock):
    hub.open_notebook("python", "loops.ipynb", "alice")
    clock.advance(3 * 3600)
    assert [d.cull for d in hub.cull(dry_run=True)] == [True]
    assert backend.list_servers()[0].state is ServerState.RUNNING


def test_reconcile_reports_what_the_backend_did(hub):
    hub.open_notebook("python", "loops.ipynb", "alice")
    assert hub.reconcile().checked == 1


def test_reconcile_logs_its_whole_report_for_log_handlers(hub, caplog):
    hub.open_notebook("python", "loops.ipynb", "alice")
    with caplog.at_level("INFO", logger="nbhosting_core.hub"):
        report = hub.reconcile()
    logged = [r for r in caplog.records if r.getMessage().startswith("reconcile: checked=1")]
    assert len(logged) == 1 and logged[0].report == report  # type: ignore[attr-defined]


def test_a_students_engine_is_released_once_their_last_server_stops_and_taken_again_at_their_next_launch(hub, backend):
    first = hub.open_notebook("python", "loops.ipynb", "alice")
    hub.open_notebook("python", "w1/intro.ipynb", "bob")
    assert backend.held() == sorted([first.user, hub.accounts.find("bob").user])
    hub.stop(first.container)
    assert ("release", first.user) in backend.journal and first.user not in backend.held()
    assert hub.accounts.find("bob").user in backend.held()  # bob still works
    hub.open_notebook("python", "loops.ipynb", "alice")
    assert first.user in backend.held()


def test_reconcile_releases_what_is_held_for_students_with_no_running_server(hub, backend):
    launch = hub.open_notebook("python", "loops.ipynb", "alice")
    backend.crash(launch.container)  # it died: nobody told the hub
    report = hub.reconcile()
    assert f"resources of {launch.user}" in report.cleared and backend.held() == []


# --------------------------------------------------------------------------- the kernel started at launch


def settled(hub: Hub) -> Hub:
    """Once the kernels the hub started in the background are started (or not)."""
    hub.kernels.pool.shutdown(wait=True)  # the test waits for the hub's background work
    return hub


def test_a_ready_launch_starts_its_notebooks_kernel_in_the_background_once(hub, backend, clock, settings):
    launch = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    assert launch.state is LaunchState.STARTING
    clock.advance(2)
    assert hub.launch_status("python", "w1/intro.ipynb", "alice").state is LaunchState.READY
    hub.launch_status("python", "w1/intro.ipynb", "alice")  # polled again: the backend finds its session
    hub.open_notebook("python", "loops.ipynb", "alice")  # another notebook of a server that runs: ready at once
    settled(hub)
    # the kernel the course's notebook names (nbformat's new_notebook names none: Jupyter's default)
    assert backend.sessions(launch.container) == {"w1/intro.ipynb": None, "loops.ipynb": None}


def test_no_kernel_is_started_while_the_server_starts_nor_when_it_is_turned_off(settings, backend, accounts, clock):
    hub = Hub(settings, backend=backend, accounts=accounts, clock=clock)
    launch = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    hub.launch_status("python", "w1/intro.ipynb", "alice")
    assert settled(hub) and backend.sessions(launch.container) == {}
    off = Hub(settings.model_copy(update={"kernel_prestart": False}), backend=backend, accounts=accounts, clock=clock)
    clock.advance(2)
    assert off.launch_status("python", "w1/intro.ipynb", "alice").state is LaunchState.READY
    assert settled(off) and backend.sessions(launch.container) == {}


def test_the_kernel_started_is_the_one_the_course_notebook_names(settings, backend, accounts, clock):
    course = settings.courses_dir / "python"
    notebook = new_notebook(cells=[new_code_cell("1")])
    notebook.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    nbformat.write(notebook, str(course / "r.ipynb"))
    hub = Hub(settings, backend=backend, accounts=accounts, clock=clock)
    launch = hub.open_notebook("python", "r.ipynb", "alice")
    clock.advance(2)
    hub.launch_status("python", "r.ipynb", "alice")
    assert settled(hub) and backend.sessions(launch.container) == {"r.ipynb": "ir"}
