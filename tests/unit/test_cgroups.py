"""The limits root writes, checked on a stand-in cgroup tree (the kernel's side is tested on real
containers in tests/integration/test_limits.py)."""

import contextlib
import os
import subprocess
import sys

import pytest

from nbhosting_core import Settings
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
    wait_for_grandchild(child)
    CgroupV1Limiter(settings, tmp_path).apply("srv", child, os.getuid())
    group = tmp_path / "memory" / "nbhosting" / "srv"
    assert (group / "memory.limit_in_bytes").read_text() == str(512 * 2**20)
    assert (tmp_path / "pids" / "nbhosting" / "srv" / "pids.max").read_text() == "64"
    assert (tmp_path / "cpu" / "nbhosting" / "srv" / "cpu.shares").read_text() == "512"
    assert (tmp_path / "cpu" / "nbhosting" / "srv" / "cpu.cfs_quota_us").read_text() == "150000"
    # a plain file stands in for cgroup.procs: each write replaced the last; the kernel appends
    assert int((group / "cgroup.procs").read_text()) in descendants(child)
    total = int((tmp_path / "memory" / "nbhosting" / "memory.limit_in_bytes").read_text())
    assert 0 < total < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


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
    assert NoLimits().usage("srv").memory_bytes is None


def test_cpu_shares_map_onto_v2_weights_in_order():
    assert cpu_weight(2) == 1 and cpu_weight(262144) == 10000
    assert cpu_weight(512) < cpu_weight(1024) < cpu_weight(2048)


def test_availability_is_read_from_the_tree(tmp_path):
    assert not CgroupV1Limiter.available(tmp_path) and not CgroupV2Limiter.available(tmp_path)
    (tmp_path / "cgroup.controllers").write_text("memory pids cpu")
    assert CgroupV2Limiter.available(tmp_path)
