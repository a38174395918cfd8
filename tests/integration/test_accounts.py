"""Students' accounts in the host's real account databases (root only): the flow, repair, concurrency, userdel.

Each test has its own students (test prefix and uid range); the installation's clean-up deletes them with userdel.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from nbhosting_core import Hub, LaunchState, SubprocessRunner
from nbhosting_core.accounts import Accounts
from nbhosting_core.naming import subid_range, user_name
from nbhosting_core.system.userdb import DATABASES

pytestmark = pytest.mark.podman
ROOT = Path(__file__).resolve().parents[2]


def student(tag: str) -> str:
    return f"acct-{tag}-{uuid.uuid4().hex[:6]}"


def lines_of(user: str) -> dict[str, list[str]]:
    return {
        db: [line for line in Path("/etc", db).read_text().splitlines() if line.startswith(f"{user}:")]
        for db in DATABASES
    }


def test_an_account_made_here_carries_the_whole_flow(settings):
    hub = Hub(settings)
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", student("flow")), timeout=60)
    assert launch.state is LaunchState.READY
    lines = lines_of(launch.user)
    assert all(len(found) == 1 for found in lines.values()), lines
    entry = pwd.getpwnam(launch.user)  # glibc reads what nbhosting wrote
    assert (entry.pw_uid, entry.pw_gid, entry.pw_shell) == (launch.uid, launch.uid, "/usr/sbin/nologin")
    assert settings.uid_min <= launch.uid <= settings.uid_max
    assert os.stat("/etc/shadow").st_mode & 0o777 == 0o640
    # Jupyter runs as the student, inside and out; the container's other ids are the student's subordinate ids
    pid = subprocess.run(["pgrep", "-n", "-U", str(launch.uid), "-f", "jupyter"], capture_output=True, text=True)
    first, count = subid_range(
        launch.uid, uid_min=settings.uid_min, subid_base=settings.subid_base, subid_count=settings.subid_count
    )
    for ids in ("uid_map", "gid_map"):  # as the host sees them: (inside, outside, count)
        mapped = Path(f"/proc/{pid.stdout.strip()}/{ids}").read_text().splitlines()
        assert sorted(tuple(map(int, m.split())) for m in mapped) == [(0, first, count), (launch.uid, launch.uid, 1)]


def test_a_half_made_account_is_completed_once_and_then_runs(settings):
    accounts = Accounts(settings, SubprocessRunner())
    made = accounts.ensure(student_id := student("repair"))
    first, count = subid_range(
        made.uid, uid_min=settings.uid_min, subid_base=settings.subid_base, subid_count=settings.subid_count
    )
    span = f"{first}-{first + count - 1}"
    # what a cut creation leaves: the passwd line without its subordinate ids, and no home yet
    subprocess.run(["usermod", "--del-subuids", span, "--del-subgids", span, made.user], check=True)
    os.rmdir(made.home)
    assert lines_of(made.user)["subuid"] == [] and accounts.find(student_id) is None
    again = Accounts(settings, SubprocessRunner()).ensure(student_id)
    assert again == made
    repaired = lines_of(made.user)
    assert all(len(found) == 1 for found in repaired.values())
    assert Accounts(settings, SubprocessRunner()).ensure(student_id) == made and lines_of(made.user) == repaired
    hub = Hub(settings)
    assert hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", student_id), timeout=60).uid == made.uid


CREATE = """
import json, os, sys, time
from nbhosting_core import Settings, SubprocessRunner
from nbhosting_core.accounts import Accounts
settings = Settings.model_validate_json(os.environ["NBH_TEST_SETTINGS"])
while time.time() < float(sys.argv[1]):
    time.sleep(0.001)
print(json.dumps([Accounts(settings, SubprocessRunner()).ensure(s).uid for s in sys.argv[2:]]))
"""


def test_processes_creating_students_at_once_get_distinct_uids_and_one_line_each(settings):
    students = [[student(f"p{p}s{i}") for i in range(3)] for p in range(5)]
    start = f"{time.time() + 2:.3f}"  # every process starts creating at the same instant
    env = {**os.environ, "NBH_TEST_SETTINGS": settings.model_dump_json(), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CREATE, start, *mine], env=env, stdout=subprocess.PIPE, text=True)
        for mine in students
    ]
    uids = [uid for proc in procs for uid in json.loads(proc.communicate(timeout=120)[0])]
    assert all(proc.returncode == 0 for proc in procs)
    assert len(uids) == len(set(uids)) == 15
    for mine in students:
        for s in mine:
            assert all(len(found) == 1 for found in lines_of(user_name(s, settings.user_prefix)).values()), s


def test_userdel_removes_every_line_nbhosting_wrote(settings):
    made = Accounts(settings, SubprocessRunner()).ensure(student("userdel"))
    subprocess.run(["userdel", made.user], check=True, capture_output=True)
    assert lines_of(made.user) == {db: [] for db in DATABASES}
