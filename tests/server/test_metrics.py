"""/metrics: the host's figures and the app's requests in Prometheus's format, behind a token."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.testclient import TestClient

from nbhosting_core import FakeAccounts, FakeBackend, Hub
from nbhosting_core.db import open_database
from nbhosting_core.db.engine import sqlite_url
from nbhosting_core.events import EventKind
from nbhosting_core.roles import Role
from nbhosting_server import create_app
from nbhosting_server.appstart import empty_metrics_dir
from nbhosting_server.metrics import UNMATCHED, route_template, token_guard
from tests.server.platform import demo_settings, signed_url

TOKEN = "s3cret-metrics-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def setup(tmp_path):
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN + "\n")
    settings = demo_settings(tmp_path, metrics_token_file=token_file)
    clock = Clock()
    backend = FakeBackend(ready_after=1.0, clock=clock)
    hub = Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), clock=clock)
    return hub, TestClient(create_app(hub=hub), base_url="https://testserver"), clock


def scrape(client, headers=AUTH):
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def value(families, family, name, **labels):
    """The sample ``name`` of ``family`` with exactly ``labels`` (0 if absent)."""
    for sample in families[family].samples:
        if sample.name == name and sample.labels == labels:
            return sample.value
    return 0.0


def launch(client, student):
    """A launch of a.ipynb by ``student``: the progress page's poll URL if it is starting, else None."""
    import json
    import re

    page = client.get(signed_url(Clock.now, student), follow_redirects=False)
    if page.status_code != 200:
        return None
    return json.loads(re.search(r"var launch = (\"[^\"]*\")", page.text).group(1)) + "&status=1"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
def test_metrics_answer_401_without_the_token(setup, headers):
    client = setup[1]
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    assert "nbhosting_" not in response.text


def test_a_token_in_the_url_is_not_a_token(setup):
    client = setup[1]
    assert client.get(f"/metrics?token={TOKEN}").status_code == 401
    assert client.get(f"/metrics?access_token={TOKEN}").status_code == 401


def test_without_a_token_file_or_guard_nobody_reads_the_metrics(tmp_path):
    settings = demo_settings(tmp_path)
    hub = Hub(settings, backend=FakeBackend(), accounts=FakeAccounts(settings.students_dir))
    client = TestClient(create_app(hub=hub))
    assert client.get("/metrics", headers=AUTH).status_code == 401


def test_a_short_token_file_lets_nobody_in(tmp_path):
    short = tmp_path / "short"
    short.write_text("abc")
    settings = demo_settings(tmp_path, metrics_token_file=short)
    client = TestClient(
        create_app(hub=Hub(settings, backend=FakeBackend(), accounts=FakeAccounts(settings.students_dir)))
    )
    assert client.get("/metrics", headers={"Authorization": "Bearer abc"}).status_code == 401


def test_an_injected_guard_decides_who_reads_the_metrics(setup):
    hub = setup[0]
    asked = []

    def guard(request: Request) -> bool:
        asked.append(request.url.path)
        return request.headers.get("x-staff") == "admin"

    client = TestClient(create_app(hub=hub, metrics_guard=guard))
    assert client.get("/metrics", headers=AUTH).status_code == 401  # the token file is the fallback only
    assert client.get("/metrics", headers={"x-staff": "admin"}).status_code == 200
    assert asked == ["/metrics", "/metrics"]


def test_launches_starts_culls_running_and_active_students_after_some_launches(setup):
    hub, client, clock = setup
    follow = launch(client, "alice")  # a cold launch: a create
    clock.now += 1
    assert client.get(follow).json()["state"] == "ready"  # its first answer: a ready event
    assert launch(client, "alice") is None  # ready: a reuse, sent on to the server
    assert launch(client, "bob") is not None  # a create
    client.get(signed_url(Clock.now, "carol", "missing.ipynb"))  # not found: a failed launch
    hub.events.record(EventKind.CULL, course="demo", student_id="dave", reason="idle")
    families = scrape(client)
    h = "nbhosting_launch_duration_seconds"
    assert value(families, h, h + "_count", status="success", action="create") == 2
    assert value(families, h, h + "_count", status="success", action="reuse") == 1
    assert value(families, h, h + "_count", status="success", action="start") == 0  # shown before it happens
    assert value(families, h, h + "_count", status="not-found", action="none") == 1
    assert value(families, h, h + "_bucket", status="success", action="create", le="+Inf") == 2
    assert value(families, "nbhosting_launch_failures", "nbhosting_launch_failures_total", reason="not-found") == 1
    r = "nbhosting_server_ready_duration_seconds"
    assert value(families, r, r + "_count") == 1 and value(families, r, r + "_sum") == 1.0
    assert value(families, "nbhosting_culls", "nbhosting_culls_total", reason="idle") == 1
    assert value(families, "nbhosting_culls", "nbhosting_culls_total", reason="max-age") == 0
    assert value(families, "nbhosting_running_servers", "nbhosting_running_servers") == 2
    for period in ("5m", "1h", "24h"):  # alice and bob run, dave's was culled now; carol never had one
        assert value(families, "nbhosting_active_students", "nbhosting_active_students", period=period) == 3


HUB_FAMILIES = (
    "nbhosting_launch_duration_seconds",
    "nbhosting_launch_failures",
    "nbhosting_server_ready_duration_seconds",
    "nbhosting_culls",
    "nbhosting_running_servers",
    "nbhosting_active_students",
)


def hub_samples(families):
    """The hub's samples of a scrape (not the requests', which are each worker's)."""
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value) for f in HUB_FAMILIES for s in families[f].samples)


def test_with_a_database_the_counters_survive_the_day_change(setup, tmp_path):
    hub, _, clock = setup
    database = open_database(sqlite_url(tmp_path / "db.sqlite"))
    client = TestClient(create_app(hub=hub, database=database), base_url="https://testserver")
    assert launch(client, "alice") is not None  # a create, at 00:16 UTC of day 1
    client.get(signed_url(Clock.now, "carol", "missing.ipynb"))
    hub.events.record(EventKind.CULL, course="demo", student_id="dave", reason="idle")
    h, c = "nbhosting_launch_duration_seconds", "nbhosting_culls"
    before = scrape(client)
    assert value(before, h, h + "_count", status="success", action="create") == 1
    clock.now += 86400  # the next day
    assert client.get(signed_url(clock.now, "bob"), follow_redirects=False).status_code == 200  # a create
    hub.events.record(EventKind.CULL, course="demo", student_id="alice", reason="idle")
    after = scrape(client)
    assert value(after, h, h + "_count", status="success", action="create") == 2
    assert value(after, h, h + "_count", status="not-found", action="none") == 1
    assert value(after, "nbhosting_launch_failures", "nbhosting_launch_failures_total", reason="not-found") == 1
    assert value(after, c, c + "_total", reason="idle") == 2
    started = value(after, c + "_created", c + "_created", reason="idle")  # the first stored event's time
    assert started == value(before, c + "_created", c + "_created", reason="idle") == 1000


def test_two_workers_on_one_database_give_the_same_figures(setup, tmp_path):
    """Two app instances (as two workers are: each its own engine on the database's file), one that scraped all
    along and one that answers its first scrape late: the same hub figures."""
    hub, _, clock = setup
    url = sqlite_url(tmp_path / "db.sqlite")
    one = TestClient(create_app(hub=hub, database=open_database(url)), base_url="https://testserver")
    follow = launch(one, "alice")
    scrape(one)
    clock.now += 1
    one.get(follow)  # ready
    launch(one, "bob")
    scrape(one)
    hub.events.record(EventKind.CULL, course="demo", student_id="dave", reason="max-age")
    clock.now += 3  # past the answer kept
    two = TestClient(create_app(hub=hub, database=open_database(url)), base_url="https://testserver")
    first, second = scrape(one), scrape(two)
    assert hub_samples(first) == hub_samples(second)
    h = "nbhosting_launch_duration_seconds"
    assert value(second, h, h + "_count", status="success", action="create") == 2
    assert value(second, "nbhosting_culls", "nbhosting_culls_total", reason="max-age") == 1


def test_requests_are_counted_by_method_route_template_and_code(setup):
    _, client, clock = setup
    client.get(launch(client, "alice"))
    client.get("/_nbh/health")
    client.get("/no/such/page")
    client.post("/_nbh/health")
    families = scrape(client)
    f = "nbhosting_http_requests"
    template = "/notebookLazyCopy/{course}/{notebook:path}/{student}"
    assert value(families, f, f + "_total", method="GET", route=template, code="200") == 2  # the page, its poll
    assert value(families, f, f + "_total", method="GET", route="/_nbh/health", code="200") == 1
    assert value(families, f, f + "_total", method="POST", route="/_nbh/health", code="405") == 1
    assert value(families, f, f + "_total", method="GET", route=UNMATCHED, code="404") == 1
    d = "nbhosting_http_request_duration_seconds"
    assert value(families, d, d + "_count", method="GET", route="/_nbh/health", code="200") == 1


def test_no_label_value_names_a_student_a_key_or_a_path(setup):
    hub, client, clock = setup
    follows = [launch(client, student) for student in ("alice", "bob", "eve")]
    clock.now += 1
    client.get(follows[0])
    launch(client, "alice")
    client.get("/nb/" + "a" * 40 + "/tree")
    client.get("/notebookLazyCopy/demo/a.ipynb/mallory?x=1")
    hub.events.record(EventKind.FAILURE, student_id="zed", reason="zed-made-this-up")
    hub.events.record(EventKind.OPEN, student_id="zed", action="zed-action", duration=1)
    text = client.get("/metrics", headers=AUTH).text
    values = {v for f in text_string_to_metric_families(text) for s in f.samples for v in s.labels.values()}
    for secret in ("alice", "bob", "eve", "mallory", "zed", "a" * 40, "a.ipynb", "demo"):
        assert not any(secret in v for v in values), secret
    assert "other" in values  # what is not known is counted as other


def test_the_route_of_a_request_is_its_template():
    from starlette.routing import Mount, Route

    async def nothing(request):
        return None

    routes = [Route("/a/{x}", nothing), Mount("/m", routes=[Route("/b/{y:path}", nothing)])]

    def scope(path):
        return {"type": "http", "path": path, "method": "GET", "root_path": ""}

    assert route_template(routes, scope("/a/alice")) == "/a/{x}"
    assert route_template(routes, scope("/m/b/c/d")) == "/m/b/{y:path}"
    assert route_template(routes, scope("/nope")) == UNMATCHED


def test_the_apps_start_empties_the_metrics_folder_of_counters_only(tmp_path):
    folder = tmp_path / "metrics"
    empty_metrics_dir(folder)
    assert folder.is_dir() and oct(folder.stat().st_mode & 0o777) == "0o700"
    (folder / "counter_123.db").write_bytes(b"x")
    (folder / "keep.txt").write_text("x")
    empty_metrics_dir(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_one_scrape_sums_the_requests_of_every_worker_process(tmp_path):
    """Two uvicorn processes on one metrics folder (as the workers of one app are): either one's scrape counts
    the requests both answered."""
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN)
    settings = demo_settings(tmp_path, metrics_token_file=token_file)
    settings.run_dir.mkdir()
    empty_metrics_dir(settings.metrics_dir)
    env = {
        **os.environ,
        "NBH_DATA_ROOT": str(settings.data_root),
        "NBH_RUN_DIR": str(settings.run_dir),
        "NBH_METRICS_TOKEN_FILE": str(token_file),
        "PROMETHEUS_MULTIPROC_DIR": str(settings.metrics_dir),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    ports = [free_port(), free_port()]
    argv = [sys.executable, "-m", "uvicorn", "tests.server.metrics_app:app", "--factory", "--host", "127.0.0.1"]
    workers = [subprocess.Popen([*argv, "--port", str(p)], env=env, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if get(port, "/_nbh/health")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "a worker did not come up"
                time.sleep(0.1)
        for _ in range(3):
            get(ports[0], "/_nbh/health")
        for _ in range(5):
            get(ports[1], "/_nbh/health")
        counts = []
        for port in ports:
            status, text = get(port, "/metrics", AUTH)
            assert status == 200
            families = {f.name: f for f in text_string_to_metric_families(text)}
            f = "nbhosting_http_requests"
            counts.append(value(families, f, f + "_total", method="GET", route="/_nbh/health", code="200"))
        assert counts == [10, 10]  # 8, and each worker's first answer to the wait for it
        assert get(ports[0], "/metrics")[0] == 401
        files = sorted(p.name for p in settings.metrics_dir.iterdir())
        assert files == sorted(f"{kind}_{w.pid}.db" for w in workers for kind in ("counter", "histogram"))
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)


def test_an_admins_api_token_or_session_reads_the_metrics_and_a_teachers_does_not(admin_app):
    assert admin_app.bearer("ada").get("/metrics").status_code == 200
    assert admin_app.session("ada").get("/metrics").status_code == 200
    assert admin_app.bearer("tom").get("/metrics").status_code == 401
    assert admin_app.bearer("ada", role=Role.TEACHER).get("/metrics").status_code == 401  # a token lowered
    assert admin_app.client.get("/metrics", headers={"Authorization": "Bearer nbh_forged"}).status_code == 401
    assert admin_app.client.get("/metrics").status_code == 401


def test_with_staff_the_token_file_still_lets_prometheus_in(tmp_path):
    from tests.admin_app import make_admin_app

    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN)
    (tmp_path / "site").mkdir()
    made = make_admin_app(tmp_path / "site")
    client = TestClient(create_app(hub=made.hub, staff=made.store, metrics_guard=token_guard(token_file)))
    assert client.get("/metrics", headers=AUTH).status_code == 200
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
