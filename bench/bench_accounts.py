"""Accounts at scale (issue 5): a new student's first open with no account and with 100,000 on the host.

Run as root from the repository root, on a host set up by `./setup.sh test`:

    /opt/nbhosting/venv/bin/python -m bench.bench_accounts [--accounts 100000] [--burst 10] [--rounds 1]

The host's account databases are never touched. For each size, /etc is copied into a throwaway folder and N
students are added to its passwd, group, shadow and gshadow (and, for the ``--active`` ones, subuid and subgid:
nbhosting keeps subordinate ids only for students whose podman runs); the measurements then run in a
private mount namespace (``unshare --mount --propagation private``) where that copy is bind-mounted over /etc.
The whole folder is bound, not the six files: a file bound over /etc/passwd is silently detached as soon as
useradd or userdel runs on the host (they replace the file), and writes would then reach the host's.

Inside, a throwaway installation (``tests.support.installation``) measures account creation alone (median), the
first creation (the ledger reads the databases once), finding an existing student and glibc's getpwnam of one,
then the full first open of new students (account, copy, podman, Jupyter answering), one after the other and
N at once, with where podman's time goes. Both sizes are printed side by side with the ratios to the targets
(first open within 1.2x, a burst within 1.5x). Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from nbhosting_core import Hub, SubprocessRunner, ensure_layout
from nbhosting_core.accounts import Accounts
from nbhosting_core.naming import subid_range, user_name
from nbhosting_core.system.mounts import mounts
from nbhosting_core.system.podman import PodmanBackend
from nbhosting_core.system.userdb import DATABASES, student_lines
from nbhosting_core.system.userpodman import UserPodman
from nbhosting_server.demo import ensure_demo_course
from tests.support import BENCH_SUBID_BASE, BENCH_UID_MAX, BENCH_UID_MIN, TEST_PREFIX, built_rootfs, installation

NOTEBOOK = ("demo", "01-welcome.ipynb")
TARGETS = {"open": 1.2, "burst": 1.5}
PODMAN_CALLS = ("inspect", "create", "start")
FILLER_HOME = Path("/nonexistent/nbhosting-bench")  # outside any installation: never cleaned up as a student


# ------------------------------------------------------------------------------------------ the trees


def make_tree(folder: Path, accounts: int, active: int) -> Path:
    """A copy of /etc with ``accounts`` students of the benchmark's range added; returns the copy's path.

    As on a host in use: every student has their passwd, group, shadow and gshadow lines; only the ``active``
    ones, whose podman runs now, have subordinate ids (nbhosting revokes them when a student's last server
    stops: see nbhosting_core.system.subids).
    """
    etc = folder / "etc"
    folder.mkdir()
    subprocess.run(["cp", "-a", "/etc", str(etc)], check=True)
    files = {db: (etc / db).open("a") for db in DATABASES}
    try:
        for i in range(accounts):
            user = user_name(f"bench-filler-{i}", TEST_PREFIX)
            uid = BENCH_UID_MIN + i
            subids = subid_range(uid, uid_min=BENCH_UID_MIN, subid_base=BENCH_SUBID_BASE, subid_count=1024)
            for db, line in student_lines(user, uid, uid, FILLER_HOME / user, subids, 20000).items():
                if i < active or db not in ("subuid", "subgid"):
                    files[db].write(line + "\n")
    finally:
        for file in files.values():
            file.close()
    return etc


def run_worker(etc: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Measure with ``etc`` bound over /etc, in a private mount namespace; the host never sees the bind."""
    argv = [sys.executable, "-m", "bench.bench_accounts", "--worker", str(etc)]
    for name in ("creations", "cold", "warm", "burst"):
        argv += [f"--{name}", str(getattr(args, name))]
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", *argv], stdout=subprocess.PIPE, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    # the namespace is gone: the host has no bind over /etc, and none of the benchmark's students
    assert not any(m.target == Path("/etc") for m in mounts()), "a bind over /etc reached the host"
    for user in result["users"]:
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        raise AssertionError(f"{user} reached the host's /etc/passwd")
    return result


# ------------------------------------------------------------------------------------------ the worker


@contextmanager
def timed_calls(cls: type, names: tuple[str, ...], into: dict[str, list[float]]) -> Iterator[None]:
    """Record how long each call of ``cls.<name>`` takes (measurement only: behaviour unchanged)."""
    originals = {name: getattr(cls, name) for name in names}

    def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                into.setdefault(name, []).append(time.perf_counter() - started)

        return timed

    for name, original in originals.items():
        setattr(cls, name, wrap(name, original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def worker(etc: Path, args: argparse.Namespace) -> dict[str, Any]:
    subprocess.run(["mount", "--bind", str(etc), "/etc"], check=True)
    assert os.stat("/etc/passwd").st_ino == os.stat(etc / "passwd").st_ino, "/etc is not the throwaway copy"
    size = sum(1 for _ in open("/etc/passwd", "rb"))  # noqa: SIM115 - read once
    out: dict[str, Any] = {"passwd_lines": size, "users": []}
    with installation(
        built_rootfs(), uid_min=BENCH_UID_MIN, uid_max=BENCH_UID_MAX, subid_base=BENCH_SUBID_BASE
    ) as settings:
        ensure_layout(settings)
        ensure_demo_course(settings.courses_dir)
        accounts = Accounts(settings, SubprocessRunner())
        out["first_creation"] = timed(lambda: accounts.ensure("bench-first"))
        made = [f"bench-create-{i}" for i in range(args.creations)]
        out["creation"] = [timed(partial(accounts.ensure, s)) for s in made]
        out["find"] = [timed(partial(accounts.find, s)) for s in made]
        late = user_name(made[-1], settings.user_prefix)
        out["getpwnam"] = [timed(lambda: pwd.getpwnam(late)) for _ in range(10)]
        hub = Hub(settings)
        podman: dict[str, list[float]] = {}
        with timed_calls(PodmanBackend, ("ensure_running",), podman), timed_calls(UserPodman, PODMAN_CALLS, podman):
            out["open"] = [timed(partial(open_new, hub, f"bench-cold-{i}")) for i in range(args.cold)]
        out.update({name: podman[name] for name in ("ensure_running", *PODMAN_CALLS)})
        out["inspect"] = sorted(podman["inspect"])[-args.cold :]  # each student's first: it starts the service
        out["warm"] = [timed(lambda: open_new(hub, "bench-cold-0")) for _ in range(args.warm)]
        out["burst"], out["failures"] = burst(hub, args.burst)
        students = ["bench-first", *made] + [f"bench-cold-{i}" for i in range(args.cold)]
        students += [f"bench-burst-{i}" for i in range(args.burst)]
        out["users"] = [user_name(s, settings.user_prefix) for s in students]
    return out


def open_new(hub: Hub, student: str) -> None:
    hub.wait_ready(hub.open_notebook(*NOTEBOOK, student))


def burst(hub: Hub, count: int) -> tuple[float, list[str]]:
    """Seconds until ``count`` new students opening at once all have Jupyter answering; failures."""
    failures: list[str] = []

    def one(i: int) -> None:
        try:
            open_new(hub, f"bench-burst-{i}")
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, failures


# ------------------------------------------------------------------------------------------ the report


def median_of(rounds: list[dict[str, Any]], key: str) -> float:
    """The median over rounds of each round's median (or value)."""
    values = [r[key] for r in rounds]
    return statistics.median(statistics.median(v) if isinstance(v, list) else v for v in values)


def row(label: str, zero: float, big: float, unit: str, target: float | None = None) -> None:
    scale = 1000 if unit == "ms" else 1
    text = f"{label:<52} {zero * scale:9.3f} {unit:<2} {big * scale:10.3f} {unit:<2} {big / zero:6.2f}x"
    if target is not None:
        text += f"   target {target:g}x: {'OK' if big / zero <= target else 'MISS'}"
    print(text, flush=True)


def report(args: argparse.Namespace, zero: list[dict[str, Any]], big: list[dict[str, Any]]) -> None:
    print(
        f"nbhosting accounts benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {args.rounds} round(s); /etc/passwd of "
        f"{zero[0]['passwd_lines']:,} and {big[0]['passwd_lines']:,} lines (throwaway copies, private mount namespace)"
    )
    print(f"{'':<52} {'0 students':>12} {f'{args.accounts:,} students':>15} {'ratio':>7}")
    row(f"account creation alone, median of {args.creations}", *pair(zero, big, "creation"), "ms")
    row("first creation (the ledger reads the databases once)", *pair(zero, big, "first_creation"), "ms")
    row(f"find an existing student, median of {args.creations}", *pair(zero, big, "find"), "ms")
    row("  (glibc getpwnam of that student, for comparison)", *pair(zero, big, "getpwnam"), "ms")
    row(f"first open of a new student, median of {args.cold}", *pair(zero, big, "open"), "s", TARGETS["open"])
    row("  of which podman (service, create, start), median", *pair(zero, big, "ensure_running"), "s")
    row("    podman create, median", *pair(zero, big, "create"), "s")
    row("    podman start, median", *pair(zero, big, "start"), "s")
    row("    service start + first call (inspect), median", *pair(zero, big, "inspect"), "s")
    row(f"warm open, median of {args.warm}", *pair(zero, big, "warm"), "ms")
    target = TARGETS["burst"] if args.burst == 10 else None
    row(f"{args.burst} new students at once: all ready", *pair(zero, big, "burst"), "s", target)
    failures = [f for r in zero + big for f in r["failures"]]
    print(f"{'  failures':<52} {len(failures):9d}" + (f"   {failures[:3]}" if failures else ""))


def pair(zero: list[dict[str, Any]], big: list[dict[str, Any]], key: str) -> tuple[float, float]:
    return median_of(zero, key), median_of(big, key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=100_000, help="students already on the host")
    parser.add_argument("--active", type=int, default=500, help="of them, students working now (their podman runs)")
    parser.add_argument("--creations", type=int, default=30, help="accounts created alone, per size")
    parser.add_argument("--cold", type=int, default=5, help="first opens of new students, one after the other")
    parser.add_argument("--warm", type=int, default=20, help="opens of a running server")
    parser.add_argument("--burst", type=int, default=10, help="new students opening at once")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each size, interleaved")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: it makes Linux users (in a throwaway /etc) and runs rootless podman")
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args)))
        return
    room = BENCH_UID_MAX - BENCH_UID_MIN + 1 - (args.creations + args.cold + args.burst + 1)
    if not 0 <= args.accounts <= room or min(args.creations, args.cold, args.burst, args.rounds) < 1:
        sys.exit(f"--accounts must be within 0..{room}; --creations, --cold, --burst and --rounds at least 1")
    work = Path(tempfile.mkdtemp(prefix="nbh-bench-accounts-", dir="/var/tmp"))
    try:
        trees = {"zero": make_tree(work / "zero", 0, 0), "big": make_tree(work / "big", args.accounts, args.active)}
        results: dict[str, list[dict[str, Any]]] = {"zero": [], "big": []}
        for _ in range(args.rounds):
            for size, etc in trees.items():
                results[size].append(run_worker(etc, args))
        report(args, results["zero"], results["big"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
