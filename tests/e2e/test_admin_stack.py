"""The admin surface on the real stack (`nbh serve --demo`: the root helper, the app as its own user, Caddy): a staff
account made with the CLI, a login through Caddy, the helper's events read back by the app's side, and /metrics
refused without a token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

from nbhosting_core.system.services import service_user
from nbhosting_server.serve import settings_environment
from tests.e2e.conftest import Served

STUDENT = "admin-e2e"
PASSWORD = "correct horse battery"  # noqa: S105 - a test's staff member


def nbh(served: Served, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``nbh ARGS`` as root with the stack's settings, as an operator types it."""
    env = {**os.environ, **settings_environment(served.settings)}
    return subprocess.run(
        [sys.executable, "-m", "nbhosting_server.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(Path(__file__).resolve().parents[2]),
    )


def test_a_staff_member_made_by_root_lands_in_the_apps_database_owned_by_the_app(served: Served) -> None:
    made = nbh(served, "staff", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    app = service_user(served.settings.app_user)
    assert app is not None
    for path in served.settings.db_dir.iterdir():  # the database and SQLite's companions: none is root's
        assert path.stat().st_uid == app.uid, f"{path} is owned by uid {path.stat().st_uid}"
    listed = nbh(served, "staff", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [m["username"] for m in json.loads(listed.stdout)] == ["ada"]


def test_the_helpers_events_are_read_by_the_app_side(served: Served) -> None:
    served.sign_in("01-welcome.ipynb", STUDENT)
    found = nbh(served, "events", "--student", served.student_id(STUDENT), "--json")
    assert found.returncode == 0, found.stderr
    events = json.loads(found.stdout)["events"]
    kinds = {event["kind"] for event in events}
    assert {"open", "ready"} <= kinds, events
    opened = next(event for event in events if event["kind"] == "open")
    assert (opened["course"], opened["notebook"], opened["actor"]) == ("demo", "01-welcome.ipynb", "student")
    journal = served.settings.events_dir
    app = service_user(served.settings.app_user)
    assert app is not None
    for path in journal.iterdir():  # root's, readable by the app's group, by no one else
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, app.gid, 0o640), path


def test_a_staff_member_logs_in_through_caddy(served: Served) -> None:
    status, _, cookies, _ = served.request("/admin/")
    assert status == 303, "the landing page sends nobody to the login form"
    form = urllib.parse.urlencode({"username": "ada", "password": "wrong password", "next": "/admin/"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": served.base_url}
    status, _, cookies, body = served.request("/admin/login", headers, method="POST", body=form)
    assert status == 401 and not cookies, body[:300]
    form = urllib.parse.urlencode({"username": "ada", "password": PASSWORD, "next": "/admin/"}).encode()
    status, answer, cookies, body = served.request("/admin/login", headers, method="POST", body=form)
    assert status == 303 and answer["location"] == "/admin/", body[:300]
    [cookie] = cookies
    assert cookie.startswith("__Host-nbh-staff=") and "Secure" in cookie and "HttpOnly" in cookie, cookie
    status, _, _, body = served.request("/admin/", {"Cookie": cookie.split(";", 1)[0]})
    assert status == 200 and b"ada" in body, body[:300]


def admin_token(served: Served) -> str:
    """An API token of ada's, made with the CLI (once per module)."""
    if "token" not in served.state:
        made = nbh(served, "token", "create", "ada", "e2e", "--json")
        assert made.returncode == 0, made.stderr
        served.state["token"] = json.loads(made.stdout)["token"]
    token: str = served.state["token"]
    return token


def test_the_api_through_caddy_lists_and_stops_the_real_server_and_records_who(served: Served) -> None:
    auth = {"Authorization": f"Bearer {admin_token(served)}"}
    student = urllib.parse.quote(served.student_id(STUDENT), safe="")
    status, _, _, body = served.request("/api/v1/servers?course=demo&details=true", auth)
    assert status == 200, body[:300]
    views = {view["server"]["student_id"]: view for view in json.loads(body)["servers"]}
    mine = views[served.student_id(STUDENT)]
    assert mine["server"]["state"] == "running" and mine["usage"]["memory_bytes"] > 0, mine
    status, _, _, body = served.request(f"/api/v1/servers/demo/{student}/logs?lines=20", auth)
    assert status == 200 and "ServerApp" in json.loads(body)["text"], body[:300]  # Jupyter's own log lines
    status, _, _, body = served.request(f"/api/v1/servers/demo/{student}/stop", auth, method="POST")
    assert status == 200 and json.loads(body)["state"] == "stopped", body[:300]
    status, _, _, body = served.request(f"/api/v1/events?student_id={student}&kind=stop", auth)
    assert status == 200, body[:300]
    assert [event["actor"] for event in json.loads(body)["events"]] == ["ada"], (body[:600], served.log_tail(40))
    status, _, _, body = served.request(f"/api/v1/servers/demo/{student}/stop", {}, method="POST")
    assert status == 401, body[:300]


def test_metrics_are_refused_without_a_token_and_scraped_with_an_admins(served: Served) -> None:
    status, _, _, body = served.request("/metrics")
    assert status == 401, body[:300]
    status, _, _, body = served.request("/metrics", {"Authorization": f"Bearer {admin_token(served)}"})
    assert status == 200, body[:300]
    text = body.decode()
    counts = [line for line in text.splitlines() if line.startswith("nbhosting_launch_duration_seconds_count{")]
    created = [line for line in counts if 'status="success"' in line and 'action="create"' in line]
    assert created and float(created[0].rsplit(" ", 1)[1]) >= 1, counts
    assert "nbhosting_http_requests_total" in text
