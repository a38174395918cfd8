"""Launch benchmark: cold open, warm open, a burst of new students, idle memory per container.

Run as root on a host set up by `./setup.sh test` (real rootless podman, the real notebook image):

    /opt/nbhosting/venv/bin/python -m bench.bench_launch [--cold 5] [--burst 10] [--warm 50]

It prints figures and their ratio to the targets of issue #2 and to JupyterHub 6.1 + DockerSpawner
measured on the same kind of 2-core host. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import threading
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient

from nbhosting_core import Hub, ensure_layout, signed_launch_path
from nbhosting_core.platforms import load_platforms
from nbhosting_server import create_app
from nbhosting_server.demo import DEMO_PLATFORM, ensure_demo_course, ensure_demo_platform
from tests.support import built_rootfs, installation

NOTEBOOK = ("demo", "01-welcome.ipynb")
TARGETS = {"cold_median": 1.5, "burst10": 14.0, "warm_median": 0.050, "idle_pss_mib": 100.0}
PEER = {"cold_median": (2.6 + 3.8) / 2, "burst10": 20.0, "idle_pss_mib": (112 + 133) / 2}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed_open(hub: Hub, student: str) -> float:
    """Seconds from the launch to Jupyter answering (what a student's first request waits for)."""
    start = time.perf_counter()
    hub.wait_ready(hub.open_notebook(*NOTEBOOK, student))
    return time.perf_counter() - start


def pss_mib(uid: int) -> dict[str, float]:
    """PSS of every process of ``uid``, grouped by command name."""
    pids = subprocess.run(["pgrep", "-U", str(uid)], capture_output=True, text=True).stdout.split()
    totals: dict[str, float] = {}
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        kib = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        totals[name] = totals.get(name, 0.0) + kib / 1024
    return totals


def line(label: str, value: float, unit: str, target: float | None = None, peer: float | None = None) -> None:
    text = f"{label:<38} {value:8.3f} {unit}"
    if target is not None:
        text += f"   target {target:g} {unit}: {'OK ' if value <= target else 'MISS'} ({value / target:.2f}x)"
    if peer is not None:
        text += f"   vs JupyterHub {peer:g} {unit}: {value / peer:.2f}x"
    print(text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=5, help="sequential cold opens (new students)")
    parser.add_argument("--warm", type=int, default=50, help="warm opens of a running container")
    parser.add_argument("--burst", type=int, default=10, help="new students opening at once")
    args = parser.parse_args()
    with installation(built_rootfs(), podman_service_idle=5) as settings:
        ensure_layout(settings)
        ensure_demo_course(settings.courses_dir)
        hub = Hub(settings)
        print(f"nbhosting launch benchmark, {time.strftime('%Y-%m-%d %H:%M')}, rootfs {settings.image_rootfs}")

        cold = [timed_open(hub, f"bench-cold-{i}") for i in range(args.cold)]
        line(
            f"cold open, median of {args.cold}",
            statistics.median(cold),
            "s",
            TARGETS["cold_median"],
            PEER["cold_median"],
        )
        line(f"cold open, p95 of {args.cold}", pct(cold, 0.95), "s")
        line("cold open, max", max(cold), "s")

        warm = [timed_open(hub, "bench-cold-0") for _ in range(args.warm)]
        line(f"warm open (same process), median of {args.warm}", statistics.median(warm), "s", TARGETS["warm_median"])
        line("warm open (same process), p95", pct(warm, 0.95), "s")
        fresh = [timed_open(Hub(settings), "bench-cold-0") for _ in range(10)]
        line("warm open (new process, run record in RUN_DIR)", statistics.median(fresh), "s")
        # over HTTP, a launch signed by the demo platform: its student is nbhosting's "demo:bench-http"
        ensure_demo_platform(settings.effective_platforms_file)
        platform = load_platforms(settings.effective_platforms_file).get(DEMO_PLATFORM)
        assert platform is not None
        timed_open(hub, f"{DEMO_PLATFORM}:bench-http")  # running: what follows measures warm opens
        client = TestClient(create_app(hub=hub), base_url="https://bench")
        url = signed_launch_path(platform, *NOTEBOOK, "bench-http", int(time.time()) + 3600)
        http = []
        for _ in range(args.warm):
            start = time.perf_counter()
            response = client.get(url, follow_redirects=False)
            http.append(time.perf_counter() - start)
            assert response.status_code == 302, response.status_code
        line("warm open (HTTP 302 from the app), median", statistics.median(http), "s", TARGETS["warm_median"])

        results: list[float] = []
        failures: list[str] = []

        def one(i: int) -> None:
            try:
                results.append(timed_open(hub, f"bench-burst-{i}"))
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.burst)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.perf_counter() - start
        line(
            f"{args.burst} new students at once: all ready",
            total,
            "s",
            TARGETS["burst10"] if args.burst == 10 else None,
            PEER["burst10"] if args.burst == 10 else None,
        )
        print(f"{'   failures':<38} {len(failures):8d}" + (f"   {failures[:3]}" if failures else ""))

        time.sleep(8)  # let the podman API services exit (podman_service_idle=5) and Jupyter settle
        for record in settings.running_dir.glob("*.json"):
            record.unlink()  # run records lost: the next open asks podman (whose service has exited)
        after_idle = [timed_open(Hub(settings), f"bench-cold-{i}") for i in range(args.cold)]
        line("warm open (no run record: podman service restarted)", statistics.median(after_idle), "s")
        time.sleep(8)
        per_container = []
        for i in range(args.cold):
            account = hub.accounts.find(f"bench-cold-{i}")
            assert account is not None
            per_container.append(pss_mib(account.uid))
        totals = [sum(m.values()) for m in per_container]
        line(
            "idle memory per container (PSS, all)",
            statistics.median(totals),
            "MiB",
            TARGETS["idle_pss_mib"],
            PEER["idle_pss_mib"],
        )
        names = sorted({n for m in per_container for n in m})
        for name in names:
            line(f"   of which {name}", statistics.median([m.get(name, 0.0) for m in per_container]), "MiB")


if __name__ == "__main__":
    main()
