"""Limits on real containers: no student can hurt the host or another student (root only).

Each test has its own students and drives their kernels over the websocket, as a notebook would. Memory, fork
and CPU tests give the 2-core host generous deadlines and assert on amounts (bytes, processes, CPU ratios),
never on timings. The measured figures are logged (``-o log_cli=true`` shows them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from nbhosting_core import Hub, Launch, Settings
from nbhosting_core.containers import SHM_SIZE, TMPFS
from nbhosting_core.system.cgroups import descendants, limiter_for
from nbhosting_core.system.records import Records, process_uid
from nbhosting_server.serve import settings_environment
from tests.support import Kernel, jupyter_call

pytestmark = pytest.mark.podman
log = logging.getLogger(__name__)
GiB, MiB = 2**30, 2**20
CGROUPS = Path("/sys/fs/cgroup")


# ------------------------------------------------------------------------------------------------- helpers


def student(tag: str) -> str:
    return f"lim-{tag}-{uuid.uuid4().hex[:6]}"


def opened(hub: Hub, tag: str) -> Launch:
    return hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", student(tag)), timeout=90)


def group(settings: Settings, controller: str, launch: Launch) -> Path:
    return CGROUPS / controller / settings.cgroup_parent / launch.container


def read(path: Path) -> int:
    return int(path.read_text().split()[0])


def keyed(path: Path, key: str) -> int:
    return next(int(line.split()[1]) for line in path.read_text().splitlines() if line.split()[0] == key)


def mem_available() -> int:
    return keyed(Path("/proc/meminfo"), "MemAvailable:") * 1024


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.1)


def status(hub: Hub, launch: Launch) -> int:
    return jupyter_call(hub.settings, hub.secret, launch.key, "GET", "api/status")[0]


def kernel(hub: Hub, launch: Launch) -> Kernel:
    return Kernel(hub.settings, hub.secret, launch.key)


def run_ok(k: Kernel, code: str, timeout: float = 60) -> str:
    """Run ``code``; its stdout, or fail with what the kernel said."""
    result = k.run(code, timeout=timeout)
    assert result["status"] == "ok", result
    return str(result["stdout"])


def server_pid(settings: Settings, launch: Launch) -> int:
    """The host pid of the student's Jupyter server (the child of the container's init)."""
    run = Records(settings.servers_dir, settings.running_dir).run(launch.key)
    assert run is not None
    for pid in descendants(run.pid):
        if "jupyter-server" in cmdline(pid):
            return pid
    raise AssertionError(f"no jupyter-server below {run.pid}")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def marked(procs: Path, marker: str) -> list[int]:
    return [int(p) for p in procs.read_text().split() if marker in cmdline(int(p))]


def kill_marked(procs: Path, marker: str, timeout: float = 60) -> None:
    """Kill the test's own processes (their command line holds ``marker``) in a group, forks included.

    Stopped processes cannot fork: stop every one until none runs, then kill them all.
    """
    deadline = time.monotonic() + timeout
    while pids := marked(procs, marker):
        assert time.monotonic() < deadline, f"processes {marker} still in {procs} after {timeout} s"
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if sig == signal.SIGSTOP:
                time.sleep(0.05)
                pids = marked(procs, marker)
        time.sleep(0.1)


def _where(pid: int) -> str:
    """What /proc says of ``pid``: its state and groups (for failure messages)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        return f"state {state}: " + " ".join(Path(f"/proc/{pid}/cgroup").read_text().split())
    except OSError:
        return "exited"


def in_groups(settings: Settings, launch: Launch, pid: int) -> bool | None:
    """True if ``pid`` is in the server's memory, pids and cpu groups; None if it exited (zombies too)."""
    if process_uid(pid) is None:
        return None
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    wanted = f"/{settings.cgroup_parent}/{launch.container}"
    paths = {line.split(":")[1]: line.split(":")[2] for line in lines}
    return all(paths.get(c) == wanted for c in ("memory", "pids", "cpu,cpuacct" if "cpu,cpuacct" in paths else "cpu"))


# ------------------------------------------------------------------------------------------------- memory


def test_a_kernel_allocating_4_gib_dies_alone_in_its_servers_2_gib_group(settings):
    hub = Hub(settings)
    assert settings.memory_limit == 2 * GiB  # the default
    victim, bystander = opened(hub, "oom"), opened(hub, "bystander")
    memory = group(settings, "memory", victim)
    assert read(memory / "memory.limit_in_bytes") == 2 * GiB
    if (memory / "memory.memsw.limit_in_bytes").exists():
        assert read(memory / "memory.memsw.limit_in_bytes") == 2 * GiB  # no way around it through swap
    jupyter = server_pid(settings, victim)
    hungry = kernel(hub, victim)
    before = mem_available()

    result = hungry.run('x = b"x" * (4 * 2**30)\nprint(len(x))', timeout=240)

    after = mem_available()
    assert result["died"] and "4294967296" not in str(result["stdout"]), result
    kills, peak = keyed(memory / "memory.oom_control", "oom_kill"), read(memory / "memory.max_usage_in_bytes")
    log.info(
        "4 GiB in a 2 GiB server: oom kills %d, group peak %.2f GiB, host MemAvailable %.2f -> %.2f GiB",
        kills,
        peak / GiB,
        before / GiB,
        after / GiB,
    )
    assert kills >= 1 and 1.5 * GiB < peak <= 2 * GiB  # it did fill its group, and no further
    assert Path(f"/proc/{jupyter}").exists() and server_pid(settings, victim) == jupyter  # the server lives
    assert status(hub, victim) == 200
    assert after > before - GiB  # the host got its memory back (other test runs share this host)
    deadline = time.monotonic() + 90  # Jupyter restarts the kernel: the next run in it works
    while "42" not in str((again := hungry.run("print(6 * 7)", timeout=30))["stdout"]):
        assert time.monotonic() < deadline, f"the kernel was not restarted: {again}"
        time.sleep(0.5)
    assert run_ok(kernel(hub, bystander), "print(2 + 2)").strip() == "4"
    assert keyed(group(settings, "memory", bystander) / "memory.oom_control", "oom_kill") == 0
    usage = hub.server(victim.container).usage
    assert usage is not None and usage.oom_kills == kills and usage.memory_limit == 2 * GiB


def test_processes_that_fill_the_group_together_die_before_the_jupyter_server(settings):
    # each child is smaller than the Jupyter server: by size alone, the OOM killer would take the server
    hub = Hub(settings.model_copy(update={"memory_limit": 512 * MiB}))
    launch = opened(hub, "many")
    jupyter = server_pid(settings, launch)
    many = kernel(hub, launch)
    code = (
        "import subprocess, sys\n"
        "child = 'import time; x = bytearray(40 * 2**20); x[::4096] = b\"x\" * len(x[::4096]); time.sleep(5)'\n"
        "procs = [subprocess.Popen([sys.executable, '-c', child]) for _ in range(16)]\n"
        "print(sorted(p.wait() for p in procs))\n"
    )
    many.run(code, timeout=120)  # the kernel itself may be among the dead
    memory = group(settings, "memory", launch)
    assert keyed(memory / "memory.oom_control", "oom_kill") >= 1
    assert server_pid(settings, launch) == jupyter and status(hub, launch) == 200
    # why: the server keeps the default score adjustment, kernels raise theirs (nbhosting-expendable)
    assert Path(f"/proc/{jupyter}/oom_score_adj").read_text().strip() == "0"
    assert run_ok(kernel(hub, launch), "print(open('/proc/self/oom_score_adj').read())").strip() == "500"


# ------------------------------------------------------------------------------------------------- processes

BOMB = """
import os, time  # nbh-test-bomb
end = time.time() + 90
while time.time() < end:
    try:
        os.fork()
    except OSError:
        time.sleep(0.05)
"""


def test_a_fork_bomb_stays_inside_its_container(settings):
    limit = 128
    hub = Hub(settings.model_copy(update={"pids_limit": limit}))
    bomber, other = opened(hub, "bomb"), opened(hub, "neighbour")
    pids = group(settings, "pids", bomber)
    assert read(pids / "pids.max") == limit
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    bombs = kernel(hub, bomber)
    try:
        run_ok(bombs, f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {BOMB!r}])")
        wait_for("the bomb fills its pids group", lambda: keyed(pids / "pids.events", "max") > 100, timeout=120)
        host_tasks = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
        current = read(pids / "pids.current")
        log.info(
            "fork bomb: group at %d/%d tasks, %d forks refused; host %d tasks of pid_max %d",
            current,
            limit,
            keyed(pids / "pids.events", "max"),
            host_tasks,
            pid_max,
        )
        assert current <= limit and host_tasks < pid_max // 2
        # meanwhile, the neighbour answers and starts a kernel of their own
        assert status(hub, other) == 200
        assert run_ok(kernel(hub, other), "print(2 + 2)").strip() == "4"
    finally:
        kill_marked(pids / "cgroup.procs", "nbh-test-bomb")
    wait_for("the bomb's slots are free", lambda: read(pids / "pids.current") < limit // 2)
    assert status(hub, bomber) == 200
    assert run_ok(kernel(hub, bomber), "print('after the bomb')").strip() == "after the bomb"


def test_processes_forking_while_they_are_moved_all_end_in_the_servers_groups(settings):
    hub = Hub(settings)
    launch = opened(hub, "move")
    busy = kernel(hub, launch)
    forker = (
        "import subprocess, time  # nbh-test-forker\n"
        "end = time.time() + 60\n"
        "while time.time() < end: subprocess.run(['true'])"
    )
    run_ok(busy, f"import subprocess, sys\nfor _ in range(3): subprocess.Popen([sys.executable, '-c', {forker!r}])")
    procs = {c: group(settings, c, launch) / "cgroup.procs" for c in ("memory", "pids", "cpu", "cpuacct")}
    try:
        wait_for("the forkers run", lambda: len(marked(procs["pids"], "nbh-test-forker")) == 3)
        # as if the groups had been lost: every process back in the parent groups, forks going on
        for controller, path in procs.items():
            for pid in path.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    (CGROUPS / controller / settings.cgroup_parent / "cgroup.procs").write_text(pid)
        run = Records(settings.servers_dir, settings.running_dir).run(launch.key)
        assert run is not None
        assert not all(in_groups(settings, launch, p) for p in descendants(run.pid))

        limiter_for(settings).apply(launch.container, run.pid, launch.uid)

        outside = {p: _where(p) for p in descendants(run.pid) if in_groups(settings, launch, p) is False}
        assert not outside, outside
    finally:
        kill_marked(procs["pids"], "nbh-test-forker")


# ------------------------------------------------------------------------------------------------- writes

FILL = """
import errno, json, os
def fill(folder, chunk=2**20):
    path, written, error = os.path.join(folder, "nbh-fill"), 0, None
    try:
        with open(path, "wb", buffering=0) as out:
            while written < 2**31:
                written += out.write(b"x" * chunk)
    except OSError as exc:
        error = errno.errorcode[exc.errno]
    return {"written": written, "error": error}
"""

MQUEUE = """
import ctypes, errno, os, resource
libc = ctypes.CDLL(None, use_errno=True)
class Attr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long), ("msgsize", ctypes.c_long),
                ("curmsgs", ctypes.c_long), ("reserved", ctypes.c_long * 4)]
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Attr)]
made, error = 0, None
while made < 10000:
    if libc.mq_open(f"/nbh-{made}".encode(), os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(Attr(0, 10, 8192, 0))) < 0:
        error = errno.errorcode[ctypes.get_errno()]
        break
    made += 1
for n in range(made):
    libc.mq_unlink(f"/nbh-{n}".encode())
rlimit = resource.getrlimit(resource.RLIMIT_MSGQUEUE)[0]
print(json.dumps({"bytes": made * 10 * 8192, "rlimit": rlimit, "error": error}))
"""


def test_writing_without_end_stops_at_each_writable_places_cap_and_harms_no_one_else(settings):
    hub = Hub(settings.model_copy(update={"log_size_max": 64 * 1024}))
    writer, other = opened(hub, "writer"), opened(hub, "quiet")
    k = kernel(hub, writer)
    run_ok(k, FILL)
    memory = group(settings, "memory", writer)

    # every place the student can write to, as the container shows it (device nodes aside)
    writable = json.loads(
        run_ok(
            k,
            "import os, stat, json\n"
            "points = [line.split()[4] for line in open('/proc/self/mountinfo')]\n"
            "dirs = [p for p in points if stat.S_ISDIR(os.stat(p).st_mode)]\n"
            "print(json.dumps(sorted(p for p in dirs if os.access(p, os.W_OK))))",
        )
    )
    assert writable == sorted(["/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/nbhosting/run", "/home/student"])

    caps = {"/tmp": TMPFS["/tmp"][0], "/var/tmp": TMPFS["/var/tmp"][0], "/dev/shm": SHM_SIZE}
    for folder, cap in caps.items():
        shmem_before = keyed(memory / "memory.stat", "shmem")
        result = json.loads(run_ok(k, f"print(json.dumps(fill({folder!r})))", timeout=120))
        shmem = keyed(memory / "memory.stat", "shmem") - shmem_before
        log.info(
            "%s: %d MiB written (%s), %d MiB more shmem in the group",
            folder,
            result["written"] // MiB,
            result["error"],
            shmem // MiB,
        )
        assert result["error"] == "ENOSPC" and cap - 2 * MiB <= result["written"] <= cap
        assert shmem >= result["written"] * 0.9  # memory, charged to the student's own group
        run_ok(k, f"import os; os.unlink({folder + '/nbh-fill'!r})")

    # the socket folder: its own small tmpfs on the host, not the host's /run
    result = json.loads(run_ok(k, "print(json.dumps(fill('/nbhosting/run', 4096)))"))
    assert result["error"] == "ENOSPC" and result["written"] <= settings.socket_dir_size
    folder = settings.jupyter_sockets_dir / writer.key
    assert (folder / "run" / "nbh-fill").stat().st_dev == folder.stat().st_dev != settings.run_dir.stat().st_dev
    assert status(hub, writer) == 200  # Jupyter's socket there still answers
    run_ok(k, "import os; os.unlink('/nbhosting/run/nbh-fill')")

    # POSIX message queues: the kernel's per-user RLIMIT_MSGQUEUE
    queues = json.loads(run_ok(k, MQUEUE))
    assert queues["error"] == "EMFILE" and 0 < queues["bytes"] <= queues["rlimit"]

    # / and /run are read-only for the student
    refused = json.loads(
        run_ok(
            k,
            "import errno, json\nout = {}\n"
            "for path in ('/nbh-x', '/run/nbh-x', '/usr/local/bin/nbh-x', '/etc/nbh-x'):\n"
            "    try:\n        open(path, 'wb').close(); out[path] = None\n"
            "    except OSError as exc:\n        out[path] = errno.errorcode[exc.errno]\n"
            "print(json.dumps(out))",
        )
    )
    assert all(error in ("EROFS", "EACCES") for error in refused.values()), refused

    # the container's own log: Jupyter's stdout, reachable by the student's processes (/proc/1/fd/1, or a
    # subprocess's output), kept by conmon on the host under log_size_max
    run_ok(
        k,
        "import os\nos.write(1, b'nbh-kernel-fd\\n')\n"
        "with open('/proc/1/fd/1', 'wb', buffering=0) as out:\n"
        "    for _ in range(64): out.write(b'y' * 16383 + b'\\n')",
    )
    account = hub.accounts.find(writer.student_id)
    assert account is not None
    logs = list((settings.podman_dir / account.user).rglob("ctr.log"))
    assert len(logs) == 1
    wait_for("conmon wrote the log", lambda: logs[0].stat().st_size > 0)
    log.info("container log after 1 MiB written: %d bytes (max %d)", logs[0].stat().st_size, 64 * 1024)
    assert logs[0].stat().st_size <= 64 * 1024
    assert status(hub, writer) == 200 and status(hub, other) == 200


# ------------------------------------------------------------------------------------------------- cpu

BUSY = "import os, time  # nbh-test-busy\n{pin}end = time.time() + 60\nwhile time.time() < end: pass"


def start_busy(k: Kernel, count: int, pin: bool) -> None:
    code = BUSY.format(pin="os.sched_setaffinity(0, {0})\n" if pin else "")
    run_ok(k, f"import subprocess, sys\nfor _ in range({count}): subprocess.Popen([sys.executable, '-c', {code!r}])")


def cpu_ns(settings: Settings, launch: Launch) -> int:
    return read(group(settings, "cpuacct", launch) / "cpuacct.usage")


def test_two_busy_students_get_equal_shares_whatever_their_number_of_processes(settings):
    hub = Hub(settings)
    greedy, modest = opened(hub, "greedy"), opened(hub, "modest")
    for launch in (greedy, modest):
        assert read(group(settings, "cpu", launch) / "cpu.shares") == settings.cpu_shares == 1024
    try:
        # all on one core, so that the share of the core is what is measured
        start_busy(kernel(hub, greedy), 4, pin=True)
        start_busy(kernel(hub, modest), 1, pin=True)
        for launch, count in ((greedy, 4), (modest, 1)):
            procs = group(settings, "pids", launch) / "cgroup.procs"
            wait_for("busy processes", lambda p=procs, n=count: len(marked(p, "nbh-test-busy")) == n)
        time.sleep(0.5)
        start = {launch.key: cpu_ns(settings, launch) for launch in (greedy, modest)}
        time.sleep(3)
        used = {launch.key: cpu_ns(settings, launch) - start[launch.key] for launch in (greedy, modest)}
        log.info("one core, 4 processes vs 1: %.2f s vs %.2f s of CPU", used[greedy.key] / 1e9, used[modest.key] / 1e9)
        # without groups each process would get a fifth: the single one a quarter of the four's total
        assert used[modest.key] > 0.6 * used[greedy.key]
    finally:
        for launch in (greedy, modest):
            kill_marked(group(settings, "pids", launch) / "cgroup.procs", "nbh-test-busy")


def test_cpu_limit_caps_a_server_and_usage_reports_it_with_the_other_limits(settings):
    hub = Hub(settings.model_copy(update={"cpu_limit": 0.5}))
    launch = opened(hub, "capped")
    cpu = group(settings, "cpu", launch)
    assert (read(cpu / "cpu.cfs_quota_us"), read(cpu / "cpu.cfs_period_us")) == (50_000, 100_000)
    try:
        start_busy(kernel(hub, launch), 2, pin=False)
        procs = group(settings, "pids", launch) / "cgroup.procs"
        wait_for("busy processes", lambda: len(marked(procs, "nbh-test-busy")) == 2)
        start, t0 = cpu_ns(settings, launch), time.monotonic()
        time.sleep(3)
        used, wall = (cpu_ns(settings, launch) - start) / 1e9, time.monotonic() - t0
        log.info("cpu_limit 0.5 with 2 busy processes: %.2f s of CPU in %.2f s", used, wall)
        assert 0 < used <= 0.5 * wall * 1.2 + 0.1
        usage = hub.server(launch.container).usage
        assert usage is not None
        assert usage.cpu_limit == 0.5 and usage.cpu_seconds is not None and usage.cpu_seconds > used * 0.9
        assert usage.memory_limit == settings.memory_limit and 0 < (usage.memory_bytes or 0) < settings.memory_limit
        assert usage.pids_limit == settings.pids_limit and 4 <= (usage.pids or 0) <= settings.pids_limit
        assert usage.oom_kills == 0
    finally:
        kill_marked(group(settings, "pids", launch) / "cgroup.procs", "nbh-test-busy")


# ------------------------------------------------------------------------------------------------- the groups


def test_changed_limits_reach_a_running_server_and_one_below_its_use_is_refused_and_logged(settings, caplog):
    small = settings.model_copy(update={"memory_limit": 300 * MiB})
    launch = opened(Hub(small), "resize")
    memory = group(settings, "memory", launch)
    run = Records(settings.servers_dir, settings.running_dir).run(launch.key)
    assert run is not None
    files = [memory / "memory.limit_in_bytes", memory / "memory.memsw.limit_in_bytes"]
    files = [f for f in files if f.exists()]
    limiter_for(settings).apply(launch.container, run.pid, launch.uid)  # raised: memsw first
    assert [read(f) for f in files] == [settings.memory_limit] * len(files)
    limiter_for(small).apply(launch.container, run.pid, launch.uid)  # lowered: memory first
    assert [read(f) for f in files] == [300 * MiB] * len(files)
    run_ok(kernel(Hub(small), launch), "x = bytearray(150 * 2**20); x[::4096] = b'x' * len(x[::4096])")
    with caplog.at_level(logging.ERROR, logger="nbhosting_core.system.cgroups"):
        tiny = small.model_copy(update={"memory_limit": 64 * MiB, "students_memory_fraction": 0.001})
        limiter_for(tiny).apply(launch.container, run.pid, launch.uid)
    assert [read(f) for f in files] == [300 * MiB] * len(files)  # kept: it uses more than 64 MiB
    refused = [r.getMessage() for r in caplog.records if "cannot reclaim" in r.getMessage()]
    assert any(launch.container in m for m in refused) and any("all students" in m for m in refused), refused
    assert status(Hub(small), launch) == 200


def test_a_stopped_server_leaves_no_group_and_reconcile_clears_those_of_servers_that_died(settings):
    hub = Hub(settings)
    stopped, died = opened(hub, "stopped"), opened(hub, "died")
    hub.stop(stopped.container)
    assert not [c for c in ("memory", "pids", "cpu", "cpuacct") if group(settings, c, stopped).exists()]
    jupyter = server_pid(settings, died)
    os.kill(jupyter, signal.SIGKILL)  # its Jupyter dies: the container exits by itself
    wait_for("the container exits", lambda: not read_procs(settings, died))
    assert group(settings, "memory", died).exists()
    stray = CGROUPS / "pids" / settings.cgroup_parent / "nbt-000000000000000000000000-gone"
    stray.mkdir()  # a group whose server has no record at all (removed while its group was busy)
    report = hub.reconcile()
    assert not [c for c in ("memory", "pids", "cpu", "cpuacct") if group(settings, c, died).exists()]
    assert f"limit groups {stray.name}" in report.cleared and not stray.exists()


def read_procs(settings: Settings, launch: Launch) -> list[str]:
    try:
        return (group(settings, "pids", launch) / "cgroup.procs").read_text().split()
    except FileNotFoundError:
        return []


# ------------------------------------------------------------------------------------------------- the admin


def test_doctor_says_what_is_enforced_on_this_host(settings):
    done = subprocess.run(
        [sys.executable, "-m", "nbhosting_server.cli", "doctor"],
        capture_output=True,
        text=True,
        env={**os.environ, **settings_environment(settings)},
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line[6:20].strip(): line for line in done.stdout.splitlines()}
    names = ("limits", "memory", "all students", "processes", "cpu share", "cpu cap", "oom order", "container log")
    for name in names:
        assert name in lines and lines[name].startswith("info"), done.stdout  # enforced here, not a warning
    assert "enforced by root in cgroups v1" in lines["limits"]
    assert "2048 MiB per server" in lines["memory"] and f"{settings.pids_limit} processes" in lines["processes"]
    assert "not its Jupyter server" in lines["oom order"] and "1024 KiB" in lines["container log"]
