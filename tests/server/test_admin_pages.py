"""The staff pages: every /admin page walked as each role, the servers' actions through their forms, the Try action,
statistics, escaping of hostile names and percent-encoded student ids (see nbhosting_server/admin/*pages.py)."""

from __future__ import annotations

import re
import urllib.parse

import nbformat
import pytest
from nbformat.v4 import new_notebook
from starlette.routing import Route

from nbhosting_core.coursemodels import Course, PullResult
from nbhosting_core.models import ServerState, Usage
from nbhosting_core.roles import Role
from nbhosting_server.admin import serverpages
from nbhosting_server.admin.layout import STYLESHEET_URL
from tests.admin_app import PASSWORD, SITE, AdminApp

ALICE = "test:alice"
#: a student id as hostile as a student id may be (printable ASCII, no space, no slash); "%zz", not "%41": Starlette's
#: TestClient decodes a path twice (uvicorn once: the browser tests open such an id's pages through uvicorn)
HOSTILE = "test:'\"><b>x<i>&amp;?#%zz"
ORIGIN = {"Origin": SITE}


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest.fixture
def site(admin_app: AdminApp) -> AdminApp:
    """The admin app with alice's server running in demo (ready)."""
    admin_app.hub.open_notebook("demo", "a.ipynb", ALICE)
    admin_app.clock.now += 2
    admin_app.hub.launch_status("demo", "a.ipynb", ALICE)
    return admin_app


@pytest.fixture
def two(site: AdminApp) -> AdminApp:
    """The site with a second course, ``other`` (bob's server running in it), and ``tess``, teacher of both."""
    other = site.settings.courses_dir / "other"
    other.mkdir()
    nbformat.write(new_notebook(), str(other / "b.ipynb"))
    site.hub.open_notebook("other", "b.ipynb", "test:bob")
    site.store.add("tess", Role.TEACHER, password=PASSWORD, courses=["demo", "other"])
    return site


def server_of(site: AdminApp, student_id: str):
    return next(v.server for v in site.hub.list_servers() if v.server.student_id == student_id)


def post_form(client, path: str, **fields: str):
    return client.post(path, data={"csrf": client.csrf, **fields}, headers=ORIGIN)


# ------------------------------------------------------------------------------------------------ the role walk

#: every /admin route: (method, path) -> the status for ada (admin), tom (teacher of demo), ned (teacher of other),
#: nobody. A route missing here fails the walk: a new page must say who may open it.
EXPECTED: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("GET", "/admin/login"): (200, 200, 200, 200),
    ("POST", "/admin/login"): (401, 401, 401, 401),  # an empty form: wrong user name or password
    ("POST", "/admin/logout"): (303, 303, 303, 401),
    ("GET", "/admin/"): (200, 200, 200, 303),
    ("GET", "/admin/courses"): (200, 200, 200, 303),
    ("GET", "/admin/courses/{course}"): (200, 200, 403, 303),
    ("POST", "/admin/courses/{course}/try"): (403, 303, 403, 401),  # ada has no student id to try as
    ("GET", "/admin/courses/{course}/try"): (403, 200, 403, 303),
    ("GET", "/admin/courses/{course}/statistics"): (200, 200, 403, 303),
    ("GET", "/admin/host"): (200, 403, 403, 303),
    ("GET", "/admin/servers"): (200, 200, 200, 303),
    ("POST", "/admin/servers/{course}/{student}/stop"): (303, 303, 403, 401),
    ("POST", "/admin/servers/{course}/{student}/restart"): (303, 303, 403, 401),
    ("GET", "/admin/servers/{course}/{student}/logs"): (200, 200, 403, 303),
    ("GET", "/admin/students"): (200, 200, 200, 303),
    ("GET", "/admin/students/{student}"): (200, 200, 403, 303),  # alice was never seen in ned's course
    ("GET", "/admin/events"): (200, 200, 200, 303),
}
PARAMS = {"course": "demo", "student": q(ALICE)}
FIELDS = {"/admin/courses/{course}/try": {"notebook": "a.ipynb"}}
QUERIES = {"/admin/courses/{course}/try": "?notebook=a.ipynb"}


def admin_routes(site: AdminApp) -> list[tuple[str, str]]:
    found = []
    for route in site.app.routes:
        if isinstance(route, Route) and route.path.startswith("/admin"):
            found += [(method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_every_admin_route_says_who_may_open_it(site):
    assert sorted(admin_routes(site)) == sorted(EXPECTED)


@pytest.mark.parametrize("who", ["ada", "tom", "ned", None])
def test_the_role_walk_over_every_admin_page(site, who):
    column = ["ada", "tom", "ned", None].index(who)
    for method, template in admin_routes(site):
        expected = EXPECTED[(method, template)][column]
        path = template.format(**PARAMS)
        client = site.session(who) if who else site.client  # fresh: a logout or a stop walked before changes nothing
        if method == "GET":
            response = client.get(path + QUERIES.get(template, ""))
        else:
            data = {"back": ""} | FIELDS.get(template, {}) | ({"csrf": client.csrf} if who else {})
            response = client.post(path, data=data, headers=ORIGIN)
        assert response.status_code == expected, f"{method} {path} as {who}: {response.status_code}, not {expected}"
        if expected == 303 and who is None:
            assert response.headers["location"].startswith("/admin/login?next=")
        if response.status_code == 200 and template != "/admin/login":
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "same-origin"  # a form's POST carries its Origin
            assert STYLESHEET_URL in response.text
        if response.status_code in (200, 303) and method == "POST" and "servers" in template:
            site.hub.open_notebook("demo", "a.ipynb", ALICE)  # running again for the next role


def test_the_navigation_shows_what_the_principal_may_open(site):
    ada, tom = site.session("ada").get("/admin/").text, site.session("tom").get("/admin/").text
    assert 'href="/admin/host"' in ada and 'href="/admin/host"' not in tom
    for page in ("courses", "servers", "students", "events"):
        assert f'href="/admin/{page}"' in tom
    assert 'href="/admin/courses/demo"' in tom  # their course


def test_the_stylesheet_is_served_by_the_app_cached_for_good(site):
    response = site.client.get(STYLESHEET_URL)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "table.list" in response.text


# ------------------------------------------------------------------------------------------------ servers


def test_the_servers_page_lists_the_server_with_its_figures_and_actions(site):
    page = site.session("ada").get("/admin/servers?course=demo").text
    row = re.search(rf'<tr data-student="{ALICE}" data-course="demo">.*?</tr>', page).group(0)
    assert '<span class="state running">running</span>' in row and "fake-image" in row
    assert 'data-action="stop"' in row and 'data-action="restart"' in row
    assert f'href="/admin/servers/demo/{q(ALICE)}/logs"' in row


def test_a_teacher_of_another_course_sees_no_server_of_it_and_no_button(site):
    ned = site.session("ned")
    assert ALICE not in ned.get("/admin/servers").text
    assert ned.get("/admin/servers?course=demo").status_code == 403


def probes(site: AdminApp) -> list[str]:
    """The servers whose memory the listing asks for from now on (a spy on the fake backend's usage)."""
    asked: list[str] = []
    usage = site.hub.backend.usage

    def spy(server):
        asked.append(server.student_id)
        return usage(server)

    site.hub.backend.usage = spy
    return asked


def test_a_few_servers_are_listed_with_their_memory(site):
    site.hub.backend.set_usage(server_of(site, ALICE).name, Usage(memory_bytes=3 * 2**20))
    asked = probes(site)
    page = site.session("ada").get("/admin/servers").text
    row = re.search(rf'<tr data-student="{ALICE}" data-course="demo">.*?</tr>', page).group(0)
    assert "3.0 MiB" in row and asked == [ALICE]
    assert 'class="note"' not in page


def test_many_servers_are_listed_without_details_unless_asked(site, monkeypatch):
    monkeypatch.setattr(serverpages, "DETAILS_LIMIT", 1)
    site.hub.open_notebook("demo", "a.ipynb", "test:bob")
    site.hub.backend.set_usage(server_of(site, ALICE).name, Usage(memory_bytes=3 * 2**20))
    asked = probes(site)
    ada = site.session("ada")
    page = ada.get("/admin/servers").text
    assert asked == [] and "3.0 MiB" not in page and 'data-student="test:bob"' in page
    note = re.search(r'<p class="note">.*?</p>', page).group(0)
    assert "more than 1 are running" in note and 'href="/admin/servers?details=1"' in note
    detailed = ada.get("/admin/servers?details=1").text
    assert sorted(asked) == [ALICE, "test:bob"] and "3.0 MiB" in detailed
    assert 'href="/admin/servers" data-details="0"' in detailed
    assert 'name="back" value="/admin/servers?details=1"' in detailed  # an action comes back to what was asked
    asked.clear()
    few = ada.get("/admin/servers?course=demo&details=0").text
    assert asked == [] and "you asked not to" in few and "3.0 MiB" not in few
    assert ada.get("/admin/servers?details=yes").status_code == 400


def test_a_teacher_lists_the_servers_of_all_their_courses_and_probes_only_those(two):
    two.hub.backend.set_usage(server_of(two, "test:bob").name, Usage(memory_bytes=5 * 2**20))
    asked = probes(two)
    page = two.session("tess").get("/admin/servers").text
    assert f'data-student="{ALICE}" data-course="demo"' in page
    assert 'data-student="test:bob" data-course="other"' in page
    assert "5.0 MiB" in page and sorted(asked) == [ALICE, "test:bob"]
    asked.clear()
    tom = two.session("tom").get("/admin/servers").text
    assert 'data-student="test:bob"' not in tom and asked == [ALICE]  # bob's server (other) is not asked


def test_stop_through_the_form_stops_the_server_and_says_so_once(site):
    tom = site.session("tom")
    response = post_form(tom, f"/admin/servers/demo/{q(ALICE)}/stop", back="/admin/servers?course=demo")
    assert response.status_code == 303 and response.headers["location"] == "/admin/servers?course=demo"
    assert server_of(site, ALICE).state is ServerState.STOPPED
    page = tom.get(response.headers["location"]).text
    assert f'<p class="flash" role="status">Stopped the server of {ALICE} in demo.</p>' in page
    assert 'class="flash' not in tom.get("/admin/servers?course=demo").text  # shown once
    assert 'data-action="stop"' not in page and 'data-action="restart"' in page  # stopped: restart only


def test_restart_through_the_form_starts_a_stopped_server(site):
    site.hub.stop_server("demo", ALICE)
    response = post_form(site.session("ada"), f"/admin/servers/demo/{q(ALICE)}/restart")
    assert response.status_code == 303
    assert server_of(site, ALICE).state is ServerState.RUNNING


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({}, ORIGIN),  # no CSRF token
        ({"csrf": "forged"}, ORIGIN),  # a wrong one
        (None, {"Origin": "https://evil.example"}),  # the right token, from another site
    ],
)
def test_an_action_without_the_csrf_token_or_from_elsewhere_is_refused(site, fields, headers):
    ada = site.session("ada")
    data = {"csrf": ada.csrf} if fields is None else fields
    for action in ("stop", "restart"):
        response = ada.post(f"/admin/servers/demo/{q(ALICE)}/{action}", data=data, headers=headers)
        assert response.status_code == 403
    assert server_of(site, ALICE).state is ServerState.RUNNING


def test_a_teacher_of_another_course_cannot_stop_it(site):
    assert post_form(site.session("ned"), f"/admin/servers/demo/{q(ALICE)}/stop").status_code == 403
    assert server_of(site, ALICE).state is ServerState.RUNNING


def test_an_action_on_no_server_comes_back_with_an_error(site):
    response = post_form(site.session("ada"), f"/admin/servers/demo/{q('test:nobody')}/stop")
    assert response.status_code == 303
    page = site.session("ada").get("/admin/servers")
    assert "Could not stop" not in page.text  # another session: no flash
    assert "nbh-flash=%21" in response.headers["set-cookie"]  # "!": an error


def test_a_back_to_another_site_is_not_followed(site):
    response = post_form(site.session("ada"), f"/admin/servers/demo/{q(ALICE)}/stop", back="https://evil.example/")
    assert response.headers["location"] == "/admin/"


def test_a_log_is_shown_escaped_in_a_pre(site):
    site.hub.backend.emit(server_of(site, ALICE).name, "<script>alert(1)</script> & done")
    page = site.session("tom").get(f"/admin/servers/demo/{q(ALICE)}/logs?lines=10").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; done" in page and "<script>" not in page
    assert re.search(r'<pre class="log">[^<]*\[fake\][^<]*started', page)


@pytest.mark.parametrize("lines", ["0", "-1", "abc", "100000", "½"])
def test_a_log_with_a_bad_number_of_lines_is_refused(site, lines):
    response = site.session("ada").get(f"/admin/servers/demo/{q(ALICE)}/logs?lines={q(lines)}")
    assert response.status_code == 400


# ------------------------------------------------------------------------------------------------ hostile names


def test_a_hostile_student_id_is_escaped_everywhere_and_reachable_percent_encoded(site):
    site.hub.open_notebook("demo", "a.ipynb", HOSTILE)
    ada = site.session("ada")
    escaped = "test:&#x27;&quot;&gt;&lt;b&gt;x&lt;i&gt;&amp;amp;?#%zz"
    for path in ("/admin/servers", "/admin/students", f"/admin/students/{q(HOSTILE)}", "/admin/events?kind=open"):
        page = ada.get(path)
        assert page.status_code == 200, path
        assert "<b>x" not in page.text and escaped in page.text, path
    assert f'href="/admin/students/{q(HOSTILE)}"' in ada.get("/admin/servers").text
    student = ada.get(f"/admin/students/{q(HOSTILE)}").text
    assert "<h1>Student <code>" + escaped + "</code></h1>" in student
    logs = ada.get(f"/admin/servers/demo/{q(HOSTILE)}/logs")
    assert logs.status_code == 200 and escaped in logs.text
    assert post_form(ada, f"/admin/servers/demo/{q(HOSTILE)}/stop").status_code == 303
    assert server_of(site, HOSTILE).state is ServerState.STOPPED


def test_a_hostile_search_and_filters_are_escaped(site):
    page = site.session("ada").get("/admin/students?search=" + q('"><script>x')).text
    assert "<script>x" not in page and "&quot;&gt;&lt;script&gt;x" in page
    response = site.session("ada").get("/admin/events?kind=" + q("<b>"))
    assert response.status_code == 400 and "<b>" not in response.text


# ------------------------------------------------------------------------------------------------ courses, try


def test_the_courses_page_lists_a_course_with_its_running_servers(site):
    page = site.session("tom").get("/admin/courses").text
    row = re.search(r'<tr data-course="demo">.*?</tr>', page).group(0)
    assert "a local folder" in row and '<td class="num">1</td>' in row
    assert 'data-course="demo"' not in site.session("ned").get("/admin/courses").text


def test_the_course_page_links_to_its_pages_and_offers_try(site):
    page = site.session("tom").get("/admin/courses/demo").text
    for href in ("/admin/courses/demo/statistics", "/admin/servers?course=demo", "/admin/students?course=demo"):
        assert f'href="{href}"' in page
    assert '<option value="a.ipynb">a.ipynb</option>' in page and "Try as <code>staff:tom</code>" in page
    assert "needs a student id" in site.session("ada").get("/admin/courses/demo").text


def test_the_course_page_shows_the_end_of_the_last_pulls_log_and_of_its_images_last_build_escaped(site):
    pull = PullResult(course="demo", at=1.0, seconds=0.5, ok=True, commit=None, log="From /srv/git\n<b>pulled</b>")
    meta = site.settings.course_meta_dir
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "demo.json").write_text(
        Course(name="demo", remote="/srv/git", branch="main", last_pull=pull).model_dump_json()
    )
    logs = site.settings.effective_images_dir / "logs" / "course-demo"
    logs.mkdir(parents=True)
    lines = [f"STEP {i}" for i in range(1000)]
    (logs / "20261101T000000Z-1.log").write_text("\n".join(lines) + "\n<script>x</script>\n")
    page = site.session("tom").get("/admin/courses/demo").text
    pulled = re.search(r'<details class="pull-log">.*?</details>', page, re.S).group(0)  # closed: it worked
    assert "Git&#x27;s log of the last pull" in pulled and "&lt;b&gt;pulled&lt;/b&gt;" in pulled
    built = re.search(r'<details class="build-log" open>.*?</details>', page, re.S).group(0)  # open: it failed
    assert "failed or unfinished" in built and "20261101T000000Z-1.log" in built
    assert "&lt;script&gt;x&lt;/script&gt;" in built and "<script>x" not in page
    assert "STEP 999" in built and "STEP 800\n" not in built and "(its last 200 lines of 1001)" in built


def test_an_unknown_course_is_a_404_for_an_admin(site):
    assert site.session("ada").get("/admin/courses/nosuch").status_code == 404


def test_try_opens_the_notebook_as_the_staff_members_student_id_then_goes_on_to_it(site):
    tom = site.session("tom")
    response = post_form(tom, "/admin/courses/demo/try", notebook="a.ipynb")
    assert response.status_code == 303 and response.headers["location"] == "/admin/courses/demo/try?notebook=a.ipynb"
    assert server_of(site, "staff:tom").course == "demo"
    starting = tom.get(response.headers["location"]).text
    assert '<meta http-equiv="refresh" content="1">' in starting and "Starting your server" in starting
    site.clock.now += 2  # the fake server answers
    ready = tom.get("/admin/courses/demo/try?notebook=a.ipynb").text
    key = server_of(site, "staff:tom").key
    target = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', ready).group(1)
    assert target.startswith(f"https://{key}.nb.localhost") and "/_nbh/ticket?t=" in target
    assert 'id="open"' in ready


def test_try_is_refused_without_a_student_id_or_the_csrf_token(site):
    refused = post_form(site.session("ada"), "/admin/courses/demo/try", notebook="a.ipynb")
    assert refused.status_code == 403 and "no student id" in refused.text
    tom = site.session("tom")
    assert tom.post("/admin/courses/demo/try", data={"notebook": "a.ipynb"}, headers=ORIGIN).status_code == 403
    assert all(v.server.student_id != "staff:tom" for v in site.hub.list_servers())


def test_try_of_a_bad_notebook_is_refused(site):
    tom = site.session("tom")
    assert post_form(tom, "/admin/courses/demo/try", notebook="../x.ipynb").status_code == 400
    assert post_form(tom, "/admin/courses/demo/try", notebook="nosuch.ipynb").status_code == 404


# ------------------------------------------------------------------------------------------------ statistics, events


def test_the_statistics_page_draws_the_course_after_ingesting_its_events(site):
    for student in ("test:bob", "test:carol"):
        site.hub.open_notebook("demo", "a.ipynb", student)
    page = site.session("tom").get("/admin/courses/demo/statistics").text
    assert page.count("<svg") >= 3 and "Statistics of <code>demo</code>" in page
    assert re.search(r"<b>3</b>students ever", page)


def test_the_host_page_draws_the_samples(site):
    site.hub.sample()
    site.clock.now += 300
    site.hub.sample()
    page = site.session("ada").get("/admin/host").text
    assert "2 samples" in page and page.count("<svg") >= 4


@pytest.mark.parametrize("days", ["0", "x", "367"])
def test_a_bad_span_is_refused(site, days):
    assert site.session("ada").get(f"/admin/host?days={days}").status_code == 400


def test_events_are_filtered_and_a_teacher_sees_their_courses_only(site):
    ada = site.session("ada")
    page = ada.get("/admin/events?kind=open").text
    assert '<tr data-kind="open">' in page and '<tr data-kind="ready">' not in page
    assert ALICE in site.session("tom").get("/admin/events").text
    assert ALICE not in site.session("ned").get("/admin/events").text
    assert site.session("ned").get("/admin/events?course=demo").status_code == 403


def test_events_are_paged(site):
    for n in range(60):
        site.hub.open_notebook("demo", "a.ipynb", f"test:s{n}")
    ada = site.session("ada")
    first = ada.get("/admin/events?kind=open").text
    older = re.search(r'<a href="([^"]+)">Older</a>', first).group(1).replace("&amp;", "&")
    second = ada.get(older).text
    assert first.count('<tr data-kind="open">') == 50 and second.count('<tr data-kind="open">') == 11


def test_a_student_page_shows_only_the_teachers_courses(two):
    two.hub.open_notebook("other", "b.ipynb", ALICE)
    tom = two.session("tom").get(f"/admin/students/{q(ALICE)}").text
    assert '<tr data-course="demo">' in tom and 'data-action="stop"' in tom
    assert 'data-course="other"' not in tom and "b.ipynb" not in tom
    ned = two.session("ned").get(f"/admin/students/{q(ALICE)}").text
    assert '<tr data-course="other">' in ned and 'data-course="demo"' not in ned and "a.ipynb" not in ned


def test_a_teacher_opening_a_student_never_seen_in_their_courses_is_refused(two):
    ned = two.session("ned")
    refused = ned.get(f"/admin/students/{q(ALICE)}")
    assert refused.status_code == 403 and "Not allowed" in refused.text and "never seen in your courses" in refused.text
    assert "a.ipynb" not in refused.text and "Workspaces" not in refused.text
    assert ned.get(f"/admin/students/{q('test:nobody')}").status_code == 403
    assert ned.get(f"/admin/students/{q('test:bob')}").status_code == 200  # seen in other
    assert two.session("ada").get(f"/admin/students/{q('test:nobody')}").status_code == 200  # an admin: anyone


def test_a_teacher_of_two_courses_lists_both_without_a_filter_and_one_with_it(two):
    tess = two.session("tess")
    page = tess.get("/admin/students").text
    assert f'data-student="{ALICE}"' in page and 'data-student="test:bob"' in page
    assert '<option value="">every course you may see</option>' in page
    assert '<option value="demo">' in page and '<option value="other">' in page
    demo = tess.get("/admin/students?course=demo").text
    assert f'data-student="{ALICE}"' in demo and 'data-student="test:bob"' not in demo
    assert '<option value="demo" selected>' in demo
    events = tess.get("/admin/events?kind=open").text
    assert "<td>demo</td>" in events and "<td>other</td>" in events and 'data-kind="open"' in events
    only = tess.get("/admin/events?kind=open&course=other").text
    assert "<td>other</td>" in only and "<td>demo</td>" not in only
    tom = two.session("tom")
    assert 'data-student="test:bob"' not in tom.get("/admin/students").text  # bob: other only
    assert "<td>other</td>" not in tom.get("/admin/events").text
    assert tom.get("/admin/students?course=other").status_code == 403
    ada = two.session("ada").get("/admin/students").text
    assert '<option value="">every course</option>' in ada and 'data-student="test:bob"' in ada


def test_the_students_page_searches(site):
    site.hub.open_notebook("demo", "a.ipynb", "test:bob")
    page = site.session("tom").get("/admin/students?search=bob").text
    assert 'data-student="test:bob"' in page and f'data-student="{ALICE}"' not in page
