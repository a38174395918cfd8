"""Memory benchmark: what one student's server costs, per process, through a session's life.

Run as root on a host set up by `./setup.sh test` (real rootless podman, the real notebook image, chromium):

    /opt/nbhosting/venv/bin/python -m bench.bench_memory [--students 3] [--env NAME=VALUE ...]

For each of ``--students`` new students (one server each, opened one after the other), PSS (proportional set
size: shared pages divided among their users) of every process of the student, grouped (jupyter-server, kernel,
conmon, tini, pause, podman), at four moments:

* ``never used``: Jupyter answers, nobody opened anything;
* ``UI served``: headless Chromium opened the notebook (the page, its static assets, its API calls, the kernel
  the notebook starts), and the kernel ran ``6*7``;
* ``UI closed, kernel gone``: the browser left, the kernel was shut down (as Jupyter's culler would);
* ``UI served again``: a second visit (a returning student), to see whether what the first visit grew is kept
  or grown again.

Chromium reaches Jupyter through a plain TCP relay to the server's socket (the token in the first URL, as
Jupyter allows): no Caddy, no app, so the figures are Jupyter's alone. ``--env`` adds variables to every
server's environment (kernels inherit them): how malloc levers are weighed before they go into the image.
``--smaps`` prints, for the jupyter-server, where its PSS grew (anonymous memory, the heap, files by name).
Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbhosting_core import Hub, Settings, containers, ensure_layout
from nbhosting_core.system import podman as podman_backend
from nbhosting_core.tokens import jupyter_token
from nbhosting_server.demo import ensure_demo_course
from tests.e2e.conftest import chromium
from tests.support import Kernel, built_rootfs, installation, jupyter_call

NOTEBOOK = ("demo", "01-welcome.ipynb")
#: the issue's targets (MiB, PSS): an active student (server after a UI + one kernel), a server idle again
TARGETS = {"active": 80.0, "idle_after_ui": 50.0}
PEER = {"never_used": 96.5, "active": 160.8}  # JupyterHub 6.1 + DockerSpawner, same host (HOST-NOTES)
SETTLE = 3.0  # seconds after each step before reading /proc: let Jupyter finish what the step started


# ------------------------------------------------------------------------------------------- reading /proc


def group_of(pid: str) -> str:
    """The process's part in a server: jupyter-server, kernel, conmon, tini, pause, podman, or its name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
    text = b" ".join(argv).decode(errors="replace")
    if "ipykernel" in text:
        return "kernel"
    if "jupyter-server" in text or "jupyter_server" in text:
        return "jupyter-server"
    return name


def pids_of(uid: int) -> list[str]:
    return subprocess.run(["pgrep", "-U", str(uid)], capture_output=True, text=True).stdout.split()


def pss(uid: int) -> dict[str, float]:
    """MiB of PSS of every process of ``uid``, by group."""
    totals: dict[str, float] = {}
    for pid in pids_of(uid):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        kib = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        group = group_of(pid)
        totals[group] = totals.get(group, 0.0) + kib / 1024
    return totals


def smaps_by_mapping(pid: str) -> dict[str, float]:
    """MiB of PSS of one process, by mapping: [heap], [anon], or the file's name."""
    out: dict[str, float] = {}
    current = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            current = head[5] if len(head) > 5 else "[anon]"
            current = current.rsplit("/", 1)[-1]
        elif line.startswith("Pss:"):
            out[current] = out.get(current, 0.0) + int(head[1]) / 1024
    return out


def server_pid(uid: int) -> str | None:
    return next((p for p in pids_of(uid) if group_of(p) == "jupyter-server"), None)


#: ``--trace``: a sitecustomize the servers import (from a read-only folder of the course: ``data/``), which starts
#: tracemalloc in the jupyter-server and, at each SIGUSR2, compares a snapshot with the previous one
TRACE_DIR = "nbh-bench-trace"
SITECUSTOMIZE = """
import os, sys
if os.environ.get("NBH_BENCH_TRACE") and os.path.basename(sys.argv[0]).startswith("jupyter-server"):
    import signal, tracemalloc
    tracemalloc.start(12)
    _snaps = []

    def _dump(signum, frame):
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        _snaps.append((snap, set(sys.modules)))
        if len(_snaps) < 2:
            return
        (old, old_mods), (new, new_mods) = _snaps[-2], _snaps[-1]
        with open("/tmp/nbh-bench-trace.part", "w") as out:
            for key in ("filename", "traceback"):
                out.write(f"--- growth by {key}\\n")
                for stat in new.compare_to(old, key)[: 25 if key == "filename" else 8]:
                    out.write(f"{stat.size_diff / 2**20:+7.2f} MiB {stat.count_diff:+7d} blocks ")
                    out.write("  <  ".join(str(f) for f in stat.traceback.format()[-12:][::-2]) + "\\n")
            added = sorted(new_mods - old_mods)
            out.write(f"--- {len(added)} modules imported: {' '.join(added)}\\n")
        os.rename("/tmp/nbh-bench-trace.part", "/tmp/nbh-bench-trace.txt")

    signal.signal(signal.SIGUSR2, _dump)
"""


def install_trace(courses_dir: Path) -> dict[str, str]:
    """What ``--trace`` needs: the sitecustomize in the demo course's ``data/``, the servers' environment."""
    folder = courses_dir / NOTEBOOK[0] / "data" / TRACE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    for path in (folder.parent, folder, folder / "sitecustomize.py"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return {"PYTHONPATH": f"/home/student/data/{TRACE_DIR}", "NBH_BENCH_TRACE": "1"}


def trace_mark(uid: int) -> None:
    pid = server_pid(uid)
    assert pid is not None
    os.kill(int(pid), signal.SIGUSR2)
    time.sleep(3)


def trace_report(uid: int) -> str:
    """The comparison of the last two snapshots (a snapshot of a traced server takes a while: waited for)."""
    report = Path(f"/proc/{server_pid(uid)}/root/tmp/nbh-bench-trace.txt")
    deadline = time.monotonic() + 300
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(2)
    return report.read_text()


# ------------------------------------------------------------------------------------ reaching the server


@contextlib.contextmanager
def relay(unix_path: Path) -> Iterator[int]:
    """A TCP port on the loopback whose every connection is relayed to ``unix_path`` (byte for byte)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(str(unix_path))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()


def visit_ui(settings: Settings, secret: bytes, port: int, key: str, notebook: str) -> None:
    """Open the notebook in Chromium, wait for its kernel to be idle, run ``6*7`` in that kernel, leave."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    token = jupyter_token(secret, key)
    with chromium("nbh-bench-chromium-", page_load_timeout=300) as browser:  # its profile goes with it
        browser.get(f"http://127.0.0.1:{port}/nb/{key}/notebooks/{notebook}?token={token}")

        def idle(b: Any) -> bool:
            return bool(b.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"))

        WebDriverWait(browser, 60, poll_frequency=0.1).until(idle)

        def kernels() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = json.loads(jupyter_call(settings, secret, key, "GET", "api/kernels")[1])
            return found

        WebDriverWait(browser, 60, poll_frequency=0.1).until(lambda _: kernels())
        # the notebook's kernel runs a cell, the page still open (its output also goes to the browser)
        kernel_id = kernels()[0]["id"]
        result = Kernel(settings, secret, key, kernel_id).run("6*7")
        assert result["status"] == "ok", result
        time.sleep(1.0)


# ---------------------------------------------------------------------------------------------- the run


def with_env(extra: dict[str, str]) -> None:
    """Every server created from now on gets ``extra`` in its environment (a benchmark's knob only)."""
    if not extra:
        return
    original = containers.container_spec

    def spec(*args: Any, **kwargs: Any) -> dict[str, Any]:
        made = original(*args, **kwargs)
        made["env"].update(extra)
        return made

    setattr(podman_backend, "container_spec", spec)  # noqa: B010 - the backend's own reference is replaced


def fmt(figures: dict[str, float]) -> str:
    order = ["jupyter-server", "kernel", "conmon", "tini", "catatonit", "podman"]
    names = [n for n in order if n in figures] + sorted(n for n in figures if n not in order)
    return "  ".join(f"{n} {figures[n]:6.1f}" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=3, help="servers measured (medians are printed)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for every server (repeatable)")
    parser.add_argument("--smaps", action="store_true", help="where the jupyter-server's PSS grew, by mapping")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the server: what the first UI left")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    moments = ["never used", "UI served", "UI closed, kernel gone", "UI served again"]
    results: dict[str, list[dict[str, float]]] = {m: [] for m in moments}
    with installation(built_rootfs(), podman_service_idle=2) as settings:
        ensure_layout(settings)
        ensure_demo_course(settings.courses_dir)
        if args.trace:
            extra.update(install_trace(settings.courses_dir))
        with_env(extra)
        hub = Hub(settings)
        print(f"nbhosting memory benchmark, {time.strftime('%Y-%m-%d %H:%M')}, rootfs {settings.image_rootfs}")
        if extra:
            print(f"servers' extra environment: {extra}")
        launches = [hub.wait_ready(hub.open_notebook(*NOTEBOOK, f"bench-mem-{i}")) for i in range(args.students)]
        # every server in the same state at each moment: they share the rootfs's pages as a host's servers do
        time.sleep(SETTLE + 2)  # the podman services exit (podman_service_idle=2)
        results["never used"] = [pss(launch.uid) for launch in launches]
        before = [smaps_by_mapping(server_pid(launch.uid) or "self") for launch in launches]
        with contextlib.ExitStack() as stack:
            ports = [
                stack.enter_context(relay(settings.jupyter_sockets_dir / launch.key / "jupyter.sock"))
                for launch in launches
            ]
            if args.trace:
                trace_mark(launches[0].uid)
            for launch, port in zip(launches, ports, strict=True):
                visit_ui(settings, hub.secret, port, launch.key, launch.notebook)
            time.sleep(SETTLE)
            if args.trace:
                trace_mark(launches[0].uid)
                print(trace_report(launches[0].uid))
            results["UI served"] = [pss(launch.uid) for launch in launches]
            after = [smaps_by_mapping(server_pid(launch.uid) or "self") for launch in launches]
            for launch in launches:
                for kernel in json.loads(jupyter_call(settings, hub.secret, launch.key, "GET", "api/kernels")[1]):
                    jupyter_call(settings, hub.secret, launch.key, "DELETE", f"api/kernels/{kernel['id']}")
            time.sleep(SETTLE)
            results["UI closed, kernel gone"] = [pss(launch.uid) for launch in launches]
            for launch, port in zip(launches, ports, strict=True):
                visit_ui(settings, hub.secret, port, launch.key, launch.notebook)
            time.sleep(SETTLE)
            results["UI served again"] = [pss(launch.uid) for launch in launches]
        for i in range(args.students):
            for moment in moments:
                figures = results[moment][i]
                print(f"student {i} {moment:<24} {sum(figures.values()):6.1f} MiB: {fmt(figures)}", flush=True)
            if args.smaps:
                grown = {k: after[i].get(k, 0.0) - before[i].get(k, 0.0) for k in set(before[i]) | set(after[i])}
                top = sorted(grown.items(), key=lambda kv: -abs(kv[1]))[:12]
                print("   jupyter-server PSS growth by mapping (MiB): " + ", ".join(f"{k} {v:+.1f}" for k, v in top))
        print(f"\nmedians over {args.students} servers (MiB of PSS)")
        for moment in moments:
            rows = results[moment]
            groups = sorted({g for r in rows for g in r})
            medians = {g: statistics.median([r.get(g, 0.0) for r in rows]) for g in groups}
            total = statistics.median([sum(r.values()) for r in rows])
            print(f"{moment:<24} {total:6.1f}   {fmt(medians)}")
        server_only = {m: statistics.median([r.get("jupyter-server", 0.0) for r in results[m]]) for m in moments}
        active = statistics.median([r.get("jupyter-server", 0.0) + r.get("kernel", 0.0) for r in results["UI served"]])
        print(
            f"\nactive student (jupyter-server + kernel, UI served): {active:6.1f} MiB   "
            f"target {TARGETS['active']:g}: {'OK' if active <= TARGETS['active'] else 'MISS'}"
        )
        idle = server_only["UI closed, kernel gone"]
        print(
            f"jupyter-server idle after a UI:                   {idle:6.1f} MiB   "
            f"target {TARGETS['idle_after_ui']:g}: {'OK' if idle <= TARGETS['idle_after_ui'] else 'MISS'}"
        )
        print(f"jupyter-server never used:                        {server_only['never used']:6.1f} MiB")


if __name__ == "__main__":
    main()
