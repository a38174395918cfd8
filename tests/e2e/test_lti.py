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
from nbhosting_core.system.layout import share_with_app
from tests.e2e.conftest import Served
from tests.lti_platforms import Consumer11, Platform13, query_of

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

NOTEBOOK = "01-welcome.ipynb"
CONSUMER = Consumer11("e2e-edx", "e2e-edx-shared-secret")


def post_form(served: Served, path: str, form: str | dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST a form over HTTPS (Caddy's CA trusted), as a course page's auto-submitted form does; no redirect."""
    body = form if isinstance(form, str) else urllib.parse.urlencode(form)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://courses.example.org"}
    status, answer_headers, _, answer = served.request(path, headers, method="POST", body=body.encode(), timeout=30)
    return status, answer_headers, answer


def to_jupyter(served: Served, status: int, headers: dict[str, str], body: bytes) -> tuple[str, str]:
    """Follow a verified LTI launch (its 303) as the browser does, until the student's Jupyter answers.

    The launch URL, the progress page's polls, then the server's own origin, where a one-time ticket sets the
    access cookie. Returns the notebook URL the launch ended at and that cookie's value.
    """
    assert status == 303, f"the LTI launch answered {status}: {body[:400]!r}"
    location = headers["location"]
    assert location.startswith(f"/notebookLazyCopy/demo/{NOTEBOOK}/") and "admit=" in location, location
    status, answer_headers, cookies, page = served.request(location)
    assert status in (200, 302), (status, page[:400])
    assert not cookies, f"a launch set cookies on nbhosting's origin: {cookies}"
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
        ticket = state["url"]
    else:
        ticket = answer_headers["location"]
    status, answer_headers, cookies, answer = served.request(ticket)  # on the server's own origin
    assert status == 302, (status, answer[:300])
    cookie = next(c for c in cookies if c.startswith(f"{COOKIE_NAME}="))
    assert "SameSite=None" in cookie and "Partitioned" in cookie and "Secure" in cookie and "Domain" not in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    path = answer_headers["location"]
    key = re.fullmatch(rf"/{served.settings.url_prefix}/([0-9a-f]{{40}})/notebooks/{re.escape(NOTEBOOK)}", path)
    assert key, path
    status, _, _, answer = served.request(
        served.server_url(key.group(1), "api/status"), {"Cookie": f"{COOKIE_NAME}={value}"}
    )
    assert status == 200 and b"started" in answer, (status, answer[:300])  # Jupyter itself, through Caddy
    return served.server_origin(key.group(1)) + path, value


def add_platforms(served: Served, text: str) -> None:
    """Add platforms to the running installation's platforms file (every worker reads it again when it changes)."""
    path = served.settings.effective_platforms_file
    tmp = path.with_name(f".{path.name}.e2e")
    tmp.write_text(path.read_text() + text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    share_with_app(served.settings)  # what `nbh platforms` does after an admin's edit: the app's group reads it


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
    """As Open edX renders an inline LTI component: the unit (another site: the course pages' origin) holds an
    iframe whose page auto-submits the signed form to nbhosting, so the LTI POST arrives cross-site in a frame. The
    303, the ticket on the server's own origin, its cookie (SameSite=None; Secure; Partitioned) and the notebook
    must all work in that frame, which the platform's origin may hold (frame-ancestors)."""
    import html

    from tests.e2e.test_browser import css, describe_page, until

    consumer = Consumer11("e2e-inline", "e2e-inline-shared-secret")
    add_platforms(
        served,
        f'[[platform]]\nname = "e2e-inline"\norigins = ["{served.course.origin}"]\ncourses = ["demo"]\n'
        f'methods = ["lti11"]\n[platform.lti11]\nconsumer_key = "{consumer.key}"\n'
        f'shared_secret = "{consumer.secret}"\n',
    )
    form = consumer.form(user_id="e2e-inline-user", custom_course="demo", custom_notebook=NOTEBOOK)
    fields = urllib.parse.parse_qsl(consumer.sign(served.url("/lti/11/launch"), form), keep_blank_values=True)
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields)
    served.course.put(
        "/lti-launch.html",
        f'<!doctype html><form id="lti" method="post" action="{served.url("/lti/11/launch")}">'
        f'{inputs}</form><script>document.getElementById("lti").submit()</script>',
    )
    unit = served.course.put(
        "/lti-unit.html",
        '<!doctype html><title>Unit</title><h1>Week 1</h1><iframe id="nb" src="/lti-launch.html" '
        'width="1200" height="800"></iframe>',
    )
    try:
        browser.get(unit)
        browser.switch_to.frame(browser.find_element("id", "nb"))
        pattern = served.notebook_url_re(NOTEBOOK)

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
    assert len(server_of(served, "e2e-inline:e2e-inline-user")) == 1
