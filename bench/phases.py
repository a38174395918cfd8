"""Where a student's wait goes: one browser run's phases, from Chromium's own records (pure).

Input: the DevTools ``Network.*`` events of one run (Chromium's performance log, in order), the wall-clock time of
the click, and what the bench saw by polling the page (UI shown, kernel idle, output shown; seconds from the click).
Chromium's event ``timestamp`` is its monotonic clock; ``requestWillBeSent`` also carries ``wallTime``, which puts
every event on the click's clock.

The notebook's navigation is the document request whose last URL has ``/notebooks/``; its redirect chain (one
``requestId``) holds the hops that lead there: nbhosting's launch (302) and ticket (302), JupyterHub's login and
user-redirect. What comes before that chain is the progress page and the server's start (or the peer's login form).
"""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]

#: the phases, in the order of a run; each is the time between two moments of the run (seconds)
PHASES = (
    ("click", "click -> first request sent (the driver)"),
    ("before", "first request -> notebook's navigation starts (progress page + server start, or login form)"),
    ("hops", "notebook's redirect hops (launch, ticket / login, user-redirect)"),
    ("html", "notebook URL requested -> its HTML received"),
    ("assets", "HTML received -> last script/style received"),
    ("render", "last script/style received -> notebook UI shown (cells rendered)"),
    ("kernel", "UI shown -> kernel idle shown"),
    ("typing", "kernel idle shown -> execute_request sent (a new cell typed, Shift+Enter)"),
    ("execute", "execute_request sent -> execute_result received"),
    ("shown", "execute_result received -> output seen on the page"),
)


@dataclass
class Breakdown:
    """One run's phases (seconds; a phase that could not be found is absent), hops and moments."""

    phases: dict[str, float] = field(default_factory=dict)
    hops: list[tuple[str, float]] = field(default_factory=list)  # (the hop's request, time to the next request)
    websocket_open: float | None = None  # the kernel's websocket handshake answered, seconds from the click


def _path_head(url: str) -> str:
    """``/notebookLazyCopy/…``, ``/_nbh/ticket``, ``/hub/login``: enough of a URL to name a hop (no query, no key)."""
    parts = urllib.parse.urlsplit(url).path.strip("/").split("/")
    kept = 2 if parts[0] in ("_nbh", "hub") else 1
    return "/" + "/".join(parts[:kept]) + ("/…" if len(parts) > kept else "")


def _payload(params: Event) -> bytes:
    response = params.get("response", {})
    data = str(response.get("payloadData", ""))
    if response.get("opcode") == 2:  # binary frame (Jupyter's v1 websocket protocol): base64 in the log
        try:
            return base64.b64decode(data)
        except ValueError:
            return b""
    return data.encode()


def breakdown(
    events: list[Event], click_wall: float, ui: float | None, idle: float | None, output: float | None
) -> Breakdown:
    """The phases of one run (see :data:`PHASES`); ``ui``, ``idle``, ``output``: seconds from the click, as polled."""
    result = Breakdown()
    offset: float | None = None  # wallTime - timestamp: Chromium's monotonic clock to the wall clock
    first: float | None = None
    documents: dict[str, list[tuple[float, str]]] = {}  # requestId -> its requests (redirects share the id)
    kinds: dict[str, str] = {}
    finished: dict[str, float] = {}
    ws_kernel: set[str] = set()
    ws_open: float | None = None
    sent: float | None = None
    received: float | None = None
    for event in events:
        method, params = event.get("method", ""), event.get("params", {})
        if method == "Network.webSocketCreated" and "/api/kernels/" in str(params.get("url", "")):
            ws_kernel.add(params["requestId"])  # (this event has no timestamp)
        ts = params.get("timestamp")
        if not isinstance(ts, int | float):
            continue
        if method == "Network.requestWillBeSent":
            if offset is None and isinstance(params.get("wallTime"), int | float):
                offset = float(params["wallTime"]) - float(ts)
            first = float(ts) if first is None else first
            kinds[params["requestId"]] = str(params.get("type", ""))
            if params.get("type") == "Document":
                documents.setdefault(params["requestId"], []).append((float(ts), str(params["request"]["url"])))
        elif method == "Network.loadingFinished":
            finished[params["requestId"]] = float(ts)
        elif method == "Network.webSocketHandshakeResponseReceived" and params["requestId"] in ws_kernel:
            ws_open = float(ts) if ws_open is None else ws_open
        elif method == "Network.webSocketFrameSent" and params["requestId"] in ws_kernel:
            if b"execute_request" in _payload(params):
                sent, received = float(ts), None  # a run sent again (a lost first run): time the last one
        elif method == "Network.webSocketFrameReceived" and params["requestId"] in ws_kernel and received is None:
            received = float(ts) if sent is not None and b"execute_result" in _payload(params) else None
    if offset is None or first is None:
        return result

    def at(ts: float) -> float:
        return ts + offset - click_wall

    chains = [
        (rid, reqs) for rid, reqs in documents.items() if "/notebooks/" in urllib.parse.urlsplit(reqs[-1][1]).path
    ]
    moments: dict[str, float | None] = {"first": at(first), "ui": ui, "idle": idle, "output": output}
    if chains:
        rid, requests = chains[-1]
        moments["chain"] = at(requests[0][0])
        moments["notebook"] = at(requests[-1][0])
        moments["html"] = at(finished[rid]) if rid in finished else None
        result.hops = [(_path_head(url), nxt - ts) for (ts, url), (nxt, _) in zip(requests, requests[1:], strict=False)]
        html = finished.get(rid, requests[-1][0])
        limit = (ui + click_wall - offset) if ui is not None else float("inf")
        assets = [t for r, t in finished.items() if kinds.get(r) in ("Script", "Stylesheet") and html <= t <= limit]
        moments["assets"] = at(max(assets)) if assets else None
    moments["sent"] = at(sent) if sent is not None else None
    moments["received"] = at(received) if received is not None else None
    result.websocket_open = at(ws_open) if ws_open is not None else None
    spans = {
        "click": (0.0, moments["first"]),
        "before": (moments["first"], moments.get("chain")),
        "hops": (moments.get("chain"), moments.get("notebook")),
        "html": (moments.get("notebook"), moments.get("html")),
        "assets": (moments.get("html"), moments.get("assets")),
        "render": (moments.get("assets"), moments["ui"]),
        "kernel": (moments["ui"], moments["idle"]),
        "typing": (moments["idle"], moments["sent"]),
        "execute": (moments["sent"], moments["received"]),
        "shown": (moments["received"], moments["output"]),
    }
    result.phases = {name: end - begin for name, (begin, end) in spans.items() if begin is not None and end is not None}
    return result
