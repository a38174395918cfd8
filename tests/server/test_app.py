"""The app in-process (TestClient): validation, error pages, and Caddy's forward-auth check."""

import nbformat
import pytest
from nbformat.v4 import new_notebook
from starlette.testclient import TestClient

from nbhosting_core import Hub, Settings
from nbhosting_core.access import COOKIE_NAME, access_cookie_value
from nbhosting_core.tokens import jupyter_token
from nbhosting_server import create_app

KEY = "d" * 40


class RefusingRunner:
    """Any host command is a test failure: bad requests must not create anything."""

    def run(self, argv, *, env=None, timeout=60):
        raise AssertionError(f"unexpected command {argv}")


class RefusingRuntime:
    def __getattr__(self, name):
        raise AssertionError(f"unexpected container call {name}")


@pytest.fixture
def setup(tmp_path):
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", image_rootfs=tmp_path / "rootfs")
    (settings.courses_dir / "demo").mkdir(parents=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "demo" / "a.ipynb"))
    hub = Hub(settings, runner=RefusingRunner(), runtime=RefusingRuntime(), clock=lambda: 1000.0)
    return settings, hub, TestClient(create_app(hub=hub), base_url="https://testserver")


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
    ],
)
def test_bad_launches_get_a_clear_page_and_create_nothing(setup, prefix, path, status, text):
    settings, _, client = setup
    response = client.get(f"/{prefix}/{path}")
    assert response.status_code == status
    assert "text/html" in response.headers["content-type"]
    assert text in response.text
    assert "Traceback" not in response.text
    assert not settings.students_dir.exists() or not any(settings.students_dir.iterdir())


def test_bad_launches_answer_json_to_the_progress_page(setup):
    _, _, client = setup
    response = client.get("/notebookLazyCopy/demo/a.txt/alice?wait=1", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["state"] == "failed" and "only .ipynb" in response.json()["message"]


def test_health_and_front_page(setup):
    _, _, client = setup
    assert client.get("/_nbh/health").json() == {"status": "ok"}
    assert "nbhosting" in client.get("/").text
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Not found" in missing.text


def auth(client, uri, cookie=None):
    headers = {"X-Forwarded-Uri": uri, "X-Forwarded-Method": "GET"}
    if cookie is not None:
        headers["Cookie"] = cookie
    return client.get("/_nbh/auth", headers=headers)


def test_forward_auth_lets_the_owner_through_with_the_jupyter_token(setup):
    settings, hub, client = setup
    socket = settings.jupyter_sockets_dir / KEY / "jupyter.sock"
    socket.parent.mkdir(parents=True)
    socket.touch()
    value = access_cookie_value(hub.secret, KEY, "nbh-x", now=1000, max_age=60)
    response = auth(client, f"/nb/{KEY}/api/kernels", f"other=1; {COOKIE_NAME}={value}")
    assert response.status_code == 200
    assert response.headers["authorization"] == f"token {jupyter_token(hub.secret, KEY)}"


def test_forward_auth_refuses_strangers_forgers_and_gone_servers(setup):
    settings, hub, client = setup
    value = access_cookie_value(hub.secret, KEY, "nbh-x", now=1000, max_age=60)
    assert auth(client, f"/nb/{KEY}/").status_code == 401
    forged = auth(client, f"/nb/{'e' * 40}/", f"{COOKIE_NAME}={value}")
    assert forged.status_code == 403 and "authorization" not in forged.headers
    assert "Not your notebook" in forged.text
    gone = auth(client, f"/nb/{KEY}/", f"{COOKIE_NAME}={value}")  # valid cookie, no server behind it
    assert gone.status_code == 410 and "ended" in gone.text
    assert auth(client, "/elsewhere/", f"{COOKIE_NAME}={value}").status_code == 404


def test_forward_auth_refuses_cross_site_writes_but_not_reads(setup):
    settings, hub, client = setup
    socket = settings.jupyter_sockets_dir / KEY / "jupyter.sock"
    socket.parent.mkdir(parents=True)
    socket.touch()
    cookie = f"{COOKIE_NAME}={access_cookie_value(hub.secret, KEY, 'nbh-x', now=1000, max_age=60)}"
    headers = {"X-Forwarded-Uri": f"/nb/{KEY}/api/contents/x.ipynb", "Cookie": cookie}
    forged = client.get("/_nbh/auth", headers={**headers, "X-Forwarded-Method": "PUT", "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403 and "authorization" not in forged.headers
    own = client.get("/_nbh/auth", headers={**headers, "X-Forwarded-Method": "PUT", "Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 200
    embedded_read = client.get("/_nbh/auth", headers={**headers, "X-Forwarded-Method": "GET",
                                                      "Sec-Fetch-Site": "cross-site"})
    assert embedded_read.status_code == 200


def test_unavailable_page_tells_the_student_what_to_do(setup):
    _, _, client = setup
    response = client.get("/_nbh/unavailable")
    assert response.status_code == 502 and "your work is kept" in response.text
