"""The app in-process (TestClient) on the in-memory backend: launches, polls, error pages, forward-auth."""

import nbformat
import pytest
from nbformat.v4 import new_notebook
from starlette.testclient import TestClient

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_core.access import COOKIE_NAME, access_cookie_value
from nbhosting_core.tokens import jupyter_token
from nbhosting_server import create_app
from tests.server.platform import PLATFORMS, demo_settings, signed_url
from tests.support import gate_of

KEY = "d" * 40


def url(student="alice", notebook="a.ipynb", course="demo", prefix="notebookLazyCopy", expires=None):
    """A launch URL signed by the test platform, at the tests' clock."""
    return signed_url(Clock.now, student, notebook, course, prefix, expires)


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def setup(tmp_path):
    settings = demo_settings(tmp_path)
    clock = Clock()
    backend = FakeBackend(ready_after=1.0, clock=clock)
    accounts = FakeAccounts(settings.students_dir)
    hub = Hub(settings, backend=backend, accounts=accounts, clock=clock)
    client = TestClient(create_app(hub=hub), base_url="https://testserver")
    return settings, hub, client, backend, clock


@pytest.mark.parametrize("prefix", ["notebookLazyCopy", "ipythonExercice"])
@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("bad..course/a.ipynb/alice", 400, "Invalid course name"),
        ("demo/w1/.secret.ipynb/alice", 400, "hidden files"),
        ("demo/..%2F..%2Fetc%2Fx.ipynb/alice", 400, "Invalid notebook path"),
        ("demo/a.txt/alice", 400, "only .ipynb"),
        ("demo/a.ipynb/bad%20id", 400, "Invalid student id"),
        ("nope/a.ipynb/alice", 404, "no course"),
        ("demo/missing.ipynb/alice", 404, "no notebook"),
        ("demo/a.ipynb/alice", 403, "does not come from your course"),  # unsigned
    ],
)
def test_bad_launches_get_a_clear_page_and_create_nothing(setup, prefix, path, status, text):
    settings, _, client, backend, _ = setup
    if status == 404:  # signed by the platform: the door lets it in, then the course or notebook is missing
        course, notebook, student = path.split("/")
        path = url(student, notebook, course, prefix=prefix)[len(f"/{prefix}/") :]
    response = client.get(f"/{prefix}/{path}")
    assert response.status_code == status
    assert "text/html" in response.headers["content-type"]
    assert text in response.text
    assert "Traceback" not in response.text
    assert not settings.students_dir.exists() or not any(settings.students_dir.iterdir())
    assert backend.journal == []


def poll_url(page: str) -> str:
    """The URL the progress page follows the start with (from its script)."""
    import json
    import re

    return json.loads(re.search(r"var launch = (\"[^\"]*\")", page).group(1))


def test_bad_launches_answer_json_to_the_progress_page(setup):
    client = setup[2]
    response = client.get("/notebookLazyCopy/demo/a.txt/alice?status=1", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["state"] == "failed" and "only .ipynb" in response.json()["message"]


def ticket_parts(location):
    """(origin, path, query) of a ticket URL."""
    import urllib.parse

    parts = urllib.parse.urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}", parts.path, dict(urllib.parse.parse_qsl(parts.query))


def test_a_cold_launch_answers_at_once_with_a_progress_page_that_polls(setup):
    _, hub, client, backend, clock = setup
    response = client.get(url("alice"), follow_redirects=False)
    assert response.status_code == 200 and "Starting your notebook" in response.text
    assert "status=1" in response.text
    assert not response.headers.get_list("set-cookie")  # nbhosting's origin never holds a server's cookie
    follow = poll_url(response.text)  # nbhosting's own token: the platform's signature is not needed to follow
    assert "signature=" not in follow and "poll=" in follow
    poll = client.get(follow + "&status=1")
    assert poll.status_code == 200 and poll.json()["state"] == "starting" and poll.json()["url"] is None
    clock.now += 1
    ready = client.get(follow + "&status=1").json()
    key = ready["notebook_url"].split("/")[4]
    assert (
        ready["state"] == "ready"
        and ready["notebook_url"] == f"https://{key}.nb.localhost:8443/nb/{key}/notebooks/a.ipynb"
    )
    origin, path, query = ticket_parts(ready["url"])
    assert origin == f"https://{key}.nb.localhost:8443" and path == "/_nbh/ticket"
    assert query["next"] == f"/nb/{key}/notebooks/a.ipynb"
    again = client.get(url("alice"), follow_redirects=False)
    assert again.status_code == 302 and ticket_parts(again.headers["location"])[:2] == (origin, path)
    assert again.headers["location"] != ready["url"]  # a fresh ticket each time
    assert again.headers["referrer-policy"] == "no-referrer" and "set-cookie" not in again.headers
    assert [verb for verb, _ in backend.journal] == ["create"]


def test_a_poll_before_any_launch_launches(setup):
    client, backend = setup[2], setup[3]
    assert client.get(url("bob") + "&status=1").json()["state"] == "starting"
    assert [verb for verb, _ in backend.journal] == ["create"]


def test_a_server_dying_while_starting_is_told_to_the_polling_page(setup):
    _, _, client, backend, _ = setup
    follow = poll_url(client.get(url("alice")).text)
    backend.crash(backend.list_servers()[0].name, output="Traceback: boom")
    poll = client.get(follow + "&status=1")
    assert poll.status_code == 503 and poll.json()["reason"] == "start-failed"
    assert "boom" not in poll.text  # the log detail stays in the log


def test_the_progress_page_points_back_at_the_url_as_sent_and_cannot_be_broken_out_of(setup):
    client = setup[2]
    # the page follows the path exactly as it was sent, never a decoded-then-encoded copy (for an id holding '%',
    # that copy would name another student; the TestClient decodes paths twice, so '@' stands in for it here)
    page = client.get(url("a@b")).text  # sent as a%40b
    assert '"/notebookLazyCopy/demo/a.ipynb/a%40b?poll=' in page
    assert "</script><" not in page.replace("</script>\n", "")


def test_health_and_front_page(setup):
    client = setup[2]
    assert client.get("/_nbh/health").json() == {"status": "ok"}
    assert "nbhosting" in client.get("/").text
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Not found" in missing.text


def auth(client, uri, cookie=None, **headers):
    headers = {"X-Forwarded-Uri": uri, "X-Forwarded-Method": "GET", **headers}
    if cookie is not None:
        headers["Cookie"] = cookie
    return client.get("/_nbh/auth", headers=headers)


def launched(setup, student="alice"):
    """A student's launch followed as a browser does, up to the ticket: the key, and the cookie it set."""
    _, hub, client, backend, clock = setup
    answer = client.get(url(student) + "&status=1").json()
    if answer["state"] != "ready":
        clock.now += 1
        answer = client.get(url(student) + "&status=1").json()
    _, path, query = ticket_parts(answer["url"])
    key = query["next"].split("/")[2]
    response = client.get(answer["url"], headers={"X-Nbh-Key": key}, follow_redirects=False)
    assert response.status_code == 302, response.text
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE_NAME))
    return key, cookie.split(";")[0]


def test_forward_auth_lets_the_owner_through_with_the_jupyter_token(setup):
    hub, client = setup[1], setup[2]
    key, cookie = launched(setup)
    response = auth(client, f"/nb/{key}/api/kernels", f"other=1; {cookie}", **{"X-Nbh-Key": key})
    assert response.status_code == 200
    assert response.headers["authorization"] == f"token {jupyter_token(hub.secret, key)}"


def test_forward_auth_checks_the_key_caddy_routes_to_not_the_raw_uri(setup):
    client = setup[2]
    alice_key, alice_cookie = launched(setup, "alice")
    bob_key, _ = launched(setup, "bob")
    # "/nb/<alice>/../<bob>/" is cleaned by Caddy into bob's route: the check is on bob's key
    response = auth(client, f"/nb/{alice_key}/../{bob_key}/api/contents", alice_cookie, **{"X-Nbh-Key": bob_key})
    assert response.status_code == 403 and "authorization" not in response.headers


def test_forward_auth_refuses_strangers_forgers_and_gone_servers(setup):
    hub, client = setup[1], setup[2]
    value = access_cookie_value(hub.secret, KEY, "nbh-x", now=1000, max_age=60)
    assert auth(client, f"/nb/{KEY}/").status_code == 401
    forged = auth(client, f"/nb/{'e' * 40}/", f"{COOKIE_NAME}={value}")
    assert forged.status_code == 403 and "authorization" not in forged.headers
    assert "Not your notebook" in forged.text
    gone = auth(client, f"/nb/{KEY}/", f"{COOKIE_NAME}={value}")  # valid cookie, no server behind it
    assert gone.status_code == 410 and "your work is kept" in gone.text
    assert auth(client, "/elsewhere/", f"{COOKIE_NAME}={value}").status_code == 404


def test_a_non_ascii_cookie_is_refused_not_a_server_error(setup):
    client = setup[2]
    key, _ = launched(setup)
    response = client.get(
        "/_nbh/auth", headers={"X-Forwarded-Uri": f"/nb/{key}/", "Cookie": f"{COOKIE_NAME}=é.1.x".encode()}
    )
    assert response.status_code in (401, 403)


def test_forward_auth_refuses_cross_site_writes_but_not_reads(setup):
    client = setup[2]
    key, cookie = launched(setup)
    own_origin = f"https://{key}.nb.localhost:8443"
    headers = {"X-Forwarded-Uri": f"/nb/{key}/api/contents/x.ipynb", "X-Nbh-Key": key, "Cookie": cookie}
    forged = client.get(
        "/_nbh/auth",
        headers={
            **headers,
            "X-Forwarded-Method": "PUT",
            "Origin": "https://evil.example",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert forged.status_code == 403 and "authorization" not in forged.headers
    own = client.get(
        "/_nbh/auth",
        headers={**headers, "X-Forwarded-Method": "PUT", "Origin": own_origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert own.status_code == 200
    embedded_read = client.get(
        "/_nbh/auth", headers={**headers, "X-Forwarded-Method": "GET", "Sec-Fetch-Site": "cross-site"}
    )
    assert embedded_read.status_code == 200


@pytest.mark.parametrize(
    "handshake",
    [
        {"X-Nbh-Upgrade": "websocket"},
        {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Sec-Fetch-Mode": "websocket"},
    ],
)
def test_forward_auth_refuses_a_kernel_websocket_from_another_origin_even_with_the_students_cookie(setup, handshake):
    client = setup[2]
    key, cookie = launched(setup)
    headers = {
        "X-Forwarded-Uri": f"/nb/{key}/api/kernels/k1/channels",
        "X-Forwarded-Method": "GET",
        "X-Nbh-Key": key,
        "Cookie": cookie,
        **handshake,
    }
    for origin in ("https://evil.example", f"https://{'b' * 40}.nb.localhost:8443", "https://localhost:8443", None):
        sent = {**headers, "Origin": origin} if origin else headers
        refused = client.get("/_nbh/auth", headers=sent)
        assert refused.status_code == 403 and "authorization" not in refused.headers, origin
        assert "can only come from the notebook itself" in refused.text
    own = client.get("/_nbh/auth", headers={**headers, "Origin": f"https://{key}.nb.localhost:8443"})
    assert own.status_code == 200 and own.headers["authorization"].startswith("token ")


def test_a_refused_origin_is_logged_without_the_cookie(setup, caplog):
    client = setup[2]
    key, cookie = launched(setup)
    with caplog.at_level("INFO"):
        client.get(
            "/_nbh/auth",
            headers={
                "X-Nbh-Key": key,
                "X-Forwarded-Method": "POST",
                "Origin": "https://evil.example",
                "Cookie": cookie,
            },
        )
    assert "other-origin" in caplog.text and "evil.example" in caplog.text
    assert cookie.split("=", 1)[1] not in caplog.text


# ----------------------------------------------------------------------------------------------- tickets


def ready_answer(client, clock, student="alice"):
    """A launch followed until its server is ready: the last poll's answer (its url: the ticket)."""
    client.get(url(student) + "&status=1")
    clock.now += 1
    answer = client.get(url(student) + "&status=1").json()
    assert answer["state"] == "ready", answer
    return answer


def test_a_ticket_sets_a_host_only_cookie_on_its_servers_origin_and_goes_on_to_the_notebook(setup):
    client, clock = setup[2], setup[4]
    answer = ready_answer(client, clock)
    _, _, query = ticket_parts(answer["url"])
    key = query["next"].split("/")[2]
    response = client.get(answer["url"], headers={"X-Nbh-Key": key}, follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == f"/nb/{key}/notebooks/a.ipynb"
    [cookie] = response.headers.get_list("set-cookie")
    attributes = [a.strip() for a in cookie.split(";")]
    assert attributes[0].startswith(f"{COOKIE_NAME}=")
    assert set(attributes[1:]) == {"Max-Age=43200", "Path=/", "Secure", "HttpOnly", "SameSite=None", "Partitioned"}
    assert response.headers["referrer-policy"] == "no-referrer" and response.headers["cache-control"] == "no-store"
    replay = client.get(answer["url"], headers={"X-Nbh-Key": key}, follow_redirects=False)
    assert replay.status_code == 403 and "set-cookie" not in replay.headers
    assert "used already, or it has expired" in replay.text


def test_a_ticket_is_refused_on_another_host_and_on_nbhostings_own_origin(setup):
    client, clock = setup[2], setup[4]
    answer = ready_answer(client, clock)
    for headers in ({"X-Nbh-Key": "b" * 40}, {}):  # another server's host; the site (Caddy strips X-Nbh-Key there)
        refused = client.get(answer["url"], headers=headers, follow_redirects=False)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers


def test_a_ticket_goes_on_within_its_own_server_only(setup):
    client, clock = setup[2], setup[4]
    answer = ready_answer(client, clock)
    _, _, query = ticket_parts(answer["url"])
    key = query["next"].split("/")[2]
    for bad_next in ("https://evil.example/", "//evil.example/", f"/nb/{'b' * 40}/tree", "/\\evil.example", ""):
        hub = setup[1]
        launch = hub.launch_status("demo", "a.ipynb", "test:alice")
        ticket_url = gate_of(hub).ticket_url(launch.model_copy(update={"url": bad_next}))
        response = client.get(ticket_url, headers={"X-Nbh-Key": key}, follow_redirects=False)
        assert response.status_code == 302 and response.headers["location"] == f"/nb/{key}/", bad_next


def test_in_path_mode_the_ticket_sets_a_cookie_for_the_servers_paths_on_the_sites_origin(setup):
    settings, hub, _, backend, clock = setup
    path_hub = Hub(
        settings.model_copy(update={"origin_mode": "path"}), backend=backend, accounts=hub.accounts, clock=clock
    )
    client = TestClient(create_app(hub=path_hub), base_url="https://testserver")
    answer = ready_answer(client, clock)
    origin, path, query = ticket_parts(answer["url"])
    key = query["next"].split("/")[2]
    assert origin == "https://localhost:8443" and path == "/_nbh/ticket"
    response = client.get(answer["url"], follow_redirects=False)
    assert response.status_code == 302
    assert f"Path=/nb/{key}/;" in response.headers["set-cookie"]


def test_on_demand_tls_is_asked_for_existing_servers_hosts_only(setup):
    client = setup[2]
    key, _ = launched(setup)
    assert client.get("/_nbh/tls-ask", params={"domain": f"{key}.nb.localhost"}).status_code == 200
    for domain in (f"{'b' * 40}.nb.localhost", "localhost", "evil.example", ""):
        assert client.get("/_nbh/tls-ask", params={"domain": domain}).status_code == 404, domain


def test_nbhostings_pages_may_be_framed_by_the_platforms_only(setup):
    settings, _, client, _, _ = setup
    for response in (client.get("/"), client.get(url("alice")), client.get("/no/such/page")):
        assert response.headers["content-security-policy"] == (
            "frame-ancestors 'self' https://localhost:8443 https://course.example.org"
        )
    # a platform added to the file frames them at once
    settings.effective_platforms_file.write_text(
        PLATFORMS.replace('origins = ["https://course.example.org"]', 'origins = ["https://lms.example.net"]')
    )
    assert client.get("/").headers["content-security-policy"].endswith("https://localhost:8443 https://lms.example.net")


def test_the_access_log_never_holds_a_capability():
    import logging

    from nbhosting_server.logs import MaskCapabilities

    ticket = "k" * 40 + ".nbh-x.99.nonce.mac"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/_nbh/ticket?t={ticket}&next=/nb/x/", "1.1", 302),
        None,
    )
    MaskCapabilities().filter(record)
    line = record.getMessage()
    assert ticket not in line and "t=REDACTED&next=/nb/x/" in line
    launch = "/notebookLazyCopy/demo/a.ipynb/al?platform=p&expires=9&signature=SIG&poll=POLL&status=1"
    record.args = ("127.0.0.1:5", "GET", launch, "1.1", 200)
    MaskCapabilities().filter(record)
    assert "SIG" not in record.getMessage() and "POLL" not in record.getMessage()
    assert "platform=p&expires=9&signature=REDACTED&poll=REDACTED&status=1" in record.getMessage()


def test_proxied_requests_are_recorded_as_activity_for_the_culler(setup):
    hub, client, _, clock = setup[1], setup[2], setup[3], setup[4]
    key, cookie = launched(setup)
    clock.now += 5000
    assert auth(client, f"/nb/{key}/static/x.js", cookie).status_code == 200
    assert hub.activity.last_seen(key) is not None
    assert not any(d.cull for d in hub.cull())


def test_unavailable_page_tells_the_student_what_to_do(setup):
    client = setup[2]
    response = client.get("/_nbh/unavailable")
    assert response.status_code == 502 and "your work is kept" in response.text


def test_the_app_runs_one_culler_for_the_host(setup):
    hub = setup[1]
    with TestClient(create_app(hub=hub, cull=True)), TestClient(create_app(hub=hub, cull=True)):
        pass  # both start and stop cleanly; leadership itself is tested in tests/unit/test_culling.py


def test_a_full_workspace_gets_its_own_page_without_a_retry_button(tmp_path):
    from nbhosting_core import OverQuota
    from nbhosting_core.system.quota import NoQuota

    class FullQuota(NoQuota):
        def check(self, account):
            raise OverQuota("Your workspace is full: remove some files.", log_detail=account.user)

    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=100)
    (settings.courses_dir / "demo").mkdir(parents=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "demo" / "a.ipynb"))
    hub = Hub(
        settings,
        backend=FakeBackend(),
        accounts=FakeAccounts(settings.students_dir),
        quota=FullQuota(settings),
        clock=Clock(),
    )
    settings.data_root.mkdir(parents=True, exist_ok=True)
    settings.effective_platforms_file.write_text(PLATFORMS)
    response = TestClient(create_app(hub=hub), base_url="https://testserver").get(url("al"))
    assert response.status_code == 507 and "Your workspace is full" in response.text
    assert "Try again" not in response.text  # retrying cannot help until files are removed


# ------------------------------------------------------------------------------------------------ the door


def test_unsigned_expired_forged_or_misdirected_launches_are_refused_and_create_nothing(setup):
    settings, _, client, backend, clock = setup
    good = url("alice")
    for bad in (
        "/notebookLazyCopy/demo/a.ipynb/alice",  # no signature: no platform vouches
        url("alice", expires=int(clock.now) - 1),  # expired
        good.replace("/alice?", "/mallory?"),  # signed for alice, used for mallory
        good.replace("a.ipynb", "b.ipynb"),  # for another notebook
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # tampered
        good.replace("platform=test", "platform=other"),  # an unknown platform
        url("alice", expires=int(clock.now) + 25 * 3600),  # expires too far ahead
    ):
        response = client.get(bad, headers={"Referer": "https://course.example.org/unit/3"})
        assert response.status_code == 403, (bad, response.status_code)
        assert "Traceback" not in response.text
    assert backend.journal == [] and not (settings.students_dir.exists() and any(settings.students_dir.iterdir()))


def test_a_burst_of_invented_launches_creates_nothing(setup):
    settings, _, client, backend, _ = setup
    for i in range(200):
        assert client.get(f"/notebookLazyCopy/demo/a.ipynb/student-{i}").status_code == 403
    assert backend.journal == [] and backend.held() == []


def test_a_forged_poll_token_is_refused(setup):
    client, backend = setup[2], setup[3]
    follow = poll_url(client.get(url("alice")).text)
    assert client.get(follow.replace("/alice?", "/mallory?") + "&status=1").status_code == 403
    assert client.get(follow[:-3] + "xyz&status=1").status_code == 403
    assert [verb for verb, _ in backend.journal] == ["create"]  # alice's only


def test_students_are_scoped_by_their_platform(setup):
    hub, client = setup[1], setup[2]
    client.get(url("alice"))
    assert [v.server.student_id for v in hub.list_servers()] == ["test:alice"]


def test_the_platforms_file_is_read_again_when_it_changes(setup):
    settings, _, client, _, _ = setup
    assert client.get(url("alice")).status_code == 200
    settings.effective_platforms_file.write_text(PLATFORMS.replace('courses = ["*"]', 'courses = ["other"]'))
    assert client.get(url("bob")).status_code == 403  # demo is not a course of this platform any more
    settings.effective_platforms_file.write_text("[[platform]\nbroken")  # a mistake: the last good one stays
    assert client.get(url("carol")).status_code == 403


def test_legacy_unsigned_launches_pass_only_from_the_platforms_origins_when_turned_on(setup):
    settings, hub, client, backend, _ = setup
    bare = "/ipythonExercice/demo/a.ipynb/alice"
    assert client.get(bare, headers={"Referer": "https://course.example.org/x"}).status_code == 403  # off
    settings.effective_platforms_file.write_text(
        PLATFORMS.replace('methods = ["signed"]', 'methods = ["signed", "legacy"]')
    )
    assert client.get(bare, headers={"Referer": "https://elsewhere.example.net/"}).status_code == 403
    assert client.get(bare).status_code == 403  # no Referer: nobody vouches
    assert client.get(bare, headers={"Referer": "https://course.example.org/courses/x"}).status_code == 200
    assert [v.server.student_id for v in hub.list_servers()] == ["test:alice"]


# ------------------------------------------------------------------------- a launch that leads to a student's page


def test_a_launch_may_lead_to_a_students_page_of_its_notebook_instead_of_the_notebook(setup):
    client, clock = setup[2], setup[4]
    cold = client.get(url() + "&then=reset")
    assert cold.status_code == 200 and "then=reset" in cold.text  # the progress page's polls keep it
    clock.now += 1
    answer = client.get(url() + "&then=reset&status=1").json()
    assert answer["state"] == "ready"
    _, _, query = ticket_parts(answer["url"])
    assert query["next"] == "/_nbh/student/reset?notebook=a.ipynb"
    key = answer["notebook_url"].split("/")[4]
    response = client.get(answer["url"], headers={"X-Nbh-Key": key}, follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "/_nbh/student/reset?notebook=a.ipynb"
    ready = client.get(url() + "&then=download", follow_redirects=False)  # a running server: straight on
    _, _, query = ticket_parts(ready.headers["location"])
    assert ready.status_code == 302 and query["next"] == "/_nbh/student/download?notebook=a.ipynb"


def test_an_unknown_page_is_refused_before_anything_is_made(setup):
    _, hub, client, backend, _ = setup
    for then in ("restore", "unshare", "../../evil", "https://evil.example/"):
        refused = client.get(url("mallory") + f"&then={then}")
        assert refused.status_code == 400 and "Unknown page" in refused.text, then
    assert hub.accounts.find("test:mallory") is None and backend.list_servers() == []


def test_in_path_mode_the_students_pages_are_under_the_servers_path(setup):
    settings, hub, _, backend, clock = setup
    path_hub = Hub(
        settings.model_copy(update={"origin_mode": "path"}), backend=backend, accounts=hub.accounts, clock=clock
    )
    client = TestClient(create_app(hub=path_hub), base_url="https://testserver")
    client.get(url() + "&then=share")
    clock.now += 1
    answer = client.get(url() + "&then=share&status=1").json()
    _, _, query = ticket_parts(answer["url"])
    key = answer["notebook_url"].split("/")[4]
    assert query["next"] == f"/nb/{key}/_nbh/student/share?notebook=a.ipynb"
    response = client.get(answer["url"], follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == query["next"]
