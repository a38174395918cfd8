"""The processes `nbh serve` watches: dropped to a service user, started again, and never leaving orphans."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

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
