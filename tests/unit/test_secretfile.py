import os

import pytest

from nbhosting_core import NbhostingError
from nbhosting_core.system.secretfile import load_or_create_secret


def test_the_secret_is_made_once_private_and_kept(tmp_path):
    path = tmp_path / "secret"
    first = load_or_create_secret(path)
    assert len(first) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(path) == first


@pytest.mark.parametrize("spoil", ["short", "readable", "symlink"])
def test_an_unsafe_secret_is_refused_never_used(tmp_path, spoil):
    path = tmp_path / "secret"
    if spoil == "short":
        path.write_bytes(b"")
        path.chmod(0o600)
    elif spoil == "readable":
        path.write_bytes(b"x" * 64)
        path.chmod(0o644)
    else:
        (tmp_path / "elsewhere").write_bytes(b"x" * 64)
        os.chmod(tmp_path / "elsewhere", 0o600)
        path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NbhostingError) as refused:
        load_or_create_secret(path)
    assert "not safe" in refused.value.message
