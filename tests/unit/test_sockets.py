"""Jupyter's configuration in a socket folder: written by root, through descriptors, never over what is there."""

import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from nbhosting_core.system.runner import SubprocessRunner
from nbhosting_core.system.sockets import INNER, SocketDirs

KEY = "a" * 40


@pytest.fixture
def sockets(tmp_path):
    dirs = SocketDirs(tmp_path / "jupyter", SubprocessRunner(), size=256 * 1024)
    dirs.inner(KEY).mkdir(parents=True)  # what prepare() makes (on a tmpfs, as root)
    return dirs


def test_the_configuration_is_written_readable_by_the_student_and_writable_by_root_only(sockets):
    sockets.write_config(KEY, "jupyter_server_config.json", json.dumps({"ServerApp": {}}).encode())
    folder = sockets.inner(KEY) / "config"
    path = folder / "jupyter_server_config.json"
    assert json.loads(path.read_bytes()) == {"ServerApp": {}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert path.stat().st_uid == os.geteuid()


def test_nothing_planted_in_the_folder_is_followed_or_written_through(sockets, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (sockets.inner(KEY) / "config").symlink_to(target)
    with pytest.raises(OSError):  # ELOOP: the link is not followed
        sockets.write_config(KEY, "jupyter_server_config.json", b"{}")
    assert list(target.iterdir()) == []


def test_a_configuration_folder_someone_else_made_is_refused(sockets):
    planted = sockets.inner(KEY) / "config"
    planted.mkdir()
    os.chown(planted, os.geteuid() + 12345, -1)  # the student's, say
    with pytest.raises(PermissionError, match="not root's"):
        sockets.write_config(KEY, "jupyter_server_config.json", b"{}")
    assert list(planted.iterdir()) == []


def test_several_files_share_the_configuration_folder(sockets):
    sockets.write_config(KEY, "jupyter_server_config.json", b"{}")
    sockets.write_config(KEY, "notary-secret", b"0" * 64)
    assert sorted(p.name for p in (sockets.inner(KEY) / "config").iterdir()) == [
        "jupyter_server_config.json",
        "notary-secret",
    ]


def test_a_file_name_is_a_name(sockets):
    with pytest.raises(ValueError, match="not a file name"):
        sockets.write_config(KEY, "../x.json", b"{}")


@pytest.fixture
def short():
    """A folder with a short path: a socket's path has at most 108 bytes."""
    root = Path(tempfile.mkdtemp(prefix="nbh-s-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def bind_student_socket(dirs: SocketDirs, mode: int = 0o660) -> socket.socket:
    """Jupyter's socket in the student's folder, as Jupyter makes it (here by this process, its owner)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(dirs.inner(KEY) / "jupyter.sock"))
    os.chmod(dirs.inner(KEY) / "jupyter.sock", mode)
    return sock


def test_the_link_caddy_dials_is_given_caddys_group_and_only_the_link_is_changed(short):
    dirs = SocketDirs(short / "j", SubprocessRunner(), size=256 * 1024, dial_group=4242)
    dirs.inner(KEY).mkdir(parents=True)
    planted = short / "planted"
    planted.write_text("root's")
    os.symlink(planted, dirs.inner(KEY) / "evil")  # a student's symlink beside the socket is never followed
    with bind_student_socket(dirs):
        link = dirs.verify_and_link(KEY, os.geteuid())
        assert link == dirs.link(KEY)
        info = os.lstat(link)
        assert stat.S_ISSOCK(info.st_mode) and info.st_gid == 4242 and info.st_mode & 0o777 == 0o660
        assert os.stat(planted).st_gid != 4242
        os.chown(link, -1, 0, follow_symlinks=False)  # the student took the group back (their own server only)
        assert dirs.verify_and_link(KEY, os.geteuid()) == link
        assert os.lstat(link).st_gid == 4242  # given again at the next check


def test_without_a_dialing_group_the_link_keeps_the_students_group(short):
    sockets = SocketDirs(short / "j", SubprocessRunner(), size=256 * 1024)
    sockets.inner(KEY).mkdir(parents=True)
    with bind_student_socket(sockets):
        link = sockets.verify_and_link(KEY, os.geteuid())
        assert link is not None and os.lstat(link).st_gid == os.getegid()


def test_a_socket_of_another_uid_is_never_linked(short):
    sockets = SocketDirs(short / "j", SubprocessRunner(), size=256 * 1024)
    sockets.inner(KEY).mkdir(parents=True)
    with bind_student_socket(sockets):
        assert sockets.verify_and_link(KEY, os.geteuid() + 1) is None
        assert not sockets.link(KEY).exists()


def test_threads_checking_the_same_socket_at_once_each_get_the_link(short):
    # a launch's waiter and the status probes of the same server run in threads of one process (same pid)
    dirs = SocketDirs(short / "j", SubprocessRunner(), size=256 * 1024, dial_group=4242)
    dirs.inner(KEY).mkdir(parents=True)

    def check(barrier: threading.Barrier, results: list[object]) -> None:
        barrier.wait()
        try:
            results.append(dirs.verify_and_link(KEY, os.geteuid()))
        except OSError as exc:
            results.append(exc)

    with bind_student_socket(dirs):
        for _ in range(40):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dirs.link(KEY))  # each round must make the link again
            barrier, results = threading.Barrier(8), []
            threads = [threading.Thread(target=check, args=(barrier, results)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert results == [dirs.link(KEY)] * 8
        assert sorted(os.listdir(dirs.folder(KEY))) == sorted([INNER, dirs.link(KEY).name])


def test_a_running_servers_file_is_replaced_whole_and_read_back(sockets):
    sockets.write_config(KEY, "trusted-digests", b"sha256 ab\n")
    before = (sockets.inner(KEY) / "config" / "trusted-digests").stat().st_ino
    sockets.replace_config(KEY, "trusted-digests", b"sha256 ab\nsha256 cd\n")
    path = sockets.inner(KEY) / "config" / "trusted-digests"
    assert path.stat().st_ino != before  # a new file renamed over the old one: a reader sees one or the other
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.stat().st_uid == os.geteuid()
    assert sockets.read_config(KEY, "trusted-digests", 1000) == b"sha256 ab\nsha256 cd\n"
    assert sockets.read_config(KEY, "trusted-digests", 4) == b"sha2"  # bounded
    assert sorted(p.name for p in path.parent.iterdir()) == ["trusted-digests"]  # no temporary file left


def test_a_running_servers_swapped_configuration_folder_is_neither_read_nor_written(sockets, tmp_path):
    sockets.write_config(KEY, "trusted-digests", b"sha256 ab\n")
    inner = sockets.inner(KEY)
    (inner / "config").rename(inner / "old")  # the student owns run/: they can move root's folder aside
    planted = inner / "config"
    planted.mkdir()
    os.chown(planted, os.geteuid() + 12345, -1)
    (planted / "trusted-digests").write_bytes(b"sha256 mine\n")
    with pytest.raises(PermissionError, match="not root's"):
        sockets.read_config(KEY, "trusted-digests", 1000)
    with pytest.raises(PermissionError, match="not root's"):
        sockets.replace_config(KEY, "trusted-digests", b"sha256 cd\n")
    shutil.rmtree(planted)
    target = tmp_path / "elsewhere"
    target.mkdir()
    planted.symlink_to(target)  # a link is never followed
    with pytest.raises(OSError):
        sockets.replace_config(KEY, "trusted-digests", b"sha256 cd\n")
    assert list(target.iterdir()) == []


def test_a_file_in_roots_folder_that_is_not_a_plain_file_of_roots_is_not_read(sockets):
    sockets.write_config(KEY, "notary-secret", b"0" * 64)
    folder = sockets.inner(KEY) / "config"
    (folder / "trusted-digests").symlink_to(folder / "notary-secret")
    with pytest.raises(OSError):  # ELOOP
        sockets.read_config(KEY, "trusted-digests", 1000)
    with pytest.raises(ValueError):
        sockets.read_config(KEY, "../x", 1000)
