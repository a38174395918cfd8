from pathlib import Path

from nbhosting_core.system.mounts import containing_mount, is_mount_point, parse_mountinfo

MOUNTINFO = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
23 22 0:5 / /proc rw - proc proc rw
40 22 254:0 /run/nbhosting/jupyter /run/nbhosting/jupyter rw shared:7 - ext4 /dev/vda rw
41 40 0:50 / /run/nbhosting/jupyter/aaaa rw,nosuid shared:8 - tmpfs nbhosting rw,size=256k
42 22 0:51 / /tmp/with\\040space rw - tmpfs x rw
"""


def test_mountinfo_is_read_with_propagation_and_escapes():
    table = parse_mountinfo(MOUNTINFO)
    assert [m.target for m in table][-1] == Path("/tmp/with space")
    shared = {str(m.target): m.shared for m in table}
    assert shared["/"] is False and shared["/run/nbhosting/jupyter"] is True


def test_the_containing_mount_is_the_deepest():
    table = parse_mountinfo(MOUNTINFO)
    assert containing_mount(Path("/run/nbhosting/jupyter/aaaa/run"), table).fstype == "tmpfs"
    assert containing_mount(Path("/run/nbhosting/jupyter/bbbb"), table).shared
    assert containing_mount(Path("/var/lib"), table).target == Path("/")
    assert is_mount_point(Path("/run/nbhosting/jupyter"), table)
    assert not is_mount_point(Path("/run/nbhosting"), table)
