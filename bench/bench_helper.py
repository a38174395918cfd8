"""What the privilege split costs a launch: the app's hop to the privileged helper, measured against the hub in
the same process, on the same host, minutes apart (real rootless podman, the real notebook image).

Run as root on a host set up by `./setup.sh test`:

    /opt/nbhosting/venv/bin/python -m bench.bench_helper [--cold 5] [--warm 200]

Warm opens (the server runs) show the hop: one Unix-socket connection, two JSON lines, a thread of the helper's
pool. Cold opens (a new student: account, copy, container, Jupyter) show whether the hop is measurable there.
Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

from nbhosting_core import Hub, ensure_layout
from nbhosting_core.helper import HelperClient, HelperServer
from nbhosting_core.helper.server import bind_socket
from nbhosting_core.launcher import Launcher
from nbhosting_server.demo import ensure_demo_course
from tests.support import built_rootfs, installation

NOTEBOOK = ("demo", "01-welcome.ipynb")


def open_ready(launcher: Launcher, hub: Hub, student: str) -> float:
    """Seconds from the launch to Jupyter answering, the progress page's polls going through ``launcher``."""
    start = time.perf_counter()
    launch = launcher.open_notebook(*NOTEBOOK, student)
    while launch.state.value != "ready":
        time.sleep(hub.settings.ready_poll_interval)
        launch = launcher.launch_status(*NOTEBOOK, student)
    return time.perf_counter() - start


def warm(launcher: Launcher, student: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        launcher.open_notebook(*NOTEBOOK, student)
        times.append(time.perf_counter() - start)
    return times


def row(label: str, direct: float, hop: float, unit: str = "ms", scale: float = 1000) -> None:
    print(
        f"{label:<34} in process {direct * scale:8.2f} {unit}   through the helper {hop * scale:8.2f} {unit}"
        f"   hop {(hop - direct) * scale:+7.2f} {unit} ({hop / direct:.2f}x)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=5, help="cold opens (new students), each way")
    parser.add_argument("--warm", type=int, default=200, help="warm opens of a running server, each way")
    args = parser.parse_args()
    with installation(built_rootfs()) as settings:
        ensure_layout(settings)
        ensure_demo_course(settings.courses_dir)
        hub = Hub(settings)
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        sock = bind_socket(settings.helper_socket, None)
        server = HelperServer(
            hub, allowed=frozenset({0}), workers=settings.helper_workers, timeout=settings.helper_timeout
        )
        thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(sock, stop),), daemon=True)
        thread.start()
        client = HelperClient(settings.helper_socket, timeout=settings.helper_timeout + 5)
        print(f"nbhosting helper hop benchmark, {time.strftime('%Y-%m-%d %H:%M')}, rootfs {settings.image_rootfs}")
        try:
            # alternate the two ways, so that a drift of the host (caches, load) weighs on both alike
            cold_direct, cold_hop = [], []
            for i in range(args.cold):
                cold_direct.append(open_ready(hub, hub, f"bench-hop-direct-{i}"))
                cold_hop.append(open_ready(client, hub, f"bench-hop-helper-{i}"))
            row(
                f"cold open, median of {args.cold}", statistics.median(cold_direct), statistics.median(cold_hop), "s", 1
            )
            direct = warm(hub, "bench-hop-direct-0", args.warm)
            hop = warm(client, "bench-hop-direct-0", args.warm)
            row(f"warm open, median of {args.warm}", statistics.median(direct), statistics.median(hop))
            row("warm open, p95", sorted(direct)[int(0.95 * len(direct))], sorted(hop)[int(0.95 * len(hop))])
            pings = []
            for _ in range(args.warm):
                start = time.perf_counter()
                client.ping()
                pings.append(time.perf_counter() - start)
            print(f"{'the hop alone (ping), median':<34} {statistics.median(pings) * 1000:8.2f} ms", flush=True)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)


if __name__ == "__main__":
    main()
