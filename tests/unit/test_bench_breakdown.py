"""The browser benchmark's breakdown (pure parts): a run's phases from Chromium's network records, the main
thread's busy time, an active student's processes by kind, and ``python -X importtime``'s lines."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from bench.browser import busy, cpu_seconds, host_busy_seconds
from bench.imports import parse_importtime
from bench.memory import kind
from bench.phases import breakdown

CLICK = 1000.0  # the click's wall-clock time; Chromium's monotonic clock is 900 s behind the wall clock here


def request(rid: str, ts: float, url: str, kind: str = "Document") -> dict[str, Any]:
    params = {"requestId": rid, "timestamp": ts, "wallTime": ts + 900.0, "type": kind, "request": {"url": url}}
    return {"method": "Network.requestWillBeSent", "params": params}


def event(method: str, rid: str, ts: float, **params: Any) -> dict[str, Any]:
    return {"method": f"Network.{method}", "params": {"requestId": rid, "timestamp": ts, **params}}


def frame(method: str, ts: float, text: bytes) -> dict[str, Any]:
    payload = {"opcode": 2, "payloadData": base64.b64encode(text).decode()}
    return event(method, "ws", ts, response=payload)


def returning_student() -> list[dict[str, Any]]:
    """A launch (302), a ticket (302), the notebook, a script, the kernel's websocket and one execution."""
    return [
        request("d1", 100.02, "https://localhost/notebookLazyCopy/demo/n.ipynb/s?sig=x"),
        request("d1", 100.10, "https://k.nb.localhost/_nbh/ticket?t=secret"),
        request("d1", 100.13, "https://k.nb.localhost/nb/k/notebooks/n.ipynb"),
        event("loadingFinished", "d1", 100.20),
        request("s1", 100.21, "https://k.nb.localhost/static/main.js", "Script"),
        event("loadingFinished", "s1", 100.40),
        {
            "method": "Network.webSocketCreated",
            "params": {"requestId": "ws", "url": "wss://k/nb/k/api/kernels/1/channels"},
        },
        event("webSocketHandshakeResponseReceived", "ws", 100.65),
        frame("webSocketFrameSent", 101.00, b'{"msg_type":"execute_request"}'),
        frame("webSocketFrameReceived", 101.05, b'{"msg_type":"status"}'),
        frame("webSocketFrameReceived", 101.10, b'{"msg_type":"execute_result"}'),
    ]


def test_each_phase_is_the_time_between_two_moments_of_the_run_on_the_clicks_clock() -> None:
    found = breakdown(returning_student(), CLICK, ui=0.5, idle=0.8, output=1.2)
    expected = {
        "click": 0.02,  # Chromium's first request, 900 s + 100.02 s = 1000.02 s on the wall clock
        "before": 0.0,  # the notebook's redirect chain is the click's own request: no progress page
        "hops": 0.11,
        "html": 0.07,
        "assets": 0.20,
        "render": 0.10,
        "kernel": 0.30,
        "typing": 0.20,
        "execute": 0.10,
        "shown": 0.10,
    }
    assert found.phases.keys() == expected.keys()
    for name, seconds in expected.items():
        assert abs(found.phases[name] - seconds) < 1e-6, name


def test_the_hops_are_named_by_their_path_never_their_query_and_timed_to_the_next_request() -> None:
    hops = breakdown(returning_student(), CLICK, 0.5, 0.8, 1.2).hops
    assert [h for h, _ in hops] == ["/notebookLazyCopy/…", "/_nbh/ticket"]
    assert [round(d, 6) for _, d in hops] == [0.08, 0.03]


def test_a_progress_page_before_the_notebooks_navigation_is_its_own_phase() -> None:
    events = [
        request("p", 100.0, "https://localhost/notebookLazyCopy/demo/n.ipynb/s?sig=x"),
        request("x", 100.3, "https://localhost/notebookLazyCopy/demo/n.ipynb/s?status=1", "XHR"),
        *returning_student()[1:],
    ]
    events[2] = request("d1", 101.0, "https://k.nb.localhost/_nbh/ticket?t=secret")
    found = breakdown(events, CLICK, ui=2.0, idle=2.1, output=2.2)
    assert round(found.phases["before"], 6) == 1.0
    assert found.websocket_open is not None and round(found.websocket_open, 6) == 0.65


def test_the_last_execute_request_is_timed_when_a_first_run_was_lost() -> None:
    events = returning_student()
    events.insert(8, frame("webSocketFrameSent", 100.70, b'{"msg_type":"execute_request"}'))
    assert round(breakdown(events, CLICK, 0.5, 0.8, 1.2).phases["execute"], 6) == 0.10


def test_no_record_no_phase() -> None:
    assert breakdown([], CLICK, 0.5, 0.8, 1.2).phases == {}


def test_main_thread_time_is_the_counters_growth_or_a_new_renderers_own_counters() -> None:
    assert busy({"ScriptDuration": 1.0}, {"ScriptDuration": 1.5, "TaskDuration": 2.0}) == {
        "script": 0.5,
        "all tasks": 2.0,
    }
    assert busy({"ScriptDuration": 3.0}, {"ScriptDuration": 1.2}) == {"script": 1.2}


def test_a_students_processes_are_named_by_what_they_are() -> None:
    assert kind("python3", ["/opt/jupyter/bin/python", "-m", "ipykernel_launcher", "-f", "k.json"]) == (
        "kernel (ipykernel)"
    )
    assert kind("jupyter-server", ["/opt/jupyter/bin/python", "/opt/jupyter/bin/jupyter-server"]) == "Jupyter server"
    assert kind("python3", ["python", "/usr/local/bin/jupyterhub-singleuser"]) == "Jupyter server"
    assert kind("conmon", ["/usr/bin/conmon", "--api-version", "1"]) == "conmon"
    assert kind("catatonit", ["catatonit", "-P"]) == "catatonit (podman's pause / init)"


def test_importtime_lines_give_the_modules_in_the_order_they_finished_and_each_packages_own_seconds() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |   tornado.escape",
            "import time:      2000 |       2100 | tornado",
            "import time:       500 |       2600 |     jupyter_server.base",
            "import time:       300 |       2900 | jupyter_server",
            "not an importtime line",
        ]
    )
    order, own = parse_importtime(stderr)
    assert order == ["tornado.escape", "tornado", "jupyter_server.base", "jupyter_server"]
    assert own == {"tornado": 0.0021, "jupyter_server": 0.0008}


def test_cpu_seconds_count_a_live_process_and_nothing_for_a_gone_one() -> None:
    spin = time.process_time() + 0.05
    while time.process_time() < spin:
        pass
    assert cpu_seconds([os.getpid()]) >= 0.04
    assert cpu_seconds([2**22 + 1]) == 0.0  # above any pid_max: no such process
    assert host_busy_seconds() >= cpu_seconds([os.getpid()])
