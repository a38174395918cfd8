"""LTI launches through the real stack (`nbh serve --demo`: Caddy's TLS, the app's workers, rootless podman).

Python plays the course platform and the student's browser: it posts an LTI 1.1 launch, and makes an LTI 1.3
login and launch, over HTTPS with Caddy's root certificate trusted, and follows every redirect (the 303 to the
launch URL, the progress page's polls) until the student's own Jupyter answers through Caddy with the cookie the
launch set. The platforms sign with their own keys (tests.lti_platforms): the LTI 1.1 consumer over the public
URL (https://localhost:18443/lti/11/launch, as Open edX would sign it); the LTI 1.3 platform serves its JWKS on
a free local port.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from nbhosting_core.access import COOKIE_NAME
from tests.e2e.conftest import Served, _NoRedirect
from tests.lti_platforms import Consumer11, Platform13, query_of

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

NOTEBOOK = "01-welcome.ipynb"
CONSUMER = Consumer11("e2e-edx", "e2e-edx-shared-secret")


def post_form(served: Served, path: str, form: str | dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST a form over HTTPS (Caddy's CA trusted), as a course page's auto-submitted form does; no redirect."""
    body = form if isinstance(form, str) else urllib.parse.urlencode(form)
    request = urllib.request.Request(
        served.url(path),
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://courses.example.org"},
    )
    opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=served.ssl_context))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def to_jupyter(served: Served, status: int, headers: dict[str, str], body: bytes) -> tuple[str, str]:
    """Follow a verified LTI launch (its 303) as the browser does, until the student's Jupyter answers.

    Returns the notebook URL the launch ended at and the access cookie it set.
    """
    assert status == 303, f"the LTI launch answered {status}: {body[:400]!r}"
    location = headers["location"]
    assert location.startswith(f"/notebookLazyCopy/demo/{NOTEBOOK}/") and "admit=" in location, location
    status, _, cookies, page = served.request(location)
    assert status in (200, 302), (status, page[:400])
    cookie = next(c for c in cookies if c.startswith(f"{COOKIE_NAME}="))
    assert "SameSite=None" in cookie and "Partitioned" in cookie and "Secure" in cookie
    if status == 200:  # cold: the progress page, whose script polls with nbhosting's poll token
        follow = json.loads(re.search(rb'var launch = ("[^"]*")', page).group(1))
        deadline = time.monotonic() + 90
        while True:
            status, _, _, answer = served.request(follow + "&status=1", {"Accept": "application/json"})
            state = json.loads(answer)
            assert status == 200, state
            if state["state"] == "ready" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert state["state"] == "ready", state
        url = state["url"]
    else:
        url = served.request(location)[1]["location"]
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    key = re.fullmatch(rf"/{served.settings.url_prefix}/([0-9a-f]{{40}})/notebooks/{re.escape(NOTEBOOK)}", url)
    assert key, url
    status, _, _, answer = served.request(
        f"/{served.settings.url_prefix}/{key.group(1)}/api/status", {"Cookie": f"{COOKIE_NAME}={value}"}
    )
    assert status == 200 and b"started" in answer, (status, answer[:300])  # Jupyter itself, through Caddy
    return url, value


def add_platforms(served: Served, text: str) -> None:
    """Add platforms to the running installation's platforms file (every worker reads it again when it changes)."""
    path = served.settings.effective_platforms_file
    tmp = path.with_name(f".{path.name}.e2e")
    tmp.write_text(path.read_text() + text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def server_of(served: Served, student: str) -> Any:
    from nbhosting_core import Hub

    hub = Hub(served.settings)
    return [v.server for v in hub.list_servers() if v.server.student_id == student]


def test_an_lti11_and_an_lti13_launch_end_with_jupyter_answering_for_that_student(served: Served) -> None:
    with Platform13(issuer="https://courses.example.org", client_id="e2e-client") as platform:
        add_platforms(
            served,
            platform.toml(name="e2e-edx", courses='["demo"]', methods='["lti11", "lti13"]')
            + f'[platform.lti11]\nconsumer_key = "{CONSUMER.key}"\nshared_secret = "{CONSUMER.secret}"\n',
        )

        # LTI 1.1: the form Open edX posts, signed over the public launch URL
        form = CONSUMER.form(user_id="e2e-lti11-user", custom_course="demo", custom_notebook=NOTEBOOK)
        started = time.monotonic()
        answer = post_form(served, "/lti/11/launch", CONSUMER.sign(served.url("/lti/11/launch"), form))
        to_jupyter(served, *answer)
        print(f"\nLTI 1.1 launch to Jupyter answering: {time.monotonic() - started:.1f} s")
        assert len(server_of(served, "e2e-edx:e2e-lti11-user")) == 1

        # LTI 1.3: the platform's login initiation, nbhosting's redirect back to it, its form post of the id_token
        started = time.monotonic()
        params = platform.login_params(served.url("/lti/13/launch"), login_hint="e2e-lti13-user")
        status, headers, _, body = served.request("/lti/13/login?" + urllib.parse.urlencode(params))
        assert status == 303, (status, body[:300])
        asked = query_of(headers["location"])
        assert headers["location"].startswith(f"{platform.issuer}/api/lti_consumer/v1/launch/?")
        assert asked["redirect_uri"] == served.url("/lti/13/launch")
        claims = platform.claims(
            asked["nonce"],
            asked["redirect_uri"],
            sub="e2e-lti13-user",
            **{"https://purl.imsglobal.org/spec/lti/claim/custom": {"course": "demo", "notebook": NOTEBOOK}},
        )
        form13 = {"id_token": platform.id_token(claims), "state": asked["state"]}
        to_jupyter(served, *post_form(served, "/lti/13/launch", form13))
        print(f"LTI 1.3 login and launch to Jupyter answering: {time.monotonic() - started:.1f} s")
        assert len(server_of(served, "e2e-edx:e2e-lti13-user")) == 1

        # the same id_token posted again (another worker, maybe): refused
        status, _, body = post_form(served, "/lti/13/launch", form13)
        assert status == 403 and b"could not be verified" in body

        # the tool's keys, through Caddy
        status, _, _, body = served.request("/lti/13/jwks")
        assert status == 200 and json.loads(body)["keys"][0]["alg"] == "RS256"


def test_an_inline_lti11_launch_opens_the_notebook_inside_the_course_pages_iframe(served: Served, browser: Any) -> None:
    """As Open edX renders an inline LTI component: the unit (another site: http://127.0.0.1:PORT) holds an iframe
    whose page auto-submits the signed form to nbhosting, so the LTI POST arrives cross-site in a frame. The 303,
    the launch's cookie (SameSite=None; Secure; Partitioned) and the notebook must all work in that frame."""
    import html
    import http.server
    import threading

    from tests.e2e.test_browser import css, describe_page, notebook_url_re, until

    consumer = Consumer11("e2e-inline", "e2e-inline-shared-secret")
    add_platforms(
        served,
        '[[platform]]\nname = "e2e-inline"\ncourses = ["demo"]\nmethods = ["lti11"]\n'
        f'[platform.lti11]\nconsumer_key = "{consumer.key}"\nshared_secret = "{consumer.secret}"\n',
    )
    form = consumer.form(user_id="e2e-inline-user", custom_course="demo", custom_notebook=NOTEBOOK)
    fields = urllib.parse.parse_qsl(consumer.sign(served.url("/lti/11/launch"), form), keep_blank_values=True)
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields)
    pages = {
        "/unit.html": '<!doctype html><title>Unit</title><h1>Week 1</h1><iframe id="nb" src="/launch.html" '
        'width="1200" height="800"></iframe>',
        "/launch.html": f'<!doctype html><form id="lti" method="post" action="{served.url("/lti/11/launch")}">'
        f'{inputs}</form><script>document.getElementById("lti").submit()</script>',
    }

    class CourseSite(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = pages.get(self.path, "not found").encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CourseSite)
    threading.Thread(target=site.serve_forever, args=(0.05,), daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{site.server_address[1]}/unit.html")
        browser.switch_to.frame(browser.find_element("id", "nb"))
        pattern = notebook_url_re(served, NOTEBOOK)

        def ready(b: Any) -> bool:
            if css(b, "main.error"):
                return True
            return bool(pattern.match(b.execute_script("return location.href"))) and bool(
                css(b, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
            )

        until(browser, ready, lambda: f"no notebook in the unit's iframe: {describe_page(browser)}")
        assert not css(browser, "main.error"), describe_page(browser)
    finally:
        browser.switch_to.default_content()
        site.shutdown()
        site.server_close()
    assert len(server_of(served, "e2e-inline:e2e-inline-user")) == 1
