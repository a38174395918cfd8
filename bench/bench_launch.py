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

from nbhosting_core import Hub, Settings, ensure_layout, signed_launch_path
from nbhosting_core.platforms import load_platforms
from nbhosting_server import create_app
from nbhosting_server.demo import DEMO_PLATFORM, ensure_demo_course, ensure_demo_platform
from tests.support import built_rootfs, installation

NOTEBOOK = ("demo", "01-welcome.ipynb")
TARGETS = {"cold_median": 1.5, "burst10": 14.0, "warm_median": 0.050, "idle_pss_mib": 100.0}
#: the door's settings a lecture runs with: their defaults (the tests' installation relaxes them)
DOOR_DEFAULTS = ("max_running", "creation_platform_burst", "creation_client_burst")
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


def lecture(n: int, door: dict[str, object]) -> None:
    """``n`` new students open the same notebook at once, as a lecture starts: through the app (HTTP, uvicorn)
    and the privileged helper, all from one client address (a classroom behind one NAT) and one platform, each
    student's browser doing what the progress page does (poll every 150 ms, follow a busy page's Retry-After).

    Prints when each student got their first page (the progress page, or a busy one), when all were ready,
    the failures, and how many were shown a busy page. ``door``: the door's settings for this run (the
    defaults, unless overridden).
    """
    import asyncio
    import http.client
    import json

    import uvicorn

    from nbhosting_core.gate import Gate
    from nbhosting_core.helper import HelperClient, HelperServer
    from nbhosting_core.helper.server import bind_socket
    from tests.support import free_port

    with installation(built_rootfs(), podman_service_idle=5, **door) as settings:
        ensure_layout(settings)
        ensure_demo_course(settings.courses_dir)
        ensure_demo_platform(settings.effective_platforms_file)
        platform = load_platforms(settings.effective_platforms_file).get(DEMO_PLATFORM)
        assert platform is not None
        hub = Hub(settings)
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        helper = HelperServer(
            hub, allowed=frozenset({0}), workers=settings.helper_workers, timeout=settings.helper_timeout
        )
        sock = bind_socket(settings.helper_socket, None)
        threading.Thread(target=loop.run_until_complete, args=(helper.serve(sock, stop),), daemon=True).start()
        client = HelperClient(settings.helper_socket, timeout=settings.helper_timeout + 5)
        app = create_app(settings, launcher=client, gate=Gate.of(hub))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", workers=1))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        print(
            f"lecture: {n} new students at once through the app and the helper ({settings.helper_workers} workers), "
            f"one platform, one client address; door: cap {hub.throttle.max_running}, platform burst "
            f"{settings.creation_platform_burst}, client burst {settings.creation_client_burst}",
            flush=True,
        )
        first: list[float] = []
        ready: list[float] = []
        busy_shown: list[str] = []
        failures: list[str] = []

        def get(path: str, accept: str = "text/html") -> tuple[int, bytes, dict[str, str]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                conn.request("GET", path, headers={"Accept": accept})
                response = conn.getresponse()
                return response.status, response.read(), dict(response.getheaders())
            finally:
                conn.close()

        def student(i: int, start: float) -> None:
            url = signed_launch_path(platform, *NOTEBOOK, f"lecture-{i}", int(time.time()) + 3600)
            try:
                while True:
                    status, body, headers = get(url)
                    if status == 503:  # the busy page: it launches again by itself after Retry-After
                        busy_shown.append(f"{i}")
                        time.sleep(float(headers.get("retry-after", "1")))
                        continue
                    break
                shown = time.perf_counter() - start
                first.append(shown)
                if status == 302:
                    ready.append(time.perf_counter() - start)
                    return
                assert status == 200, (status, body[:300])
                follow = json.loads(body.decode().split("var launch = ", 1)[1].split(", started", 1)[0])
                while True:
                    status, body, headers = get(follow + "&status=1", "application/json")
                    data = json.loads(body)
                    if data.get("state") == "ready":
                        ready.append(time.perf_counter() - start)
                        return
                    if status == 503 and data.get("state") == "busy":
                        busy_shown.append(f"{i} (poll)")
                        time.sleep(float(data.get("retry_after") or 1))
                        continue
                    assert status < 400, (status, data)
                    time.sleep(0.15 if time.perf_counter() - start - shown < 3 else 1.0)  # as the page does
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"{i}: {type(exc).__name__}: {exc}"[:300])

        start = time.perf_counter()
        threads = [threading.Thread(target=student, args=(i, start), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.perf_counter() - start
        line(f"lecture of {n}: first page, median", statistics.median(first) if first else 0.0, "s")
        line(f"lecture of {n}: first page, max", max(first) if first else 0.0, "s")
        line(f"lecture of {n}: ready, median", statistics.median(ready) if ready else 0.0, "s")
        line(f"lecture of {n}: all ready", total, "s", 35.0 if n == 100 else None)
        print(f"{'   failures':<38} {len(failures):8d}" + (f"   {failures[:3]}" if failures else ""))
        print(f"{'   shown a busy page':<38} {len(set(b.split()[0] for b in busy_shown)):8d}", flush=True)
        server.should_exit = True
        loop.call_soon_threadsafe(stop.set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=5, help="sequential cold opens (new students)")
    parser.add_argument("--warm", type=int, default=50, help="warm opens of a running container")
    parser.add_argument("--burst", type=int, default=10, help="new students opening at once")
    parser.add_argument("--lecture", type=int, default=0, help="new students at once through the app and helper")
    parser.add_argument("--lecture-only", action="store_true", help="only the lecture (--lecture N)")
    parser.add_argument("--door", action="append", default=[], help="NAME=VALUE: a door setting for the lecture")
    args = parser.parse_args()
    if args.lecture:
        door = {name: Settings.model_fields[name].default for name in DOOR_DEFAULTS}  # the defaults, not the tests'
        door.update((k, float(v) if "." in v else int(v)) for k, v in (item.split("=", 1) for item in args.door))
        if args.lecture_only:
            lecture(args.lecture, door)
            return
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
    if args.lecture:
        lecture(args.lecture, door)


if __name__ == "__main__":
    main()
