"""The admin surface's door: login and logout pages, session cookies, bearer tokens, CSRF, origins, refusals."""

import re

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from nbhosting_core.roles import Permission, Role
from nbhosting_core.staff import SESSION_IDLE, USER_FAILURES
from nbhosting_server.admin import form_of, require, require_anywhere
from nbhosting_server.admin.forms import safe_next
from tests.admin_app import PASSWORD, SITE


async def stop_in_course(request: Request) -> JSONResponse:
    principal = await require(request, Permission.ACT_ON_SERVERS, request.path_params["course"])
    return JSONResponse({"by": principal.username, "via": principal.via})


async def a_form(request: Request) -> JSONResponse:
    principal = await require(request, Permission.VIEW_COURSES, "demo")
    return JSONResponse({"by": principal.username, "fields": sorted(await form_of(request))})


async def host_metrics(request: Request) -> JSONResponse:
    return JSONResponse({"by": (await require(request, Permission.MANAGE_HOST)).username})


async def a_listing(request: Request) -> JSONResponse:
    return JSONResponse({"by": (await require_anywhere(request, Permission.VIEW_SERVERS)).username})


@pytest.fixture
def site(admin_app):
    """The admin app with a few routes of the kind the API and the pages will have."""
    admin_app.app.router.routes += [
        Route("/api/test/{course}/stop", stop_in_course, methods=["POST"]),
        Route("/admin/test-form", a_form, methods=["POST"]),
        Route("/api/test/metrics", host_metrics),
        Route("/api/test/servers", a_listing),
        Route("/admin/test/metrics", host_metrics),
    ]
    return admin_app


def log_in(client, username="tom", password=PASSWORD, origin=SITE, **extra):
    data = {"username": username, "password": password, **extra}
    return client.post("/admin/login", data=data, headers={"Origin": origin})


# ------------------------------------------------------------------------------------------- login, logout


def test_the_login_page_is_a_local_form_with_nothing_from_elsewhere(site):
    page = site.client.get("/admin/login?next=/admin/courses")
    assert page.status_code == 200 and 'method="post" action="/admin/login"' in page.text
    assert 'name="next" value="/admin/courses"' in page.text
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # no CDN, no external asset


def test_staff_pages_are_never_framed_nor_cached(site):
    for response in (site.client.get("/admin/login"), site.session("ada").get("/admin/"), log_in(site.client, "x")):
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"


def test_a_login_sets_a_host_only_secure_strict_session_cookie_and_goes_on(site):
    response = log_in(site.client, next="/admin/?x=1")
    assert response.status_code == 303 and response.headers["location"] == "/admin/?x=1"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-nbh-staff=")
    for attribute in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "domain" not in cookie.lower()
    home = site.client.get("/admin/")
    assert home.status_code == 200 and "Logged in as <strong>tom</strong> (teacher)" in home.text


def test_over_plain_http_the_cookie_has_no_host_prefix_and_no_secure(site):
    client = TestClient(site.app, base_url="http://localhost", follow_redirects=False)
    response = log_in(client, origin="http://localhost")
    assert response.status_code == 303, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("nbh-staff=") and "secure" not in cookie.lower()
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize(("username", "password"), [("tom", "wrong password!"), ("nobody", PASSWORD)])
def test_a_failed_login_says_the_same_whether_the_user_exists_or_not(site, username, password):
    response = log_in(site.client, username, password)
    assert response.status_code == 401 and "Wrong user name or password." in response.text
    assert "set-cookie" not in response.headers


def test_too_many_failures_answer_429_with_retry_after_even_for_the_right_password(site):
    for _ in range(USER_FAILURES):
        assert log_in(site.client, "tom", "wrong password!").status_code == 401
    response = log_in(site.client, "tom", PASSWORD)
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert "Too many failed logins" in response.text and "set-cookie" not in response.headers


def test_a_login_from_another_site_is_refused(site):
    response = site.client.post(
        "/admin/login", data={"username": "tom", "password": PASSWORD}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403 and "set-cookie" not in response.headers
    response = site.client.post(
        "/admin/login", data={"username": "tom", "password": PASSWORD}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403


def test_a_login_form_is_read_up_to_8_kib(site):
    response = log_in(site.client, "tom", PASSWORD, padding="x" * 9000)
    assert response.status_code == 413
    response = site.client.post(
        "/admin/login", content=b'{"username": "tom"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 415


def test_a_logout_needs_the_csrf_token_then_ends_the_session(site):
    tom = site.session("tom")
    assert tom.post("/admin/logout", headers={"Origin": SITE}).status_code == 403
    assert tom.get("/admin/").status_code == 200  # still in
    page = tom.get("/admin/").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    response = tom.post("/admin/logout", data={"csrf": token}, headers={"Origin": SITE})
    assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    assert tom.get("/admin/").status_code == 303


def test_the_session_ends_after_idling(site):
    tom = site.session("tom")
    site.clock.now += SESSION_IDLE + 1
    assert tom.get("/admin/").headers["location"] == "/admin/login?next=%2Fadmin%2F"


# --------------------------------------------------------------------------------------- who sees what


def test_a_page_without_a_principal_goes_to_the_login_page_and_back(site):
    response = site.client.get("/admin/test/metrics?a=1")
    assert (
        response.status_code == 303
        and response.headers["location"] == "/admin/login?next=%2Fadmin%2Ftest%2Fmetrics%3Fa%3D1"
    )


def test_the_api_answers_401_and_403_in_json(site):
    response = site.client.get("/api/test/metrics")
    assert response.status_code == 401 and response.json()["error"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    response = site.bearer("tom").get("/api/test/metrics")
    assert response.status_code == 403 and "may not" in response.json()["message"]
    assert site.bearer("ada").get("/api/test/metrics").json() == {"by": "ada"}


def test_a_refused_page_is_a_page(site):
    response = site.session("tom").get("/admin/test/metrics")
    assert response.status_code == 403 and "<h1>Not allowed</h1>" in response.text


def test_the_landing_page_lists_what_each_role_may(site):
    tom = site.session("tom").get("/admin/").text
    assert "stop and restart servers</td><td>demo" in tom and "manage the host" not in tom
    ada = site.session("ada").get("/admin/").text
    assert "manage the host: every course, metrics, staff</td><td>every course" in ada


def test_a_listing_is_open_to_a_teacher_with_a_course_and_to_an_admin(site):
    assert site.bearer("tom").get("/api/test/servers").json() == {"by": "tom"}
    site.store.set_courses("ned", [])
    assert site.bearer("ned").get("/api/test/servers").status_code == 403


def test_a_bad_bearer_token_is_no_principal_whatever_cookie_comes_with_it(site):
    tom = site.session("tom")
    response = tom.get("/api/test/servers", headers={"Authorization": "Bearer nbh_forged"})
    assert response.status_code == 401


def test_a_revoked_token_or_a_disabled_staff_member_is_refused_at_once(site):
    ada = site.bearer("ada")
    site.store.revoke_token(site.store.tokens()[-1].id)
    assert ada.get("/api/test/metrics").status_code == 401
    tom = site.session("tom")
    site.store.set_disabled("tom", True)
    assert tom.get("/admin/").status_code == 303


def test_a_tokens_role_caps_what_it_may(site):
    reader = site.bearer("ada", role=Role.TEACHER)
    assert reader.get("/api/test/metrics").status_code == 403


# ------------------------------------------------------------------------------------------------ CSRF


def test_a_session_write_without_or_with_a_wrong_csrf_token_is_refused(site):
    tom = site.session("tom")
    assert tom.post("/api/test/demo/stop", headers={"Origin": SITE}).status_code == 403
    assert tom.post("/api/test/demo/stop", headers={"Origin": SITE, "X-CSRF-Token": "x" * 43}).status_code == 403
    ned = site.session("ned")  # a real token, of another session
    assert tom.post("/api/test/demo/stop", headers={"Origin": SITE, "X-CSRF-Token": ned.csrf}).status_code == 403


def test_a_session_write_with_its_csrf_token_is_accepted(site):
    tom = site.session("tom")
    response = tom.post("/api/test/demo/stop", headers=tom.write_headers)
    assert response.status_code == 200 and response.json() == {"by": "tom", "via": "session"}


def test_a_session_write_from_another_origin_is_refused_even_with_the_token(site):
    tom = site.session("tom")
    headers = tom.write_headers | {"Origin": "https://evil.example"}
    assert tom.post("/api/test/demo/stop", headers=headers).status_code == 403
    headers = {"X-CSRF-Token": tom.csrf, "Sec-Fetch-Site": "same-site"}
    assert tom.post("/api/test/demo/stop", headers=headers).status_code == 403


def test_a_forms_csrf_field_is_checked_and_the_form_still_read_by_the_route(site):
    tom = site.session("tom")
    response = tom.post("/admin/test-form", data={"csrf": "wrong", "a": "1"}, headers={"Origin": SITE})
    assert response.status_code == 403 and "This form has expired" in response.text
    response = tom.post("/admin/test-form", data={"csrf": tom.csrf, "a": "1"}, headers={"Origin": SITE})
    assert response.json() == {"by": "tom", "fields": ["a", "csrf"]}


def test_a_bearer_write_needs_no_csrf_token(site):
    response = site.bearer("tom").post("/api/test/demo/stop")
    assert response.json() == {"by": "tom", "via": "token"}


def test_a_teacher_may_write_in_their_course_only(site):
    tom = site.bearer("tom")
    assert tom.post("/api/test/other/stop").status_code == 403
    assert site.bearer("ned").post("/api/test/other/stop").status_code == 200


def test_a_csrf_check_comes_before_the_permission_and_nobody_gets_401(site):
    assert site.client.post("/api/test/demo/stop").status_code == 401


# -------------------------------------------------------------------------------------- the redirect guard


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("/admin/courses?x=1", True),
        ("/api/v1/servers", True),
        ("//evil.example/", False),
        ("/\\evil.example", False),
        ("https://evil.example/", False),
        ("javascript:alert(1)", False),
        ("admin/", False),
        ("/admin/\nSet-Cookie: x", False),
        ("/" + "a" * 3000, False),
        ("", False),
        (None, False),
    ],
)
def test_next_is_a_local_path_only(value, kept):
    assert safe_next(value) == (value if kept else "/admin/")


def test_a_login_never_sends_the_browser_elsewhere(site):
    response = log_in(site.client, next="//evil.example/")
    assert response.status_code == 303 and response.headers["location"] == "/admin/"
    page = site.client.get("/admin/login?next=https://evil.example/")
    assert 'name="next" value="/admin/"' in page.text


def test_without_a_database_there_is_no_admin_surface(tmp_path):
    from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
    from nbhosting_server import create_app

    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run")
    hub = Hub(settings, backend=FakeBackend(), accounts=FakeAccounts(settings.students_dir))
    app = create_app(hub=hub)
    assert app.state.staff is None and app.state.database is None
    assert TestClient(app).get("/admin/login").status_code == 404


def test_the_admin_packages_surface_is_what_all_says_and_sorted():
    from nbhosting_server import admin

    assert admin.__all__ == sorted(admin.__all__)
    for name in admin.__all__:
        assert getattr(admin, name).__doc__ or name == "FORM_LIMIT", name
