"""LTI launches through the app in-process (TestClient) on the in-memory backend: from the platform's form post to a
running server for "<platform>:<user id>", and every refusal with its page and nothing created.

The platforms are the tests' own: an LTI 1.1 consumer signing with oauthlib's Client, an LTI 1.3 platform with
its own RSA keys and its JWKS on a free local port (tests.lti_platforms).
"""

import json
import os
import re
import stat
import time
import urllib.parse

import nbformat
import pytest
from nbformat.v4 import new_notebook
from starlette.testclient import TestClient

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from tests.lti_platforms import CLAIM, Consumer11, Platform13, new_key, query_of

PUBLIC = "https://nb.example.org"  # what the platforms post to (Caddy's address); the app itself is "testserver"
LTI11_URL = PUBLIC + "/lti/11/launch"
LTI13_LAUNCH = PUBLIC + "/lti/13/launch"
USER = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
EDX11 = Consumer11("nbhosting", "edx-shared-secret-0123")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Clock:
    def __init__(self):
        self.now = time.time()  # the platforms sign with the real time

    def __call__(self):
        return self.now


@pytest.fixture
def platform13():
    with Platform13() as platform:
        yield platform


@pytest.fixture
def setup(tmp_path, platform13):
    settings = Settings(
        data_root=tmp_path / "data", run_dir=tmp_path / "run", public_url=PUBLIC, start_timeout=30, jwks_timeout=1.0
    )
    settings.data_root.mkdir(parents=True)
    settings.effective_platforms_file.write_text(
        platform13.toml(methods='["lti11", "lti13"]')
        + '[platform.lti11]\nconsumer_key = "nbhosting"\nshared_secret = "edx-shared-secret-0123"\n'
        + '[[platform]]\nname = "signs-only"\ncourses = ["*"]\nmethods = ["signed"]\nsecret = "'
        + "s" * 32
        + '"\n[platform.lti11]\nconsumer_key = "signs-only-key"\nshared_secret = "signs-only-secret-0123"\n'
    )
    for course, notebook in (("python101", "w1/intro.ipynb"), ("python101", "w2/loops.ipynb"), ("other", "a.ipynb")):
        (settings.courses_dir / course / notebook).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(new_notebook(), str(settings.courses_dir / course / notebook))
    clock = Clock()
    backend = FakeBackend(ready_after=1.0, clock=clock)
    hub = Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), clock=clock)
    from nbhosting_server import create_app

    client = TestClient(create_app(hub=hub), base_url="https://testserver")
    return settings, hub, client, backend, clock


def nothing_created(setup):
    settings, _, _, backend, _ = setup
    assert backend.journal == [], backend.journal
    assert not settings.students_dir.exists() or not any(settings.students_dir.iterdir())


def post11(client, body, path="/lti/11/launch", **headers):
    return client.post(path, content=body, headers={**FORM, **headers}, follow_redirects=False)


def follow_to_ready(setup, response, student):
    """From the LTI answer (303) to the running server, as the browser does: the launch URL, then the progress
    page's polls."""
    _, hub, client, _, clock = setup
    assert response.status_code == 303, (response.status_code, response.text[:500])
    location = response.headers["location"]
    assert location.startswith("/notebookLazyCopy/python101/w1/intro.ipynb/") and "admit=" in location
    page = client.get(location, follow_redirects=False)
    assert page.status_code == 200 and "Starting your notebook" in page.text
    follow = json.loads(re.search(r"var launch = (\"[^\"]*\")", page.text).group(1))
    assert "poll=" in follow and "admit=" not in follow  # the progress page follows with its own token
    clock.now += 1
    ready = client.get(follow + "&status=1").json()
    # ready: on to the server's own origin, where a one-time ticket sets its cookie (tests/server/test_origins.py)
    assert ready["state"] == "ready" and "/_nbh/ticket?t=" in ready["url"] and "/nb/" in ready["notebook_url"]
    (view,) = hub.list_servers()
    assert view.server.student_id == student and view.server.course == "python101"
    return ready


# ----------------------------------------------------------------------------------------------------- LTI 1.1


def test_an_lti11_launch_ends_in_a_running_server_for_the_platforms_user(setup):
    _, _, client, _, clock = setup
    response = post11(client, EDX11.sign(LTI11_URL, EDX11.form(), timestamp=clock.now))
    assert response.headers["cache-control"] == "no-store"
    follow_to_ready(setup, response, f"edx:{USER}")


def test_the_lti11_launch_is_also_at_lti_launch(setup):
    client, clock = setup[2], setup[4]
    body = EDX11.sign(PUBLIC + "/lti/launch", EDX11.form(), timestamp=clock.now)
    assert post11(client, body, path="/lti/launch").status_code == 303


def refused11(setup, body, status=403, says="could not be verified", **headers):
    response = post11(setup[2], body, **headers)
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert "text/html" in response.headers["content-type"] and says in response.text
    assert "Traceback" not in response.text
    nothing_created(setup)
    return response


def test_an_lti11_launch_with_a_bad_signature_is_refused(setup):
    refused11(setup, EDX11.sign(LTI11_URL, EDX11.form(), timestamp=setup[4].now, secret="not-the-secret"))


def test_an_lti11_launch_with_a_stale_timestamp_is_refused(setup):
    refused11(setup, EDX11.sign(LTI11_URL, EDX11.form(), timestamp=setup[4].now - 301))


def test_a_replayed_lti11_launch_is_refused(setup):
    client = setup[2]
    body = EDX11.sign(LTI11_URL, EDX11.form(), timestamp=setup[4].now)
    assert post11(client, body).status_code == 303
    response = post11(client, body)
    assert response.status_code == 403 and "could not be verified" in response.text


def test_an_lti11_launch_with_an_unknown_consumer_key_is_refused(setup):
    stranger = Consumer11("stranger", "edx-shared-secret-0123")
    refused11(setup, stranger.sign(LTI11_URL, stranger.form(), timestamp=setup[4].now), says="course staff")


def test_an_lti11_launch_from_a_platform_without_method_lti11_is_refused(setup):
    other = Consumer11("signs-only-key", "signs-only-secret-0123")
    refused11(setup, other.sign(LTI11_URL, other.form(), timestamp=setup[4].now), says="course staff")


def test_an_lti11_launch_of_a_course_the_platform_may_not_launch_is_refused(setup):
    form = EDX11.form(custom_course="other", custom_notebook="a.ipynb")
    refused11(setup, EDX11.sign(LTI11_URL, form, timestamp=setup[4].now), says="cannot be opened from here")


def test_an_lti11_launch_without_custom_parameters_is_a_bad_request(setup):
    form = EDX11.form(custom_course=None, custom_notebook=None)
    refused11(setup, EDX11.sign(LTI11_URL, form, timestamp=setup[4].now), status=400, says="which notebook")


def test_the_signed_url_comes_from_the_public_url_not_from_client_headers(setup):
    # a launch signed for another host, sent with headers claiming that host: still refused
    evil = "https://evil.example.com/lti/11/launch"
    body = EDX11.sign(evil, EDX11.form(), timestamp=setup[4].now)
    refused11(setup, body, Host="evil.example.com", **{"X-Forwarded-Host": "evil.example.com"})


def test_a_get_or_a_non_form_post_at_the_launch_url_is_explained(setup):
    client = setup[2]
    page = client.get("/lti/11/launch")
    assert page.status_code == 405 and "your course platform sends you here" in page.text
    json_post = client.post("/lti/11/launch", json={"user_id": "x"})
    assert json_post.status_code == 400
    huge = client.post("/lti/11/launch", content="a=" + "x" * 70_000, headers=FORM)
    assert huge.status_code == 400
    nothing_created(setup)


def test_a_forged_or_misdirected_admission_token_is_refused(setup):
    client = setup[2]
    location = post11(client, EDX11.sign(LTI11_URL, EDX11.form(), timestamp=setup[4].now)).headers["location"]
    assert client.get(location.replace(f"/{USER}?", "/mallory?")).status_code == 403
    assert client.get(location.replace("w1/intro.ipynb", "w2/loops.ipynb")).status_code == 403
    assert client.get(location[:-3] + "xyz").status_code == 403
    nothing_created(setup)


# ----------------------------------------------------------------------------------------------------- LTI 1.3


def login13(client, platform, method="GET"):
    params = platform.login_params(LTI13_LAUNCH)
    if method == "GET":
        return client.get("/lti/13/login?" + urllib.parse.urlencode(params), follow_redirects=False)
    return client.post("/lti/13/login", data=params, follow_redirects=False)


def post13(setup, platform, token=None, kid=None, key=None, **changes):
    """A whole LTI 1.3 launch: the login, the platform signing an id_token for its nonce, the form post."""
    client = setup[2]
    asked = query_of(login13(client, platform).headers["location"])
    if token is None:
        token = platform.id_token(platform.claims(asked["nonce"], LTI13_LAUNCH, **changes), kid=kid, key=key)
    form = {"id_token": token, "state": asked["state"]}
    return client.post("/lti/13/launch", data=form, follow_redirects=False), form


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_lti13_login_sends_the_browser_to_the_platform_with_state_and_nonce(setup, platform13, method):
    response = login13(setup[2], platform13, method)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("https://courses.example.org/api/lti_consumer/v1/launch/?")
    asked = query_of(location)
    assert asked["redirect_uri"] == LTI13_LAUNCH and asked["response_mode"] == "form_post"
    assert asked["state"] and asked["nonce"] and asked["prompt"] == "none" and asked["scope"] == "openid"


def test_an_lti13_launch_ends_in_a_running_server_for_the_platforms_sub(setup, platform13):
    response, _ = post13(setup, platform13)
    follow_to_ready(setup, response, f"edx:{USER}")


def refused13(setup, response, status=403, says="could not be verified"):
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert says in response.text and "Traceback" not in response.text
    nothing_created(setup)


def test_an_lti13_launch_for_another_audience_is_refused(setup, platform13):
    refused13(setup, post13(setup, platform13, aud="another-tool", azp=None)[0])


def test_an_expired_lti13_launch_is_refused(setup, platform13):
    now = int(setup[4].now)
    refused13(setup, post13(setup, platform13, iat=now - 7200, exp=now - 3600)[0], says="expired")


def test_an_lti13_launch_signed_with_another_key_is_refused(setup, platform13):
    refused13(setup, post13(setup, platform13, kid="k1", key=new_key())[0])


def test_a_replayed_lti13_launch_is_refused(setup, platform13):
    client = setup[2]
    first, form = post13(setup, platform13)
    assert first.status_code == 303
    again = client.post("/lti/13/launch", data=form, follow_redirects=False)
    assert again.status_code == 403 and "could not be verified" in again.text


def test_an_lti13_launch_of_an_unknown_deployment_is_refused(setup, platform13):
    refused13(setup, post13(setup, platform13, **{CLAIM + "deployment_id": "9"})[0], says="course staff")


def test_an_lti13_launch_without_its_custom_claim_is_a_bad_request(setup, platform13):
    refused13(setup, post13(setup, platform13, **{CLAIM + "custom": None})[0], status=400, says="which notebook")


def test_when_the_platform_rotates_its_keys_the_new_key_is_fetched_and_accepted(setup, platform13):
    assert post13(setup, platform13)[0].status_code == 303  # signed with k1: fetched, cached
    setup[4].now += 11  # past the refetch interval (10 s)
    platform13.rotate("k2")
    response, _ = post13(setup, platform13)
    assert response.status_code == 303, response.text[:300]
    assert platform13.fetches == 2


def test_a_platform_whose_keys_do_not_answer_gets_a_clear_page_within_the_timeout(setup, platform13):
    platform13.silent = True
    started = time.monotonic()
    response, _ = post13(setup, platform13)
    assert time.monotonic() - started < 5  # jwks_timeout is 1 s
    refused13(setup, response, status=502, says="did not answer")


def test_the_tool_publishes_its_public_keys(setup):
    settings, _, client, _, _ = setup
    response = client.get("/lti/13/jwks")
    assert response.status_code == 200 and "max-age" in response.headers["cache-control"]
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key
    assert stat.S_IMODE(os.stat(settings.lti_dir / "tool-key.pem").st_mode) == 0o600
    assert client.get("/lti/13/jwks").json()["keys"][0]["kid"] == key["kid"]


def test_nbh_lti_prints_what_the_lms_admin_copies(tmp_path, monkeypatch, capsys):
    from nbhosting_server.cli import main

    monkeypatch.setenv("NBH_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("NBH_PUBLIC_URL", PUBLIC + "/")
    assert main(["lti", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["lti11_launch_url"] == LTI11_URL and info["lti13_launch_url"] == LTI13_LAUNCH
    assert info["lti13_login_url"] == PUBLIC + "/lti/13/login" and info["lti13_keyset_url"] == PUBLIC + "/lti/13/jwks"
    assert main(["lti", "--public-key"]) == 0
    assert capsys.readouterr().out.startswith("-----BEGIN PUBLIC KEY-----")


def test_a_platform_with_one_client_id_per_component_launches_for_each_of_them(setup, platform13):
    settings = setup[0]
    text = settings.effective_platforms_file.read_text()
    one = f'client_id = "{platform13.client_id}"'
    assert one in text
    settings.effective_platforms_file.write_text(
        text.replace(one, f'client_ids = ["another-component", "{platform13.client_id}"]')
    )
    response, _ = post13(setup, platform13)
    follow_to_ready(setup, response, f"edx:{USER}")
    asked = query_of(login13(setup[2], platform13).headers["location"])
    assert asked["client_id"] == platform13.client_id  # the component's own client id, not the first listed
