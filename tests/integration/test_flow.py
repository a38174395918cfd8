"""The student flow against real rootless podman and real Jupyter (root only)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nbhosting_core import Hub, LaunchState
from nbhosting_core.system.unixhttp import UnixHTTPConnection
from nbhosting_core.tokens import jupyter_token

pytestmark = pytest.mark.podman


@pytest.fixture(scope="module")
def hub(settings):
    return Hub(settings)


def jupyter(hub: Hub, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    conn = UnixHTTPConnection(hub.containers.socket_path(key), timeout=20)
    headers = {"Authorization": f"token {jupyter_token(hub.secret, key)}", "Content-Type": "application/json"}
    conn.request(method, f"/{hub.settings.url_prefix}/{key}{path}", body=json.dumps(body) if body else None,
                 headers=headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, (json.loads(raw) if raw else {})


def test_first_open_creates_account_copy_and_container_running_as_the_student(hub, settings):
    launch = hub.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    assert launch.state is LaunchState.READY and launch.created and launch.copied
    entry = pwd.getpwnam(launch.user)
    assert entry.pw_uid == launch.uid and settings.uid_min <= entry.pw_uid <= settings.uid_max
    assert entry.pw_shell == "/usr/sbin/nologin"
    assert Path(entry.pw_dir) == settings.students_dir / launch.user
    subuid = [line for line in Path("/etc/subuid").read_text().splitlines() if line.startswith(launch.user + ":")]
    assert len(subuid) == 1 and subuid[0].endswith(f":{settings.subid_count}")
    copy = settings.students_dir / launch.user / "demo" / "01-welcome.ipynb"
    assert copy.stat().st_uid == launch.uid
    assert copy.read_bytes() == (settings.courses_dir / "demo" / "01-welcome.ipynb").read_bytes()
    # Jupyter itself runs as the student's uid on the host, not root, not a subuid
    jupyter_pids = subprocess.run(["pgrep", "-U", str(launch.uid), "-f", "jupyter"], capture_output=True,
                                  text=True).stdout.split()
    assert jupyter_pids
    assert subprocess.run(["pgrep", "-U", "0", "-f", f"base_url=/nb/{launch.key}/"],
                          capture_output=True).returncode == 1


def test_files_written_through_jupyter_belong_to_the_student(hub, settings):
    launch = hub.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    status, _ = jupyter(hub, launch.key, "PUT", "/api/contents/made-in-jupyter.txt",
                        {"type": "file", "format": "text", "content": "hello"})
    assert status in (200, 201)
    made = settings.students_dir / launch.user / "demo" / "made-in-jupyter.txt"
    assert made.read_text() == "hello" and made.stat().st_uid == launch.uid


def test_jupyter_refuses_requests_without_its_token(hub):
    launch = hub.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    conn = UnixHTTPConnection(hub.containers.socket_path(launch.key), timeout=10)
    conn.request("GET", f"/nb/{launch.key}/api/contents")
    assert conn.getresponse().status == 403


def test_jupyter_socket_is_private_to_the_student(hub):
    launch = hub.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    sock_dir = hub.containers.socket_dir(launch.key)
    info = sock_dir.stat()
    assert info.st_uid == launch.uid and info.st_mode & 0o077 == 0
    assert hub.settings.jupyter_sockets_dir.stat().st_mode & 0o777 == 0o711


def test_a_second_notebook_of_the_course_reuses_the_container(hub):
    first = hub.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    second = hub.open_notebook("demo", "more/03-files.ipynb", "int-alice")
    assert second.key == first.key and second.container == first.container
    assert not second.created and second.copied


def test_the_students_modified_notebook_survives_reopening(hub, settings):
    launch = hub.open_notebook("demo", "02-loops.ipynb", "int-alice")
    status, model = jupyter(hub, launch.key, "GET", "/api/contents/02-loops.ipynb")
    assert status == 200
    model["content"]["cells"][0]["source"] = "my own notes"
    status, _ = jupyter(hub, launch.key, "PUT", "/api/contents/02-loops.ipynb",
                        {"type": "notebook", "format": "json", "content": model["content"]})
    assert status == 200
    again = hub.open_notebook("demo", "02-loops.ipynb", "int-alice")
    assert not again.copied
    on_disk = json.loads((settings.students_dir / launch.user / "demo" / "02-loops.ipynb").read_text())
    assert "".join(on_disk["cells"][0]["source"]) == "my own notes"


def test_five_concurrent_opens_give_one_container(hub):
    results, errors = [], []

    def open_it():
        try:
            results.append(hub.open_notebook("demo", "01-welcome.ipynb", "int-burst"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.key for r in results}) == 1 and sum(r.created for r in results) == 1
    account = hub.accounts.find("int-burst")
    assert [c.name for c in hub.containers.runtime.list(account)] == [results[0].container]


def test_concurrent_opens_from_separate_processes_give_one_container(hub, settings):
    from nbhosting_server.cli import settings_environment

    env = {**os.environ, **settings_environment(settings)}
    argv = [sys.executable, "-m", "nbhosting_server.cli", "open", "demo", "01-welcome.ipynb", "int-procs"]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    launches = [json.loads(out) for out, _ in outputs]
    assert len({launch["key"] for launch in launches}) == 1
    assert sum(launch["created"] for launch in launches) == 1
    assert launches[0]["url"].startswith(settings.public_url)


def test_a_second_student_gets_a_second_user_and_container(hub):
    alice = hub.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    bob = hub.open_notebook("demo", "01-welcome.ipynb", "int-bob")
    assert bob.user != alice.user and bob.uid != alice.uid
    assert bob.container != alice.container and bob.key != alice.key
    # bob's uid cannot reach alice's socket folder
    probe = subprocess.run(["runuser", "-u", bob.user, "--", "ls", str(hub.containers.socket_dir(alice.key))],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
    probe = subprocess.run(["runuser", "-u", bob.user, "--", "ls", str(hub.settings.students_dir / alice.user)],
                           capture_output=True, text=True)
    assert probe.returncode != 0


def test_a_restarted_server_finds_and_reuses_running_containers(hub, settings):
    before = hub.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    fresh = Hub(settings)  # a new process: no memory of what ran
    after = fresh.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    assert after.key == before.key and not after.created and after.state is LaunchState.READY
    # with RUN_DIR/keys lost too, the key is read back from the container's podman labels
    shutil.rmtree(settings.run_dir / "keys")
    relabelled = Hub(settings).open_notebook("demo", "01-welcome.ipynb", "int-alice")
    assert relabelled.key == before.key and not relabelled.created


def test_a_stopped_container_is_started_again_with_the_students_files(hub, settings):
    launch = hub.open_notebook("demo", "01-welcome.ipynb", "int-alice")
    account = hub.accounts.find("int-alice")
    hub.containers.runtime.stop(account, launch.container, timeout=2)
    again = Hub(settings).open_notebook("demo", "01-welcome.ipynb", "int-alice")
    assert again.key == launch.key and again.state is LaunchState.READY and not again.created
    assert (settings.students_dir / launch.user / "demo" / "made-in-jupyter.txt").exists()


def test_a_removed_container_is_recreated_and_the_work_is_still_there(hub, settings):
    launch = hub.open_notebook("demo", "02-loops.ipynb", "int-alice")
    account = hub.accounts.find("int-alice")
    record = hub.containers.runtime.get(account, launch.container)
    hub.containers.remove(account, record)
    again = Hub(settings).open_notebook("demo", "02-loops.ipynb", "int-alice")
    assert again.created and again.key != launch.key
    on_disk = json.loads((settings.students_dir / launch.user / "demo" / "02-loops.ipynb").read_text())
    assert "".join(on_disk["cells"][0]["source"]) == "my own notes"


def test_reopening_an_account_never_duplicates_or_changes_it(hub):
    first = hub.accounts.ensure("int-alice")
    assert hub.accounts.ensure("int-alice") == first
    assert sum(1 for e in pwd.getpwall() if e.pw_name == first.user) == 1
    lines = [line for line in Path("/etc/subuid").read_text().splitlines() if line.startswith(first.user + ":")]
    assert len(lines) == 1


def test_with_egress_the_container_gets_its_own_user_mode_network(settings):
    hub = Hub(settings.model_copy(update={"egress": True}))
    launch = hub.open_notebook("demo", "01-welcome.ipynb", "int-egress")
    assert launch.state is LaunchState.READY
    account = hub.accounts.find("int-egress")
    with hub.containers.runtime.session(account) as user_podman:
        info = user_podman.call(lambda c: c.api.get(f"/containers/{launch.container}/json").json())
    assert info["HostConfig"]["NetworkMode"] == "slirp4netns"


def test_doctor_passes_on_a_host_set_up_by_setup_sh(settings):
    from nbhosting_server.cli import settings_environment

    done = subprocess.run([sys.executable, "-m", "nbhosting_server.cli", "doctor"], capture_output=True, text=True,
                          env={**os.environ, **settings_environment(settings)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    podman" in done.stdout and "FAIL" not in done.stdout


def test_a_crashed_jupyter_is_brought_back_at_the_next_open(hub, settings):
    launch = hub.open_notebook("demo", "01-welcome.ipynb", "int-crash")
    subprocess.run(["pkill", "-KILL", "-U", str(launch.uid), "-f", "jupyter-server"], check=True)
    account = hub.accounts.find("int-crash")
    deadline = time.monotonic() + 20
    while hub.containers.runtime.get(account, launch.container).status.value == "running":
        assert time.monotonic() < deadline, "the container did not stop after its Jupyter was killed"
        time.sleep(0.2)
    again = hub.open_notebook("demo", "01-welcome.ipynb", "int-crash")
    assert again.state is LaunchState.READY and again.key == launch.key and not again.created
