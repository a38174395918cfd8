"""Students' accounts against throwaway account databases: creation, idempotence, repair, concurrency.

Homes are handed to the students' uids, so these tests need root; the host's /etc is never touched.
"""

import os
import threading

import pytest

from nbhosting_core import AccountUnavailable, Settings, SubprocessRunner
from nbhosting_core.accounts import Accounts
from nbhosting_core.naming import user_name
from nbhosting_core.system.ledger import Ledger
from nbhosting_core.system.userdb import DATABASES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="homes are chowned to the students' uids")
UID_MIN = 3_100_000


@pytest.fixture
def settings(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    for name in ("shadow", "gshadow", "subuid", "subgid"):
        (etc / name).write_text("")
    os.chmod(etc / "shadow", 0o640)
    return Settings(
        data_root=tmp_path / "data",
        run_dir=tmp_path / "run",
        user_prefix="nbt-",
        uid_min=UID_MIN,
        uid_max=UID_MIN + 9,
        subid_base=4_102_400_000,
    )


def accounts(settings: Settings) -> Accounts:
    return Accounts(settings, SubprocessRunner(), etc=settings.data_root.parent / "etc")


def lines_of(settings: Settings, student: str) -> dict[str, list[str]]:
    user = user_name(student, settings.user_prefix)
    etc = settings.data_root.parent / "etc"
    return {
        db: [line for line in (etc / db).read_text().splitlines() if line.startswith(f"{user}:")] for db in DATABASES
    }


def drop_lines(settings: Settings, student: str, *databases: str) -> None:
    """What a crash (or an admin) leaves: some of a student's lines missing."""
    user = user_name(student, settings.user_prefix)
    for db in databases:
        path = settings.data_root.parent / "etc" / db
        path.write_text("".join(line for line in path.read_text().splitlines(True) if not line.startswith(f"{user}:")))


def test_a_new_student_gets_the_next_uid_one_line_per_database_and_a_home_of_their_own(settings):
    a = accounts(settings)
    first, second = a.ensure("alice"), a.ensure("bob")
    assert (first.uid, first.gid, second.uid, second.gid) == (UID_MIN, UID_MIN, UID_MIN + 1, UID_MIN + 1)
    lines = lines_of(settings, "alice")
    assert all(len(found) == 1 for found in lines.values()), lines
    assert lines["passwd"] == [f"{first.user}:x:{UID_MIN}:{UID_MIN}:nbhosting student:{first.home}:/usr/sbin/nologin"]
    assert lines["subuid"] == lines["subgid"] == [f"{first.user}:4102400000:1024"]
    assert lines_of(settings, "bob")["subuid"] == [f"{second.user}:4102401024:1024"]
    info = os.stat(first.home)
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (UID_MIN, UID_MIN, 0o700)
    assert a.find("alice") == first


def test_ensure_is_idempotent_across_instances_and_never_adds_a_line_twice(settings):
    made = accounts(settings).ensure("alice")
    before = lines_of(settings, "alice")
    assert accounts(settings).ensure("alice") == made
    assert lines_of(settings, "alice") == before


def test_a_student_never_seen_is_not_found_and_nothing_is_made_by_looking(settings):
    a = accounts(settings)
    assert a.find("nobody") is None
    assert not settings.students_dir.exists() and lines_of(settings, "nobody")["passwd"] == []


@pytest.mark.parametrize(
    "missing",
    [
        ("subuid", "subgid"),
        ("group", "shadow", "gshadow", "subuid", "subgid"),  # cut right after the passwd line
        ("shadow",),
    ],
)
def test_a_half_made_account_is_completed_with_its_uid_never_duplicated(settings, missing):
    made = accounts(settings).ensure("alice")
    drop_lines(settings, "alice", *missing)
    os.rmdir(made.home)  # the home is made last: a cut creation has none
    assert accounts(settings).find("alice") is None
    again = accounts(settings).ensure("alice")
    assert again == made
    assert all(len(found) == 1 for found in lines_of(settings, "alice").values())


def test_a_creation_cut_before_its_first_line_gets_the_uid_it_was_going_to_have(settings):
    path = settings.data_root / "accounts.sqlite"
    with Ledger(path, prefix="nbt-", uid_min=UID_MIN, uid_max=settings.uid_max) as ledger:
        ledger.enter(user_name("alice", "nbt-"), UID_MIN)  # the cut: entered, no line written, nothing committed
    made = accounts(settings).ensure("alice")
    assert made.uid == UID_MIN
    assert all(len(found) == 1 for found in lines_of(settings, "alice").values())


def test_a_home_left_by_a_deleted_user_goes_back_to_the_student_with_a_new_uid(settings):
    a = accounts(settings)
    made = a.ensure("alice")
    (made.home / "work.ipynb").write_text("{}")
    os.chown(made.home / "work.ipynb", made.uid, made.gid)
    drop_lines(settings, "alice", *DATABASES)  # userdel, home kept
    assert a.find("alice") is None
    again = a.ensure("alice")
    assert again.uid == made.uid + 1  # a uid is never given twice
    assert os.stat(again.home / "work.ipynb").st_uid == again.uid


def test_a_uid_taken_by_another_program_meanwhile_is_skipped(settings):
    a = accounts(settings)
    a.ensure("alice")
    etc = settings.data_root.parent / "etc"
    with open(etc / "passwd", "a") as f:
        f.write(f"someone:x:{UID_MIN + 1}:100::/h:/bin/sh\n")
    with open(etc / "group", "a") as f:
        f.write(f"staff2:x:{UID_MIN + 2}:\n")
    assert a.ensure("bob").uid == UID_MIN + 3


def test_an_account_made_by_useradd_is_found_and_kept(settings):
    user = user_name("carol", settings.user_prefix)
    home = settings.students_dir / user
    etc = settings.data_root.parent / "etc"
    with open(etc / "passwd", "a") as f:
        f.write(f"{user}:x:{UID_MIN + 4}:{UID_MIN + 4}:nbhosting student:{home}:/usr/sbin/nologin\n")
    with open(etc / "group", "a") as f:
        f.write(f"{user}:x:{UID_MIN + 4}:\n")
    home.mkdir(parents=True)
    os.chown(home, UID_MIN + 4, UID_MIN + 4)
    a = accounts(settings)
    assert a.find("carol").uid == UID_MIN + 4
    assert a.ensure("dave").uid == UID_MIN + 5


def test_a_misleading_offset_hint_is_never_trusted(settings):
    a = accounts(settings)
    alice, bob = a.ensure("alice"), a.ensure("bob")
    hints = settings.run_dir / "accounts" / "passwd-offsets"
    data = bytearray(hints.read_bytes())
    data[0:8], data[8:16] = data[8:16], data[0:8]  # alice's slot points at bob's line, and back
    hints.write_bytes(bytes(data))
    assert (a.find("alice"), a.find("bob")) == (alice, bob)


def test_a_home_not_yet_given_to_the_student_is_not_a_complete_account(settings):
    a = accounts(settings)
    made = a.ensure("alice")
    os.chown(made.home, 0, 0)  # cut between making the home (as root) and handing it over
    assert a.find("alice") is None
    assert a.ensure("alice") == made and os.stat(made.home).st_uid == made.uid


def test_a_full_range_refuses_new_students_but_keeps_serving_the_others(settings):
    small = settings.model_copy(update={"uid_max": UID_MIN + 1})
    a = accounts(small)
    a.ensure("s1")
    a.ensure("s2")
    with pytest.raises(AccountUnavailable) as raised:
        a.ensure("s3")
    assert raised.value.reason == "account-unavailable"
    assert a.ensure("s1").uid == UID_MIN


def test_databases_keep_their_files_and_modes(settings):
    etc = settings.data_root.parent / "etc"
    before = {db: os.stat(etc / db) for db in DATABASES}
    accounts(settings).ensure("alice")
    for db, info in before.items():
        now = os.stat(etc / db)
        assert (now.st_ino, now.st_mode, now.st_uid, now.st_gid) == (
            info.st_ino,
            info.st_mode,
            info.st_uid,
            info.st_gid,
        ), db


def test_threads_creating_students_at_once_get_distinct_uids(settings):
    big = settings.model_copy(update={"uid_max": UID_MIN + 99})
    results: dict[str, int] = {}

    def make(i: int) -> None:
        results[f"s{i}"] = accounts(big).ensure(f"s{i}").uid

    threads = [threading.Thread(target=make, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == list(range(UID_MIN, UID_MIN + 12))
    passwd = (big.data_root.parent / "etc" / "passwd").read_text().splitlines()
    assert len(passwd) == len(set(passwd)) == 13
