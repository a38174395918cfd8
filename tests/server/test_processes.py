"""The processes `nbh serve` watches: dropped to a service user, started again, and never leaving orphans."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import pytest

from nbhosting_core.system.services import ServiceUser
from nbhosting_server.processes import Child, as_user, unreadable_by

NOBODY = ServiceUser("nobody", 65534, 65534)


def test_a_service_user_gets_no_capability_but_those_asked_for_and_no_new_privileges():
    plain = as_user(NOBODY, ["caddy", "run"])
    assert plain[:5] == ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs"]
    assert "--inh-caps=-all" in plain and "--bounding-set=-all" in plain
    assert not any(a.startswith("--ambient-caps") for a in plain) and plain[-3:] == ["--", "caddy", "run"]
    bind = as_user(NOBODY, ["caddy"], caps=("net_bind_service",))
    assert "--ambient-caps=-all,+net_bind_service" in bind and "--bounding-set=-all,+net_bind_service" in bind


#: what the child reports: its credentials, capabilities, and which of the ports it was given it bound (or why not)
REPORT = """
import errno, json, socket, sys
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
fields = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")
report = {"status": {k: status[k].strip() for k in fields}, "bound": None, "errors": []}
for port in map(int, sys.argv[1:]):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            report["errors"].append(errno.errorcode[exc.errno])
            continue
        report["bound"] = port
        break
print(json.dumps(report))
"""
NET_BIND_SERVICE = 1 << 10  # CAP_NET_BIND_SERVICE


def run_as_nobody(ports: list[int], caps: tuple[str, ...]) -> dict[str, Any]:
    argv = as_user(NOBODY, [sys.executable, "-c", REPORT, *map(str, ports)], caps=caps)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    return cast(dict[str, Any], json.loads(done.stdout))


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a process as another user")
def test_net_bind_service_alone_lets_a_service_user_bind_a_port_below_1024_and_without_it_it_cannot():
    """What `nbh serve` gives Caddy when a port is below 1024, run for real: the process binds a low port, and holds
    CAP_NET_BIND_SERVICE and nothing else (not even in its bounding set); without it, the bind is refused."""
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    low = list(range(81, min(start, 1024)))
    if not low:
        pytest.skip(f"every port is unprivileged here (ip_unprivileged_port_start={start})")
    allowed = run_as_nobody(low, ("net_bind_service",))
    status = allowed["status"]
    assert allowed["bound"] is not None, allowed  # a free port below 1024 was bound
    assert set(allowed["errors"]) <= {"EADDRINUSE"}, allowed  # the ports before it were taken, never refused
    assert status["Uid"].split() == ["65534"] * 4 and status["Gid"].split() == ["65534"] * 4 and not status["Groups"]
    for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"):
        assert int(status[caps], 16) == NET_BIND_SERVICE, (caps, status)  # that one, and no other
    assert status["NoNewPrivs"] == "1"
    refused = run_as_nobody([allowed["bound"]], ())
    assert refused["bound"] is None and refused["errors"] == ["EACCES"], refused
    assert all(int(refused["status"][caps], 16) == 0 for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"))
    assert refused["status"]["NoNewPrivs"] == "1"


def test_a_folder_closed_to_the_user_is_named():
    root = Path(tempfile.mkdtemp(prefix="nbh-read-", dir="/tmp"))  # every folder above it lets others in
    try:
        os.chmod(root, 0o755)
        closed = root / "closed"
        closed.mkdir(mode=0o700)
        (closed / "code.py").write_text("")
        os.chmod(closed / "code.py", 0o600)
        assert unreadable_by(NOBODY, [closed / "code.py"]) == closed
        os.chmod(closed, 0o755)
        assert unreadable_by(NOBODY, [closed / "code.py"]) == closed / "code.py"  # the file itself: not readable
        os.chmod(closed / "code.py", 0o644)
        assert unreadable_by(NOBODY, [closed / "code.py"]) is None
    finally:
        shutil.rmtree(root)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_a_child_that_exits_is_started_again_without_what_it_left_behind(tmp_path):
    orphan_file = tmp_path / "orphan"
    script = f"sleep 300 & echo $! > {orphan_file}; exec sleep 300"
    child = Child("worker", ["sh", "-c", script], dict(os.environ))
    try:
        deadline = time.monotonic() + 10
        while not orphan_file.exists() or not orphan_file.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        orphan = int(orphan_file.read_text())
        first = child.process.pid
        os.kill(first, signal.SIGKILL)  # the leader dies; its background process would stay (uvicorn's workers)
        child.process.wait()
        orphan_file.unlink()
        assert child.watch()
        assert child.process.pid != first and child.process.poll() is None
        deadline = time.monotonic() + 5
        while alive(orphan):
            assert time.monotonic() < deadline, "the dead leader's group was not killed"
            time.sleep(0.05)
    finally:
        child.stop()
        child.wait()


def test_a_child_that_keeps_failing_at_once_is_given_up(tmp_path):
    child = Child("broken", ["sh", "-c", "exit 3"], dict(os.environ))
    try:
        verdicts = []
        for _ in range(3):
            child.process.wait()
            verdicts.append(child.watch())
        assert verdicts == [True, True, False]
    finally:
        child.wait()
