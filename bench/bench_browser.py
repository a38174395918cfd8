"""Browser benchmark: what a student feels, nbhosting side by side with JupyterHub + DockerSpawner (issue 9).

Run as root on a host set up by `./setup.sh test` (podman, caddy, chromium, chromium-driver), under the benchmarks'
lock so that no two measurements overlap:

    flock /tmp/nbh-bench.lock /opt/nbhosting/venv/bin/python -m bench.bench_browser [--runs 3] [--quick] [--no-peer]

nbhosting: `nbh serve --demo` on free ports in a throwaway installation, HTTPS through Caddy with its certificate
trusted. The peer: JupyterHub 6.1.1 + DockerSpawner 14 + configurable-http-proxy 5.3.0 on this host's rootful
podman, plain HTTP, the same notebook image, installed into /opt/nbhosting-peer on first use (bench.peerinstall).
Both are measured in the same run, alternately, with the same headless Chromium: a new student (new profile, new
server) from the click to the notebook UI, the idle kernel and the first output of 6*7 in a new cell; the same
student returning (server up, same profile, cache warm); on the loopback and on an emulated 20 Mbit/s + 40 ms link.
Then, from each system's own API: cold start, a burst of new students, idle memory per never-used server and per
active student. Every figure is printed with its ratio to the peer's and the issue's targets. Then where the time
and the memory go: each wait's phases from Chromium's records (bench.phases), main-thread and CPU time, an active
student's PSS by process, and what a server and a kernel import (bench.imports). `--quick`: one run, loopback only.
``NBH_BENCH_EVENTS=DIR`` keeps each run's records; ``NBH_BENCH_ACCEPT_ENCODING=identity`` asks for uncompressed
answers (an experiment). Everything started is stopped and removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench import imports
from bench import peer as peermod
from bench.browser import (
    BUSY,
    LOOPBACK,
    SLOW,
    Browser,
    Link,
    Timings,
    median,
    pem_to_der,
    served_certificate,
    spki_sha256,
)
from bench.memory import composition, container_pids, container_pss_mib, uid_pids, uid_pss_mib
from bench.phases import PHASES
from bench.report import Row, render
from bench.stack import NOTEBOOK, Stack, served
from nbhosting_server.demo import DEMO_COURSE
from tests.support import built_rootfs

NBH, PEER = "nbhosting", "JupyterHub"


@dataclass
class Results:
    browser: dict[tuple[str, str, str], list[Timings]] = field(default_factory=dict)  # (system, link, new|back)
    server: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (system, figure)
    composition: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # system -> per student, by process
    notes: list[str] = field(default_factory=list)

    def add(self, key: tuple[str, str, str], timings: Timings) -> None:
        self.browser.setdefault(key, []).append(timings)
        if timings.error:
            self.notes.append(f"{' / '.join(key)}: {timings.error}")

    def values(self, key: tuple[str, str, str], what: str) -> list[float]:
        return [float(v) for t in self.browser.get(key, []) if not t.error and (v := getattr(t, what)) is not None]


# --------------------------------------------------------------------------------------------- the browser part


def trusted_spki(stack: Stack) -> list[str]:
    """SPKI hashes of what Caddy serves (the site's leaf, the servers' wildcard leaf) and of Caddy's root."""
    leaves = [
        served_certificate(stack.https_port, "localhost"),
        served_certificate(stack.https_port, f"k.{stack.servers_domain()}"),
    ]
    root = pem_to_der(stack.root_certificate().read_text())
    return sorted({spki_sha256(der) for der in [*leaves, root]})


def student_run(
    results: Results, system: str, link: Link, spki: list[str], url: str, login: Callable[..., None] | None
) -> None:
    """A new student (fresh profile) opens ``url``, then returns to it (same profile, server up)."""
    browser = Browser(link, spki).start()
    try:
        results.add((system, link.name, "new"), browser.open_and_run(url, login))
        results.add((system, link.name, "back"), browser.open_and_run(url, login))
    finally:
        browser.close()


def browser_runs(
    results: Results, stack: Stack, hub: peermod.Peer | None, links: list[Link], runs: int
) -> tuple[list[str], list[str]]:
    """Every run, the two systems alternately; the names of both systems' students (servers left running)."""
    spki = trusted_spki(stack)
    students: list[str] = []
    peer_users: list[str] = []
    for link in links:
        for i in range(runs):
            student = f"b{int(time.time())}-{i}"
            students.append(student)
            print(f"[bench] {link.name}, run {i + 1}/{runs}: {NBH}", flush=True)
            student_run(results, NBH, link, spki, stack.launch_url(student), None)
            if hub is not None:
                print(f"[bench] {link.name}, run {i + 1}/{runs}: {PEER}", flush=True)
                user = f"s{student.replace('-', 'x')}"
                peer_users.append(user)

                def login(browser: Browser, deadline: float, user: str = user) -> None:
                    assert hub is not None
                    hub.login(user, browser, deadline)

                student_run(results, PEER, link, [], hub.login_url(NOTEBOOK), login)
    return students, peer_users


# --------------------------------------------------------------------------------------------- the server part


def nbh_open(stack: Stack, context: ssl.SSLContext, student: str, timeout: float = 180) -> float:
    """A launch polled as the progress page does (``&status=1``) until the server is ready; seconds."""
    url = stack.launch_url(student) + "&status=1"
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=30, context=context) as resp:
            if json.loads(resp.read())["state"] == "ready":
                return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"{student} not ready within {timeout} s")


def burst(one: Callable[[str], float], names: list[str]) -> tuple[float, list[str]]:
    """All of ``names`` at once: seconds until the last is ready, and the failures."""
    failures: list[str] = []

    def run(name: str) -> None:
        try:
            one(name)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start, failures


def server_runs(
    results: Results,
    stack: Stack,
    hub: peermod.Peer | None,
    cold: int,
    burst_size: int,
    active: tuple[list[str], list[str]],
) -> None:
    context = ssl.create_default_context(cafile=str(stack.root_certificate()))
    stamp = int(time.time())
    # active students first: the browser runs' new students, their UI served and their kernel running
    time.sleep(8)  # students' podman API services exit after 5 idle seconds (not a server's cost)
    results.server[(NBH, "active")] = [uid_pss_mib(uid) for s in active[0] if (uid := stack.uid(s)) is not None]
    results.composition[NBH] = [composition(uid_pids(uid)) for s in active[0] if (uid := stack.uid(s)) is not None]
    if hub is not None:
        pids = [hub.container_pid(u) for u in active[1]]
        results.server[(PEER, "active")] = [container_pss_mib(p) for p in pids if p]
        results.composition[PEER] = [composition(container_pids(p)) for p in pids if p]

    students = [f"c{stamp}-{i}" for i in range(cold)]
    results.server[(NBH, "cold")] = [nbh_open(stack, context, s) for s in students]
    users = [f"c{stamp}x{i}" for i in range(cold)]
    if hub is not None:
        results.server[(PEER, "cold")] = [hub.spawn(u) for u in users]
    time.sleep(8)
    results.server[(NBH, "idle")] = [uid_pss_mib(uid) for s in students if (uid := stack.uid(s)) is not None]
    if hub is not None:
        results.server[(PEER, "idle")] = [container_pss_mib(p) for u in users if (p := hub.container_pid(u))]

    total, failures = burst(lambda s: nbh_open(stack, context, s), [f"u{stamp}-{i}" for i in range(burst_size)])
    results.server[(NBH, "burst")] = [total]
    results.notes += [f"{NBH} burst: {f}" for f in failures[:3]]
    results.server[(NBH, "burst failures")] = [float(len(failures))]
    if hub is not None:
        total, failures = burst(hub.spawn, [f"u{stamp}x{i}" for i in range(burst_size)])
        results.server[(PEER, "burst")] = [total]
        results.notes += [f"{PEER} burst: {f}" for f in failures[:3]]
        results.server[(PEER, "burst failures")] = [float(len(failures))]

    # the active students' servers once their kernels are shut down: a server that served a UI, gone idle
    try:
        for url in active_urls(results):
            stack.shut_down_kernels(url)
        if hub is not None:
            for user in active[1]:
                hub.shut_down_kernels(user)
        time.sleep(8)
        results.server[(NBH, "served idle")] = [uid_pss_mib(u) for s in active[0] if (u := stack.uid(s)) is not None]
        if hub is not None:
            results.server[(PEER, "served idle")] = [
                container_pss_mib(p) for u in active[1] if (p := hub.container_pid(u))
            ]
    except Exception as exc:  # noqa: BLE001 - the other figures stand
        results.notes.append(f"served-then-idle memory not measured: {type(exc).__name__}: {exc}")


def active_urls(results: Results) -> list[str]:
    """The notebook URLs where nbhosting's new students ended (their servers' keys)."""
    return [t.url for key, runs in results.browser.items() if key[0] == NBH and key[2] == "new" for t in runs if t.url]


# --------------------------------------------------------------------------------------------- the report


def rows(results: Results, links: list[Link], burst_size: int) -> list[Row]:
    out: list[Row] = []
    targets = {
        ("new", "output", LOOPBACK.name): 2.0,
        ("new", "output", SLOW.name): 3.0,
        ("back", "output", LOOPBACK.name): 1.2,
        ("back", "output", SLOW.name): 2.0,
    }
    for link in links:
        for kind, who in (("new", "new student"), ("back", "returning student")):
            for what, label in (
                ("ui", "click to notebook UI"),
                ("idle", "click to kernel idle"),
                ("output", "click to first output"),
            ):
                if kind == "back" and what != "output":
                    continue
                key_n, key_p = (NBH, link.name, kind), (PEER, link.name, kind)
                out.append(
                    Row(
                        f"{who}, {label}, {link.name}",
                        median(results.values(key_n, what)),
                        median(results.values(key_p, what)),
                        "s",
                        targets.get((kind, what, link.name)),
                        len(results.values(key_n, what)),
                        len(results.values(key_p, what)),
                    )
                )
            runs_n = results.browser.get((NBH, link.name, kind), [])
            runs_p = results.browser.get((PEER, link.name, kind), [])
            out.append(
                Row(
                    f"{who}, first run lost, {link.name}",
                    float(sum(t.lost for t in runs_n)),
                    float(sum(t.lost for t in runs_p)),
                    "",
                    0.0,
                    len(runs_n),
                    len(runs_p),
                    out_of=True,
                )
            )
            # the returning student's browser cache at work: what still comes from the network
            out.append(
                Row(
                    f"{who}, bytes received, {link.name}",
                    _mb(median(results.values((NBH, link.name, kind), "bytes"))),
                    _mb(median(results.values((PEER, link.name, kind), "bytes"))),
                    "MB",
                    2.0 if kind == "new" else None,
                    len(runs_n),
                    len(runs_p),
                )
            )
        new_n, new_p = (NBH, link.name, "new"), (PEER, link.name, "new")
        out.append(
            Row(
                f"responses a new student receives, {link.name}",
                median(results.values(new_n, "responses")),
                median(results.values(new_p, "responses")),
                "",
                None,
                0,
                0,
            )
        )
    server = [
        ("cold", "cold start of a new student's server (API, to ready)", "s", None),
        ("burst", f"{burst_size} new students at once: all ready", "s", None),
        ("burst failures", f"{burst_size} new students at once: failures", "", 0.0),
        ("idle", "memory per never-used server (PSS)", "MiB", None),
        ("active", "memory per active student (UI served + 1 kernel, PSS)", "MiB", 80.0),
        ("served idle", "memory per server that served a UI, kernel shut down (PSS)", "MiB", 50.0),
    ]
    for figure, label, unit, target in server:
        n, p = results.server.get((NBH, figure), []), results.server.get((PEER, figure), [])
        out.append(Row(label, median(n), median(p), unit, target, len(n), len(p)))
    return out


def phase_rows(results: Results, link: Link, kind: str) -> list[Row]:
    """Where the wait went, phase by phase (medians over the runs, each phase's own median: they need not add up)."""
    runs = {
        system: [t for t in results.browser.get((system, link.name, kind), []) if not t.error] for system in (NBH, PEER)
    }

    def row(label: str, values: dict[str, list[float]], unit: str = "s") -> Row:
        n, p = values[NBH], values[PEER]
        return Row(label, median(n), median(p), unit, None, len(n), len(p))

    out = [
        row(label, {s: [t.phases.phases[name] for t in r if name in t.phases.phases] for s, r in runs.items()})
        for name, label in PHASES
    ]
    out.append(
        row("total: click -> output seen", {s: [t.output for t in r if t.output is not None] for s, r in runs.items()})
    )
    out.append(
        row(
            "(moment) kernel websocket open, from the click",
            {s: [t.phases.websocket_open for t in r if t.phases.websocket_open is not None] for s, r in runs.items()},
        )
    )
    hops: list[str] = []
    for r in runs.values():
        for t in r:
            hops += [h for h, _ in t.phases.hops if h not in hops]
    for hop in hops:
        values = {s: [d for t in r for h, d in t.phases.hops if h == hop] for s, r in runs.items()}
        out.append(row(f"(hop) GET {hop} -> next request", values))
    for what, label in (
        ("browser", "CPU: the browser's processes"),
        ("rest", "CPU: the rest of the host (servers, proxies)"),
    ):
        out.append(row(label, {s: [t.cpu[what] for t in r if what in t.cpu] for s, r in runs.items()}))
    for metric in BUSY.values():
        values = {s: [t.main_thread[metric] for t in r if metric in t.main_thread] for s, r in runs.items()}
        out.append(row(f"main thread busy: {metric}", values))
    return out


def composition_rows(results: Results) -> list[Row]:
    """An active student's PSS by process (medians over the students; a process a student lacks counts 0)."""
    kinds: list[str] = []
    for students in results.composition.values():
        for one in students:
            kinds += [k for k in one if k not in kinds]
    out = []
    for name in sorted(kinds, key=lambda k: -(median([o.get(k, 0.0) for o in results.composition.get(NBH, [])]) or 0)):
        n = [o.get(name, 0.0) for o in results.composition.get(NBH, [])]
        p = [o.get(name, 0.0) for o in results.composition.get(PEER, [])]
        out.append(Row(name, median(n), median(p), "MiB", None, len(n), len(p)))
    return out


def import_table(title: str, weights: list[imports.Weight], top: int = 12) -> str:
    lines = [f"| {title}: top-level package | RSS it adds | its own import time |", "| --- | --- | --- |"]
    for w in weights[:top]:
        lines.append(f"| {w.package} | {w.mib:.1f} MiB | {w.seconds:.3f} s |")
    rest = weights[top:]
    lines.append(f"| {len(rest)} others | {sum(w.mib for w in rest):.1f} MiB | {sum(w.seconds for w in rest):.3f} s |")
    lines.append(f"| all | {sum(w.mib for w in weights):.1f} MiB | {sum(w.seconds for w in weights):.3f} s |")
    return "\n".join(lines)


def _mb(value: float | None) -> float | None:
    return None if value is None else value / 1e6


# --------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="students per system and link (medians over them)")
    parser.add_argument("--quick", action="store_true", help="one run, loopback only, 2 cold starts, a burst of 5")
    parser.add_argument("--no-peer", action="store_true", help="nbhosting alone (no ratios)")
    parser.add_argument("--cold", type=int, default=3, help="cold starts through each system's API")
    parser.add_argument("--burst", type=int, default=10, help="new students at once through each system's API")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.cold, args.burst = 1, 2, 5
    links = [LOOPBACK] if args.quick else [LOOPBACK, SLOW]

    def interrupted(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds every context: the stacks are stopped and removed

    signal.signal(signal.SIGTERM, interrupted)
    results = Results()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="nbh-bench-browser-", dir="/tmp") as logs, served(Path(logs)) as stack:
        course = stack.settings.courses_dir / DEMO_COURSE
        try:
            with ExitStack() as contexts:
                hub = None if args.no_peer else contexts.enter_context(peermod.running(built_rootfs(), course))
                active = browser_runs(results, stack, hub, links, args.runs)
                server_runs(results, stack, hub, args.cold, args.burst, active)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - what was measured is still printed
            results.notes.append(f"run cut short: {type(exc).__name__}: {exc}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nbrowser benchmark, {started}, {args.runs} run(s) per system and link; medians (runs counted)")
    print(f"host load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} cores\n")
    print(render(rows(results, links, args.burst), NBH, PEER))
    for link in links:
        for kind, who in (("new", "a new student"), ("back", "a returning student")):
            print(f"\nwhere the wait goes, {who}, {link.name} (Chromium's records; medians, phase by phase)\n")
            print(render(phase_rows(results, link, kind), NBH, PEER))
    if results.composition:
        print("\nan active student's memory by process (PSS, medians over the students)\n")
        print(render(composition_rows(results), NBH, PEER))
    try:
        rootfs = built_rootfs()
        for title, modules in (("server", imports.SERVER), ("kernel", imports.KERNEL)):
            print(f"\nwhat a {title} imports, in the image (python -X importtime and RSS growth, chroot)\n")
            print(import_table(title, imports.weights(rootfs, modules)))
    except Exception as exc:  # noqa: BLE001 - the rest is printed
        results.notes.append(f"import weights not measured: {type(exc).__name__}: {exc}")
    for note in results.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
