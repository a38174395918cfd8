"""Jupyter's configuration in a socket folder: written by root, through descriptors, never over what is there."""

import json
import os
import stat

import pytest

from nbhosting_core.system.runner import SubprocessRunner
from nbhosting_core.system.sockets import SocketDirs

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
    with pytest.raises(FileExistsError):
        sockets.write_config(KEY, "jupyter_server_config.json", b"{}")
    assert list(target.iterdir()) == []


def test_a_file_name_is_a_name(sockets):
    with pytest.raises(ValueError, match="not a file name"):
        sockets.write_config(KEY, "../x.json", b"{}")
