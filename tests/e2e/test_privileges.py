"""Least privilege, on the real stack (`nbh serve --demo`): who runs as whom, what each may reach, and what
survives when the internet-facing processes die.

=========  =========  ===================================================================================
helper     root       accounts, workspaces, containers (``nbh helper``)
app        app_user   no capability, no new privileges; reaches the host only through the helper's socket
Caddy      caddy_user no capability (ports above 1024 here); dials the students' Jupyter sockets, nothing else
=========  =========  ===================================================================================
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbhosting_core.access import COOKIE_NAME
from nbhosting_core.system.services import service_user
from tests.e2e.conftest import Served

STUDENT = "privsep-alice"


def processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry)] = (ppid, cmdline)
    return found


def descendants(root: int) -> dict[int, str]:
    """The processes below ``root``: pid -> command line."""
    table = processes()
    below: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmdline) in table.items():
            if ppid == parent and pid not in below:
                below[pid] = cmdline
                frontier.append(pid)
    return below


def status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def role_pids(served: Served) -> dict[str, list[int]]:
    """The pids of the helper, the app (uvicorn's parent and workers) and Caddy under `nbh serve`."""
    roles: dict[str, list[int]] = {"helper": [], "app": [], "caddy": []}
    for pid, cmdline in descendants(served.process.pid).items():
        if "nbhosting_server.cli helper" in cmdline:
            roles["helper"].append(pid)
        elif "uvicorn" in cmdline or "multiprocessing" in cmdline:
            roles["app"].append(pid)
        elif cmdline.split(" ", 1)[0].endswith("caddy"):
            roles["caddy"].append(pid)
    return roles


def as_user(user: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` run with the credentials the app's (or Caddy's) processes have."""
    found = service_user(user)
    assert found is not None
    setpriv = ["setpriv", f"--reuid={found.uid}", f"--regid={found.gid}", "--clear-groups", "--no-new-privs"]
    return subprocess.run([*setpriv, "--", *argv], capture_output=True, text=True, timeout=30, cwd="/")


def test_the_app_and_caddy_run_as_their_own_users_without_any_capability(served: Served) -> None:
    roles = role_pids(served)
    assert len(roles["helper"]) == 1 and len(roles["caddy"]) == 1, roles
    assert len(roles["app"]) >= 3, roles  # uvicorn's parent and its 2 workers
    app, caddy = service_user(served.settings.app_user), service_user(served.settings.caddy_user)
    assert app is not None and caddy is not None and 0 not in (app.uid, caddy.uid, app.gid, caddy.gid)
    for role, user in (("app", app), ("caddy", caddy)):
        for pid in roles[role]:
            s = status(pid)
            assert s["Uid"].split() == [str(user.uid)] * 4, (role, pid, s["Uid"])
            assert s["Gid"].split() == [str(user.gid)] * 4, (role, pid, s["Gid"])
            assert s["Groups"] == "", (role, pid, s["Groups"])  # no supplementary group: not root's, not a student's
            for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert int(s[caps], 16) == 0, (role, pid, caps, s[caps])
            assert s["NoNewPrivs"] == "1", (role, pid)
    [helper] = roles["helper"]
    assert status(helper)["Uid"].split()[0] == "0"  # the helper alone is privileged, and faces no network


def test_the_app_cannot_touch_students_files_accounts_or_podman_and_caddy_cannot_ask_the_helper(
    served: Served,
) -> None:
    key, _ = served.sign_in("01-welcome.ipynb", STUDENT)
    s = served.settings
    notebook = next(s.students_dir.rglob("01-welcome.ipynb"))  # a student's copy (read here as root)
    workspace = notebook.parent
    for user in (s.app_user, s.caddy_user):
        assert as_user(user, ["cat", str(notebook)]).returncode != 0, f"{user} read a student's notebook"
        assert as_user(user, ["ls", str(workspace)]).returncode != 0, f"{user} listed a student's workspace"
        assert as_user(user, ["sh", "-c", "echo x >> /etc/passwd"]).returncode != 0
        assert as_user(user, ["useradd", "--system", "nbh-evil"]).returncode != 0
        sockets = list((s.run_dir / "podman").glob("*.sock"))  # each student's podman API (root binds them)
        assert sockets, "no student's podman socket to try"
        for podman_socket in sockets:
            assert not dial(user, podman_socket), f"{user} reached {podman_socket}"
    assert dial(s.app_user, s.helper_socket), "the app cannot reach the helper"
    assert not dial(s.caddy_user, s.helper_socket), "Caddy reached the helper"
    link = s.jupyter_sockets_dir / key / "jupyter.sock"
    assert dial(s.caddy_user, link), "Caddy cannot reach the student's Jupyter"
    assert not dial(s.app_user, link), "the app reached a student's Jupyter"
    inner = s.jupyter_sockets_dir / key / "run" / "jupyter.sock"
    assert not dial(s.caddy_user, inner), "Caddy dialed the student's own folder"


def test_caddy_reads_none_of_the_apps_secrets_and_the_app_none_of_the_helpers_state(served: Served) -> None:
    served.sign_in("01-welcome.ipynb", STUDENT)  # a server, so a record of it
    s = served.settings
    apps = {
        "the signing secret": s.secret_file,
        "the platforms file": s.effective_platforms_file,
        "the database folder": s.db_dir,
        "the servers' records": s.servers_dir,
        "the running servers' records": s.running_dir,
        "the LTI keys folder": s.lti_dir,
    }
    for what, path in apps.items():
        assert path.exists(), f"{what} ({path}) is missing: nothing to try"
        for target in [path, *inside(path)]:
            assert not reads(s.caddy_user, target), f"Caddy read {what}: {target}"
    # the app needs its secret and its database: it reads both, with the same credentials
    assert reads(s.app_user, s.secret_file) and reads(s.app_user, s.db_dir)
    databases = [p for p in inside(s.db_dir) if p.is_file()]
    assert databases, f"no database in {s.db_dir}"
    assert all(reads(s.app_user, p) for p in databases), databases
    helpers = {
        "the locks": s.locks_dir,
        "the door's counters": s.throttle_dir,
        "the students' podman sockets": s.run_dir / "podman",
        "the students' podman storage": s.podman_dir,
        "the servers' logs": s.run_dir / "logs",
        "the students' homes": s.students_dir,
    }
    for what, path in helpers.items():
        assert path.exists(), f"{what} ({path}) is missing: nothing to try"
        for target in [path, *inside(path)]:
            if target.is_dir() and target.stat().st_mode & 0o7 == 0o1:  # traversed by all (0711): never listed
                assert not lists(s.app_user, target), f"the app listed {what}: {target}"
            elif target.is_file() or target.is_dir():
                assert not reads(s.app_user, target), f"the app read {what}: {target}"


def inside(folder: Path, at_most: int = 40) -> list[Path]:
    """Up to ``at_most`` files and folders under ``folder`` (as root sees them, links and sockets left out)."""
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        named = [Path(dirpath) / name for name in dirnames + filenames]
        found += [p for p in named if not p.is_symlink() and (p.is_dir() or p.is_file())]
        if len(found) >= at_most:
            break
    return found[:at_most]


def reads(user: str, path: Path) -> bool:
    """True if ``user`` can read the file ``path`` (its first byte), or list the folder ``path``."""
    if path.is_dir():
        return lists(user, path)
    return as_user(user, ["dd", f"if={path}", "of=/dev/null", "bs=1", "count=1", "status=none"]).returncode == 0


def lists(user: str, folder: Path) -> bool:
    """True if ``user`` can list ``folder``."""
    return as_user(user, ["ls", "-a", str(folder)]).returncode == 0


def dial(user: str, path: Path) -> bool:
    """True if ``user`` can connect to the Unix socket ``path``."""
    script = "import socket,sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
    return as_user(user, [sys.executable, "-c", script, str(path)]).returncode == 0


@pytest.mark.parametrize("role", ["app", "caddy"])
def test_killing_the_app_or_caddy_leaves_the_helper_and_every_server_running(served: Served, role: str) -> None:
    key, cookie = served.sign_in("01-welcome.ipynb", STUDENT)
    url = served.server_url(key, "api/status")
    assert served.request(url, {"Cookie": f"{COOKIE_NAME}={cookie}"})[0] == 200
    before = role_pids(served)
    victim = min(before[role])  # uvicorn's parent, or Caddy
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        now = role_pids(served)
        up = victim not in now[role] and len(now[role]) >= len(before[role])
        if up:
            try:
                if served.request(url, {"Cookie": f"{COOKIE_NAME}={cookie}"}, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
        assert time.monotonic() < deadline, f"{role} not back after 60 s: {now}\n{served.log_tail()}"
        time.sleep(0.3)
    assert now["helper"] == before["helper"], "the helper was restarted"
    # the same server (same key, same cookie) answered: it ran all along, and a launch reuses it
    again = served.launch_json("01-welcome.ipynb", STUDENT)
    assert again["state"] == "ready" and key in again["notebook_url"]


def test_a_killed_helper_stops_no_server_and_is_started_again(served: Served) -> None:
    key, cookie = served.sign_in("01-welcome.ipynb", STUDENT)
    url = served.server_url(key, "api/status")
    [helper] = role_pids(served)["helper"]
    os.kill(helper, signal.SIGKILL)
    # while no helper runs: the student's server answers (access is the app's, from the records)
    assert served.request(url, {"Cookie": f"{COOKIE_NAME}={cookie}"})[0] == 200
    deadline = time.monotonic() + 60
    while True:
        now = role_pids(served)["helper"]
        if now and now != [helper]:
            try:
                again = served.launch_json("01-welcome.ipynb", STUDENT, timeout=10)
                break
            except (AssertionError, OSError):
                pass
        assert time.monotonic() < deadline, f"no helper again after 60 s\n{served.log_tail()}"
        time.sleep(0.3)
    assert again["state"] == "ready" and key in again["notebook_url"]  # the same server, found again
