"""The account databases as nbhosting writes them: line formats, searches, appends, cursors, the lock, hints."""

import fcntl
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nbhosting_core.system.userdb import (
    DATABASES,
    PasswdHints,
    UserDb,
    days_since_epoch,
    invalidate_caches,
    parse_line,
    student_lines,
)

HOME = Path("/var/lib/nbhosting/students/nbh-0123")


@pytest.fixture
def db(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nnbh-ab:x:1000001:1000001::/h/ab:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nnbh-ab:x:1000001:\n")
    for name in ("shadow", "gshadow", "subuid", "subgid"):
        (etc / name).write_text("")
    return UserDb(etc)


def test_a_students_lines_are_those_of_a_locked_user_without_login_shell():
    lines = student_lines("nbh-0123", 1000007, 1000007, HOME, (2**31 + 7168, 1024), day=20000)
    assert set(lines) == set(DATABASES)
    assert lines["passwd"] == f"nbh-0123:x:1000007:1000007:nbhosting student:{HOME}:/usr/sbin/nologin"
    assert lines["group"] == "nbh-0123:x:1000007:"
    assert lines["shadow"] == "nbh-0123:!:20000:0:99999:7:::"  # '!': no password can ever match
    assert lines["gshadow"] == "nbh-0123:!::"
    assert lines["subuid"] == lines["subgid"] == f"nbh-0123:{2**31 + 7168}:1024"


@pytest.mark.parametrize("user, home", [("nbh:x", HOME), ("nbh-x", Path("/a:b")), ("nbh-x", Path("/a\nroot:x:0:0"))])
def test_a_name_or_home_that_would_break_the_line_is_refused(user, home):
    with pytest.raises(ValueError):
        student_lines(user, 1, 1, home, (1, 1), day=0)


def test_shadow_dates_count_whole_days_since_the_epoch():
    assert days_since_epoch(0) == 0 and days_since_epoch(86399.9) == 0 and days_since_epoch(86400 * 20000 + 5) == 20000


def test_a_line_parses_into_its_fields_and_numbers():
    entry = parse_line(b"nbh-ab:x:1000001:1000002::/h:/bin/sh", 42)
    assert (entry.offset, entry.name, entry.number(), entry.number(3), entry.number(4)) == (
        42,
        "nbh-ab",
        1000001,
        1000002,
        None,
    )


def test_find_gives_the_first_line_of_that_exact_name(db):
    db.append("passwd", "nbh-a:x:1000002:1000002::/h/a:/bin/sh")
    found = db.find("passwd", "nbh-a")
    assert found is not None and found.number() == 1000002  # not nbh-ab, which starts the same
    assert db.find("passwd", "root").offset == 0
    assert db.find("passwd", "nbh") is None and db.find("shadow", "root") is None


def test_find_reads_a_last_line_without_its_newline(db):
    with open(db.path("group"), "a") as f:
        f.write("nbh-cd:x:1000003:")
    assert db.find("group", "nbh-cd").number() == 1000003


def test_a_line_is_read_at_an_offset_only_if_it_is_that_users_whole_line(db):
    offset = db.find("passwd", "nbh-ab").offset
    assert db.entry_at("passwd", offset, "nbh-ab").number() == 1000001
    assert db.entry_at("passwd", offset, "nbh-a") is None  # a longer name
    assert db.entry_at("passwd", offset + 1, "bh-ab") is None  # not the start of a line
    assert db.entry_at("passwd", 0, "nbh-ab") is None
    assert db.entry_at("passwd", 10**6, "nbh-ab") is None  # past the end


def test_append_adds_a_line_in_place_keeping_inode_mode_and_owner(db):
    path = db.path("shadow")
    os.chmod(path, 0o640)
    before = os.stat(path)
    assert db.append("shadow", "nbh-ab:!:20000:0:99999:7:::") == 0
    assert db.append("shadow", "nbh-cd:!:20000:0:99999:7:::") == len("nbh-ab:!:20000:0:99999:7:::\n")
    after = os.stat(path)
    assert (after.st_ino, after.st_mode, after.st_uid, after.st_gid) == (
        before.st_ino,
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )
    assert path.read_text().splitlines() == ["nbh-ab:!:20000:0:99999:7:::", "nbh-cd:!:20000:0:99999:7:::"]


def test_a_torn_last_line_is_left_alone_on_its_line(db):
    with open(db.path("passwd"), "a") as f:
        f.write("nbh-torn:x:10000")  # a power loss in the middle of a write
    offset = db.append("passwd", "nbh-ef:x:1000004:1000004::/h/ef:/bin/sh")
    assert db.path("passwd").read_text().splitlines()[-2:] == [
        "nbh-torn:x:10000",
        "nbh-ef:x:1000004:1000004::/h/ef:/bin/sh",
    ]
    assert db.entry_at("passwd", offset, "nbh-ef") is not None


def test_after_a_cursor_only_what_was_appended_is_read(db):
    cursor = db.cursor("group")
    db.append("group", "nbh-gh:x:1000005:")
    data, start, now = db.since("group", cursor)
    assert (data, start) == (b"nbh-gh:x:1000005:\n", cursor.size)
    assert db.since("group", now)[0] == b""


def replaced_by_a_new_file(path: Path) -> None:  # useradd, userdel, vipw
    path.with_name("new").write_text(path.read_text() + "x:x:9:\n")
    os.replace(path.with_name("new"), path)


def edited_in_place(path: Path) -> None:
    path.write_text(path.read_text().replace("nbh-ab", "nbh-zz") + "x:x:9:\n")


def shortened(path: Path) -> None:
    path.write_text("root:x:0:\n")


@pytest.mark.parametrize("rewrite", [replaced_by_a_new_file, edited_in_place, shortened])
def test_a_database_rewritten_since_a_cursor_is_read_whole_again(db, rewrite):
    cursor = db.cursor("group")
    rewrite(db.path("group"))
    data, start, _ = db.since("group", cursor)
    assert start == 0 and data == db.path("group").read_bytes()


def test_no_cursor_reads_everything(db):
    assert db.since("group", None)[:2] == (db.path("group").read_bytes(), 0)


def test_the_lock_is_the_one_lckpwdf_takes_and_excludes_other_processes(db):
    child = lock_probe(db.etc / ".pwd.lock")
    with db.locked():
        held = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    free = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    # lckpwdf(3) takes a classic fcntl write lock on the whole file: it conflicts with ours
    assert (held.stdout.strip(), free.stdout.strip()) == ("busy", "free")


def lock_probe(path: Path) -> str:
    flock = struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0)
    return (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(path)!r}, os.O_WRONLY)\n"
        f"try:\n    fcntl.fcntl(fd, fcntl.F_SETLK, {flock!r})\n"
        "except OSError:\n    print('busy')\nelse:\n    print('free')\n"
    )


def test_the_lock_excludes_another_thread_and_gives_up_after_its_timeout(db):
    with db.locked():
        failures = []

        def other():
            try:
                with db.locked(timeout=0.2):
                    pass
            except TimeoutError as exc:
                failures.append(exc)

        thread = threading.Thread(target=other)
        started = time.monotonic()
        thread.start()
        thread.join()
    assert len(failures) == 1 and time.monotonic() - started >= 0.2
    with db.locked(timeout=0.2):
        pass  # free again once released


def test_hints_remember_an_offset_per_uid_of_the_range(tmp_path):
    hints = PasswdHints(tmp_path / "run" / "offsets", 1000, 1999)
    assert hints.get(1500) is None
    hints.put(1500, 0)
    hints.put(1999, 123456)
    hints.put(5, 77)  # outside the range: not kept
    assert (hints.get(1500), hints.get(1999), hints.get(1501), hints.get(5)) == (0, 123456, None, None)
    assert os.stat(hints.path).st_mode & 0o777 == 0o600


class Recorder:
    def __init__(self):
        self.argv = []

    def run(self, argv, *, env=None, timeout=60):
        self.argv.append(list(argv))
        return ""


def test_nscd_is_told_to_drop_passwd_and_group_only_when_it_runs(tmp_path, monkeypatch):
    runner = Recorder()
    assert invalidate_caches(runner, socket=tmp_path / "no-socket") is False and runner.argv == []
    socket = tmp_path / "socket"
    socket.touch()
    monkeypatch.setenv("PATH", str(fake_nscd(tmp_path)))
    assert invalidate_caches(runner, socket=socket) is True
    assert [argv[1:] for argv in runner.argv] == [["-i", "passwd"], ["-i", "group"]]


def fake_nscd(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nscd").write_text("#!/bin/sh\n")
    (bin_dir / "nscd").chmod(0o755)
    return bin_dir
