"""The student flow against real rootless podman and real Jupyter (root only). Each test has its own students."""

from __future__ import annotations

import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from nbhosting_core import Hub, Launch, LaunchState, Settings
from nbhosting_core.origins import server_origin
from nbhosting_core.system.unixhttp import get
from nbhosting_core.tokens import jupyter_token
from nbhosting_server.serve import settings_environment

pytestmark = pytest.mark.podman


@pytest.fixture(scope="module")
def hub(settings):
    return Hub(settings)


def student(tag: str) -> str:
    return f"int-{tag}-{uuid.uuid4().hex[:6]}"


def opened(hub: Hub, student_id: str, notebook: str = "01-welcome.ipynb") -> Launch:
    return hub.wait_ready(hub.open_notebook("demo", notebook, student_id), timeout=60)


def jupyter(hub: Hub, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A request to a student's Jupyter through root's verified socket link (what Caddy dials)."""
    status, _, body_bytes = jupyter_raw(hub, key, method, path, body)
    return status, (json.loads(body_bytes) if body_bytes.strip() else {})


def jupyter_raw(hub: Hub, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, str, bytes]:
    """The same, answered as (status, the response's head, its body)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(20)
    sock.connect(str(hub.settings.jupyter_sockets_dir / key / "jupyter.sock"))
    data = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} /{hub.settings.url_prefix}/{key}{path} HTTP/1.0\r\nHost: localhost\r\n"
        f"Authorization: token {jupyter_token(hub.secret, key)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    sock.sendall(head + data)
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    sock.close()
    status_line, _, rest = raw.partition(b"\r\n")
    head, _, body_bytes = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), head.decode(errors="replace"), body_bytes


def test_first_open_creates_account_copy_and_container_running_as_the_student(hub, settings):
    launch = opened(hub, student("first"))
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
    assert subprocess.run(["pgrep", "-U", str(launch.uid), "-f", "jupyter"], capture_output=True).returncode == 0
    assert (
        subprocess.run(["pgrep", "-U", "0", "-f", f"base_url=/nb/{launch.key}/"], capture_output=True).returncode == 1
    )


def test_podman_keeps_its_state_outside_the_students_home_behind_a_socket_root_owns(hub, settings):
    launch = opened(hub, student("storage"))
    home = settings.students_dir / launch.user
    assert not (home / ".local").exists() and not (home / ".config").exists()
    assert (settings.podman_dir / launch.user / "data" / "containers").is_dir()
    api = settings.run_dir / "podman" / f"{launch.user}.sock"
    assert stat.S_ISSOCK(api.lstat().st_mode) and api.lstat().st_uid == 0
    assert api.parent.stat().st_uid == 0 and api.parent.stat().st_mode & 0o077 == 0


def test_files_written_through_jupyter_belong_to_the_student(hub, settings):
    launch = opened(hub, student("files"))
    status, _ = jupyter(
        hub,
        launch.key,
        "PUT",
        "/api/contents/made-in-jupyter.txt",
        {"type": "file", "format": "text", "content": "hello"},
    )
    assert status in (200, 201)
    made = settings.students_dir / launch.user / "demo" / "made-in-jupyter.txt"
    assert made.read_text() == "hello" and made.stat().st_uid == launch.uid


def test_jupyter_refuses_requests_without_its_token(hub):
    launch = opened(hub, student("token"))
    answer = get(hub.settings.jupyter_sockets_dir / launch.key / "jupyter.sock", f"/nb/{launch.key}/api/contents", {})
    assert answer is not None and answer.status == 403


def test_the_socket_folder_is_a_small_tmpfs_root_owns_with_the_students_folder_inside(hub, settings):
    launch = opened(hub, student("sockdir"))
    folder = settings.jupyter_sockets_dir / launch.key
    info = folder.stat()
    assert info.st_uid == 0 and info.st_mode & 0o777 == 0o711
    inner = folder / "run"
    assert inner.stat().st_uid == launch.uid and inner.stat().st_mode & 0o077 == 0
    link = folder / "jupyter.sock"
    assert stat.S_ISSOCK(link.lstat().st_mode) and link.lstat().st_ino == (inner / "jupyter.sock").lstat().st_ino
    df = subprocess.run(["df", "--output=fstype,size", str(folder)], capture_output=True, text=True).stdout
    assert "tmpfs" in df
    assert settings.jupyter_sockets_dir.stat().st_mode & 0o777 == 0o711


def test_a_symlink_planted_in_the_socket_folder_leads_nowhere(hub, settings):
    launch = opened(hub, student("symlink"))
    folder = settings.jupyter_sockets_dir / launch.key
    # the student (their uid) replaces Jupyter's socket with a link to a socket of root's
    target = settings.run_dir / "podman" / f"{launch.user}.sock"
    subprocess.run(
        ["runuser", "-u", launch.user, "--", "ln", "-sf", str(target), str(folder / "run" / "x")], check=True
    )
    subprocess.run(
        [
            "runuser",
            "-u",
            launch.user,
            "--",
            "mv",
            "-f",
            str(folder / "run" / "x"),
            str(folder / "run" / "jupyter.sock"),
        ],
        check=True,
    )
    (folder / "jupyter.sock").unlink()  # as if root had never linked it yet
    server = hub.backend.find(launch.key)
    assert server is not None
    assert not hub.backend.is_ready(server)  # root refused to link or dial the symlink
    assert not (folder / "jupyter.sock").exists()


def test_a_second_notebook_of_the_course_reuses_the_container(hub):
    sid = student("second")
    first = opened(hub, sid)
    second = opened(hub, sid, "more/03-files.ipynb")
    assert second.key == first.key and second.container == first.container
    assert not second.created and second.copied


def test_the_students_modified_notebook_survives_reopening(hub, settings):
    sid = student("modified")
    launch = opened(hub, sid, "02-loops.ipynb")
    status, model = jupyter(hub, launch.key, "GET", "/api/contents/02-loops.ipynb")
    assert status == 200
    model["content"]["cells"][0]["source"] = "my own notes"
    status, _ = jupyter(
        hub,
        launch.key,
        "PUT",
        "/api/contents/02-loops.ipynb",
        {"type": "notebook", "format": "json", "content": model["content"]},
    )
    assert status == 200
    hub.remove(launch.container)  # even a new container: the copy is the student's
    again = opened(hub, sid, "02-loops.ipynb")
    assert again.created and not again.copied and again.key != launch.key
    on_disk = json.loads((settings.students_dir / launch.user / "demo" / "02-loops.ipynb").read_text())
    assert "".join(on_disk["cells"][0]["source"]) == "my own notes"


def test_concurrent_opens_from_separate_processes_give_one_container(settings):
    sid = student("procs")
    env = {**os.environ, **settings_environment(settings)}
    argv = [sys.executable, "-m", "nbhosting_server.cli", "open", "demo", "01-welcome.ipynb", sid]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    launches = [json.loads(out) for out, _ in outputs]
    assert len({launch["key"] for launch in launches}) == 1
    assert sum(launch["created"] for launch in launches) == 1
    assert all(launch["state"] == "ready" for launch in launches)
    key = launches[0]["key"]
    assert launches[0]["url"] == f"{server_origin(settings, key)}/nb/{key}/notebooks/01-welcome.ipynb"


def test_a_second_student_cannot_reach_the_first_ones_socket_or_files(hub):
    alice = opened(hub, student("alice"))
    bob = opened(hub, student("bob"))
    assert bob.user != alice.user and bob.uid != alice.uid and bob.key != alice.key
    for path in (hub.settings.jupyter_sockets_dir / alice.key / "run", hub.settings.students_dir / alice.user):
        probe = subprocess.run(["runuser", "-u", bob.user, "--", "ls", str(path)], capture_output=True, text=True)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr


def test_a_restarted_server_finds_running_containers_even_without_its_records(hub, settings):
    sid = student("restart")
    before = opened(hub, sid)
    after = Hub(settings).open_notebook("demo", "01-welcome.ipynb", sid)  # a new process: nothing in memory
    assert after.key == before.key and not after.created and after.state is LaunchState.READY
    (settings.running_dir / f"{before.key}.json").unlink()  # run record lost: podman's labels tell
    report = Hub(settings).reconcile()
    assert before.container in report.adopted
    again = Hub(settings).open_notebook("demo", "01-welcome.ipynb", sid)
    assert again.key == before.key and not again.created
    # ready at once, or within moments: the readiness probe may meet a Jupyter busy starting the kernels the earlier
    # opens asked for (each hub above starts its own, in the background); it is the same server either way
    assert Hub(settings).wait_ready(again, timeout=30).state is LaunchState.READY


def test_with_egress_the_container_gets_its_own_user_mode_network(settings):
    hub = Hub(settings.model_copy(update={"egress": True}))
    launch = opened(hub, student("egress"))
    from nbhosting_core.system.userpodman import UserPodman

    account = hub.accounts.find(launch.student_id)
    info = UserPodman(settings, account).inspect(launch.container)
    assert info["HostConfig"]["NetworkMode"] == "slirp4netns"


def test_the_admin_cli_lists_shows_stops_and_removes_servers(settings):
    sid = student("cli")
    hub = Hub(settings)
    launch = opened(hub, sid)
    server = hub.backend.find(launch.key)
    assert server is not None
    deadline = time.monotonic() + 30  # the kernel the launch starts for its notebook, in the background
    while (activity := hub.backend.activity(server)) is None or activity.kernels != 1:
        assert time.monotonic() < deadline, f"no kernel started for the launch: {activity}"
        time.sleep(0.1)
    env = {**os.environ, **settings_environment(settings)}

    def nbh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nbhosting_server.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )

    listed = json.loads(nbh("ls", "--json").stdout)
    mine = next(v for v in listed if v["server"]["name"] == launch.container)
    assert mine["server"]["state"] == "running" and mine["server"]["student_id"] == sid
    shown = json.loads(nbh("show", launch.container, "--json").stdout)
    assert shown["usage"]["memory_bytes"] > 0 and shown["activity"]["kernels"] == 1
    table = nbh("ls").stdout
    assert launch.container in table and "running" in table
    line = next(x for x in nbh("cull", "--dry-run").stdout.splitlines() if launch.container in x)
    assert line.startswith("kept") and "active" in line  # just opened: not idle
    assert nbh("stop", launch.container).returncode == 0
    assert Hub(settings).server(launch.container).server.state.value == "stopped"
    assert nbh("rm", launch.container).returncode == 0
    missing = nbh("show", launch.container)
    assert missing.returncode == 1 and "no server named" in missing.stderr and "Traceback" not in missing.stderr
    again = opened(Hub(settings), sid)  # the student's files were kept: their copy is not made again
    assert again.created and not again.copied
    assert (settings.students_dir / launch.user / "demo" / "01-welcome.ipynb").exists()


def test_doctor_passes_on_a_host_set_up_by_setup_sh(settings):
    done = subprocess.run(
        [sys.executable, "-m", "nbhosting_server.cli", "doctor"],
        capture_output=True,
        text=True,
        env={**os.environ, **settings_environment(settings)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    podman" in done.stdout and "FAIL" not in done.stdout
    assert "enforced by root" in done.stdout


def test_settings_reach_the_server_processes_unchanged(settings, monkeypatch):
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)  # as the server processes read them
    assert Settings() == settings


def test_a_students_containers_are_listed_by_their_nbhosting_label(hub, settings):
    from nbhosting_core.containers import MARKER
    from nbhosting_core.system.userpodman import UserPodman

    launch = opened(hub, student("listed"))
    account = hub.accounts.find(launch.student_id)
    engine = UserPodman(settings, account)
    for label in (MARKER, f"{MARKER}={launch.key}"):
        assert [c["Names"] for c in engine.list(label)] == [[launch.container]]
    assert engine.list(f"{MARKER}={'0' * 40}") == []


def test_a_student_whose_servers_all_stopped_holds_no_process_and_no_subordinate_ids(hub, settings):
    from nbhosting_core.system.records import processes_of

    sid = student("idle")
    launch = opened(hub, sid)

    def subuid_lines() -> list[str]:
        return [x for x in Path("/etc/subuid").read_text().splitlines() if x.startswith(launch.user + ":")]

    assert processes_of({launch.uid}) and len(subuid_lines()) == 1
    hub.stop(launch.container)
    assert processes_of({launch.uid}) == []  # no podman service, no pause process, nothing
    assert subuid_lines() == [] and not (settings.users_run_dir / str(launch.uid)).exists()
    again = opened(hub, sid)  # everything comes back at the next click
    assert again.key == launch.key and again.state is LaunchState.READY and len(subuid_lines()) == 1


def csp_of(head: str) -> str:
    return next(
        line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith("content-security")
    )


def test_jupyter_keeps_its_own_policy_with_the_platforms_frame_ancestors_read_again_at_each_start(hub, settings):
    platforms = settings.effective_platforms_file
    platforms.write_text(
        '[[platform]]\nname = "lms"\norigins = ["https://lms.example.org"]\ncourses = ["demo"]\n'
        'methods = ["signed"]\nsecret = "0123456789abcdef0123456789abcdef"\n'
    )
    try:
        launch = opened(hub, student("csp"))
        status, head, _ = jupyter_raw(hub, launch.key, "GET", "/files/01-welcome.ipynb")
        assert status == 200
        assert csp_of(head) == (
            f"frame-ancestors 'self' https://localhost:8443 https://lms.example.org; "
            f"report-uri /nb/{launch.key}/api/security/csp-report; sandbox allow-scripts"
        )
        # a platform added later frames the student's server from its next start on (same server, same key)
        platforms.write_text(platforms.read_text().replace("https://lms.example.org", "https://new.example.org"))
        hub.stop(launch.container)
        again = opened(hub, launch.student_id)
        assert again.key == launch.key
        status, head, _ = jupyter_raw(hub, again.key, "GET", "/api/status")
        assert status == 200 and csp_of(head).startswith(
            "frame-ancestors 'self' https://localhost:8443 https://new.example.org;"
        )
        assert "default-src 'none'" in csp_of(head)  # what Jupyter adds on its API is kept too
    finally:
        platforms.unlink()
