"""Origin mode ``path`` (for hosts without wildcard DNS): every server under the site's origin, same mitigations.

A student still runs a cell through Caddy; writes and websockets from any other origin are still refused at
forward-auth; Jupyter's own policy is still kept. What the mode leaves (one origin shared by every student's
server) is the README's to say.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nbhosting_core.system.secretfile import load_or_create_secret, secret_owners
from tests.e2e.conftest import Served
from tests.e2e.ui import open_notebook_ui, run_first_cell
from tests.support import jupyter_call

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

ORIGIN_MODE = "path"  # read by the `served` fixture
WELCOME = "01-welcome.ipynb"


def test_in_path_mode_a_student_runs_a_cell_on_the_sites_origin_with_a_cookie_for_their_servers_paths(
    served: Served, browser: Any
) -> None:
    key = open_notebook_ui(served, browser, served.launch_path(WELCOME, "e2e-path-alice"), WELCOME)
    assert browser.current_url.startswith(f"{served.base_url}/nb/{key}/notebooks/")
    run_first_cell(browser, "6*7", "42")
    [cookie] = [c for c in browser.get_cookies() if c["name"] == "nbh_access"]
    assert cookie["path"] == f"/nb/{key}/" and cookie["httpOnly"] and cookie["secure"]


def test_in_path_mode_writes_and_websockets_from_other_origins_are_refused_and_jupyters_policy_is_kept(
    served: Served,
) -> None:
    from websockets.exceptions import InvalidStatus

    key, cookie = served.sign_in(WELCOME, "e2e-path-bob")
    with_cookie = {"Cookie": f"nbh_access={cookie}"}
    secret = load_or_create_secret(served.settings.secret_file, owners=secret_owners(served.settings.app_user))
    status, body = jupyter_call(served.settings, secret, key, "POST", "api/kernels", {"name": "python3"})
    assert status == 201, body[:300]
    ws_url = served.base_url.replace("https:", "wss:") + f"/nb/{key}/api/kernels/{json.loads(body)['id']}/channels"
    content = json.dumps({"type": "file", "format": "text", "content": "x"}).encode()
    for origin in ("https://evil.example", served.course.origin):
        with pytest.raises(InvalidStatus) as refused:
            served.websocket(ws_url, {**with_cookie, "Origin": origin})
        assert refused.value.response.status_code == 403
        status, _, _, _ = served.request(
            served.server_url(key, "api/contents/x.txt"), {**with_cookie, "Origin": origin}, method="PUT", body=content
        )
        assert status == 403, origin
    with served.websocket(ws_url, {**with_cookie, "Origin": served.base_url}):
        pass  # from the site's origin (the server's, in this mode): opened
    own = {**with_cookie, "Origin": served.base_url}
    status, _, _, _ = served.request(served.server_url(key, "api/contents/x.txt"), own, method="PUT", body=content)
    assert status in (200, 201)

    status, headers, _, _ = served.request(served.server_url(key, f"files/{WELCOME}"), with_cookie)
    csp = headers["content-security-policy"]
    assert status == 200 and csp.startswith(f"frame-ancestors 'self' {served.base_url} {served.course.origin};")
    assert csp.endswith("; sandbox allow-scripts") and "service-worker-allowed" not in headers
