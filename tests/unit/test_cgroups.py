"""The limits root writes, checked on a stand-in cgroup tree (the kernel's side is tested on real
containers in tests/integration/test_limits.py)."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbhosting_core import Settings
from nbhosting_core.errors import LimitsNotApplied
from nbhosting_core.system.cgroups import CgroupV1Limiter, CgroupV2Limiter, NoLimits, cpu_weight, descendants


@pytest.fixture
def child():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)",
        ]
    )
    try:
        yield proc.pid
    finally:
        for pid in reversed(descendants(proc.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        proc.wait()


def wait_for_grandchild(pid):
    import time

    for _ in range(100):
        if len(descendants(pid)) == 2:
            return
        time.sleep(0.02)
    raise AssertionError("the grandchild did not start")


def test_v1_writes_every_limit_and_moves_the_whole_process_tree(tmp_path, child):
    for controller in ("memory", "pids", "cpu", "cpuacct"):
        (tmp_path / controller).mkdir()
    settings = Settings(memory_limit=512 * 2**20, pids_limit=64, cpu_shares=512, cpu_limit=1.5)
    (tmp_path / "cpu" / "nbhosting" / "srv").mkdir(parents=True)
    (tmp_path / "cpu" / "nbhosting" / "srv" / "cpu.cfs_quota_us").write_text("-1")  # where CFS quota exists
    wait_for_grandchild(child)
    CgroupV1Limiter(settings, tmp_path).apply("srv", child, os.getuid())
    group = tmp_path / "memory" / "nbhosting" / "srv"
    assert (group / "memory.limit_in_bytes").read_text() == str(512 * 2**20)
    assert (tmp_path / "pids" / "nbhosting" / "srv" / "pids.max").read_text() == "64"
    assert (tmp_path / "cpu" / "nbhosting" / "srv" / "cpu.shares").read_text() == "512"
    assert (tmp_path / "cpu" / "nbhosting" / "srv" / "cpu.cfs_quota_us").read_text() == "150000"
    # a plain file stands in for cgroup.procs: the limiter appends, so it keeps every pid it was given
    for controller in ("memory", "pids", "cpu", "cpuacct"):
        procs = (tmp_path / controller / "nbhosting" / "srv" / "cgroup.procs").read_text().split()
        assert sorted(map(int, procs)) == sorted(descendants(child))
    total = int((tmp_path / "memory" / "nbhosting" / "memory.limit_in_bytes").read_text())
    assert 0 < total < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert int((tmp_path / "pids" / "nbhosting" / "pids.max").read_text()) == pid_max // 2


def test_each_installation_has_its_own_parent_group(tmp_path, child):
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
    CgroupV1Limiter(Settings(cgroup_parent="nbh-other"), tmp_path).apply("srv", child, os.getuid())
    assert (tmp_path / "memory" / "nbh-other" / "srv" / "memory.limit_in_bytes").exists()
    assert not (tmp_path / "memory" / "nbhosting").exists()


def test_v1_counts_swap_in_the_memory_limit_where_the_host_accounts_it(tmp_path, child):
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
    group = tmp_path / "memory" / "nbhosting" / "srv"
    group.mkdir(parents=True)
    for folder in (tmp_path / "memory", group):  # the kernel has memsw files everywhere when it accounts swap
        (folder / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    limiter = CgroupV1Limiter(Settings(memory_limit=300 * 2**20), tmp_path)
    limiter.apply("srv", child, os.getuid())
    assert (group / "memory.memsw.limit_in_bytes").read_text() == str(300 * 2**20)
    assert any(e.name == "memory" and "swap included" in e.detail for e in limiter.enforcement())


def test_a_process_that_cannot_be_moved_refuses_the_server(tmp_path, child):
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
    (tmp_path / "pids" / "nbhosting" / "srv" / "cgroup.procs").mkdir(parents=True)  # not writable as a file
    with pytest.raises(LimitsNotApplied) as caught:
        CgroupV1Limiter(Settings(), tmp_path).apply("srv", child, os.getuid())
    assert "srv" in caught.value.log_detail and "safely" in caught.value.message


def test_release_removes_empty_groups_and_keeps_busy_ones(tmp_path):
    for controller in ("memory", "pids"):
        (tmp_path / controller / "nbhosting" / "gone").mkdir(parents=True)
    (tmp_path / "memory" / "nbhosting" / "busy").mkdir()
    (tmp_path / "memory" / "nbhosting" / "busy" / "cgroup.procs").write_text("1\n")  # rmdir: not empty
    limiter = CgroupV1Limiter(Settings(), tmp_path)
    assert limiter.groups() == {"gone", "busy"}
    assert limiter.release("gone") and limiter.groups() == {"busy"}


def test_v1_does_not_move_processes_of_another_uid(tmp_path, child):
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
    CgroupV1Limiter(Settings(), tmp_path).apply("srv", child, os.getuid() + 12345)
    assert not (tmp_path / "memory" / "nbhosting" / "srv" / "cgroup.procs").exists()


def test_v2_writes_every_limit_in_one_group(tmp_path, child):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    settings = Settings(memory_limit=2**30, pids_limit=100, cpu_shares=1024, cpu_limit=0.5)
    (tmp_path / "nbhosting" / "srv").mkdir(parents=True)
    (tmp_path / "nbhosting" / "srv" / "cpu.weight").write_text("100")
    CgroupV2Limiter(settings, tmp_path).apply("srv", child, os.getuid())
    group = tmp_path / "nbhosting" / "srv"
    assert (group / "memory.max").read_text() == str(2**30)
    assert (group / "memory.swap.max").read_text() == "0"
    assert (group / "pids.max").read_text() == "100"
    assert (group / "cpu.max").read_text() == "50000 100000"
    assert (tmp_path / "nbhosting" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"


def test_v1_usage_reads_memory_oom_kills_processes_and_cpu_with_their_limits(tmp_path):
    for controller, files in {
        "memory": {
            "memory.usage_in_bytes": "1048576",
            "memory.limit_in_bytes": "2147483648",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        },
        "pids": {"pids.current": "9", "pids.max": "512"},
        "cpu": {"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"},
        "cpuacct": {"cpuacct.usage": "1500000000"},
    }.items():
        group = tmp_path / controller / "nbhosting" / "srv"
        group.mkdir(parents=True)
        for name, text in files.items():
            (group / name).write_text(text)
    usage = CgroupV1Limiter(Settings(), tmp_path).usage("srv")
    assert usage.memory_bytes == 2**20 and usage.memory_limit == 2**31 and usage.oom_kills == 2
    assert (usage.pids, usage.pids_limit, usage.cpu_seconds, usage.cpu_limit) == (9, 512, 1.5, 0.5)


def test_usage_reads_the_groups_and_says_none_where_unknown(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    group = tmp_path / "nbhosting" / "srv"
    group.mkdir(parents=True)
    (group / "memory.current").write_text("1048576\n")
    (group / "memory.max").write_text("max\n")
    (group / "pids.current").write_text("7\n")
    (group / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 1\n")
    usage = CgroupV2Limiter(Settings(), tmp_path).usage("srv")
    assert (usage.memory_bytes, usage.memory_limit, usage.pids, usage.cpu_seconds) == (1048576, None, 7, 2.5)
    assert usage.cpu_limit is None and usage.oom_kills is None
    assert NoLimits().usage("srv").memory_bytes is None


def test_without_limits_doctor_hears_that_nothing_is_enforced():
    limiter = NoLimits("nbhosting does not run as root")
    assert limiter.enforcement() and not any(e.enforced for e in limiter.enforcement())
    assert "not run as root" in limiter.description


def test_cpu_shares_map_onto_v2_weights_in_order():
    assert cpu_weight(2) == 1 and cpu_weight(262144) == 10000
    assert cpu_weight(512) < cpu_weight(1024) < cpu_weight(2048)


def test_availability_is_read_from_the_tree(tmp_path):
    assert not CgroupV1Limiter.available(tmp_path) and not CgroupV2Limiter.available(tmp_path)
    (tmp_path / "cgroup.controllers").write_text("memory pids cpu")
    assert CgroupV2Limiter.available(tmp_path)
