"""Prometheus metrics at ``/metrics``: the host's figures and the app's requests, behind a guard.

Two sources, each correct with several worker processes:

- the host's figures (launches, starts, culls, running servers, active students) are computed at scrape time from
  shared state, the app's database (the events journal ingested into it) and the server records
  (:mod:`nbhosting_core.figures`): the hub that makes them runs in another process (the privileged helper), and
  every worker reads the same database and files, so whichever worker answers a scrape gives the same figures;
  the counters count every stored event (an app without a database: today's journal, from 00:00 UTC);
- the app's requests are counted by each worker, in prometheus_client's multiprocess mode when the app runs
  several (``PROMETHEUS_MULTIPROC_DIR``, set by the app's start, :mod:`nbhosting_server.appstart`): each worker
  writes its counts to its own file there and a scrape sums them all; only counters and histograms, no gauge.

The guard is a callable given the request, True to let it in (a coroutine function is awaited); by default
:func:`token_guard`: the bearer token of ``settings.metrics_token_file``. Without one, every scrape gets a 401.
When the app has staff, :func:`staff_guard` also lets in a staff member who may manage the host (an admin's API
token, or session).
"""

from __future__ import annotations

import hmac
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nbhosting_core.figures import (
    ACTIVE_PERIODS,
    CULL_REASONS,
    LAUNCH_ACTIONS,
    LAUNCH_STATUSES,
    NO_ACTION,
    OTHER,
    SUCCESS,
    HostFigures,
)
from nbhosting_core.figures import Histogram as Observed
from nbhosting_core.roles import Permission, allowed

from .admin import principal_of

log = logging.getLogger(__name__)
#: who may read /metrics: given the request, True to let it in
MetricsGuard = Callable[[Request], bool]
#: the same, as a coroutine function (it may ask the staff's database)
AsyncMetricsGuard = Callable[[Request], Awaitable[bool]]
#: the methods counted by name (any other is "other")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: the route label of a request no route matched (a 404)
UNMATCHED = "unmatched"
#: request durations' buckets: forward-auth answers in milliseconds, a launch within ANSWER_WITHIN
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: a token file larger than this is not a token
MAX_TOKEN_FILE = 4096
MIN_TOKEN = 16


def multiprocess_dir() -> Path | None:
    """prometheus_client's multiprocess folder if this process counts in that mode, else None.

    prometheus_client reads ``PROMETHEUS_MULTIPROC_DIR`` itself as it is imported; so does this (the one variable
    outside :class:`~nbhosting_core.Settings` the app reads: the library's own, set by the app's start).
    """
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def _read_token(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TOKEN_FILE + 1)
    except OSError as exc:
        log.warning("metrics token file %s unreadable: %s", path, exc)
        return None
    token = data.decode("utf-8", "replace").strip()
    if len(data) > MAX_TOKEN_FILE or len(token) < MIN_TOKEN or not token.isprintable() or " " in token:
        log.warning("metrics token file %s holds no usable token (%d to %d characters)", path, MIN_TOKEN, 4096)
        return None
    return token


def bearer(request: Request) -> str | None:
    """The token of the request's ``Authorization: Bearer <token>`` header, or None (never from the URL)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_guard(token_file: Path | None) -> MetricsGuard:
    """A guard that lets in requests bearing the token in ``token_file`` (compared in constant time; the file is
    read at each request, so it can be replaced); with no file, none."""

    def guard(request: Request) -> bool:
        presented = bearer(request)
        if token_file is None or presented is None:
            return False
        token = _read_token(token_file)
        return token is not None and hmac.compare_digest(presented.encode(), token.encode())

    return guard


def staff_guard(guard: MetricsGuard) -> AsyncMetricsGuard:
    """``guard``, or else a staff member who may manage the host (:data:`~nbhosting_core.roles.Permission.MANAGE_HOST`:
    an admin's API token or session, see :func:`nbhosting_server.admin.principal_of`)."""

    async def either(request: Request) -> bool:
        if await run_in_threadpool(guard, request):
            return True
        started = time.monotonic()
        principal = await principal_of(request)
        if principal is None:
            return False
        let_in = allowed(principal, Permission.MANAGE_HOST)
        log.info(
            "metrics %s to %s (%s, %s) in %.3fs",
            "shown" if let_in else "refused",
            principal.username,
            principal.via,
            principal.role.value,
            time.monotonic() - started,
        )
        return let_in

    return either


def _buckets(observed: Observed) -> list[tuple[str, float]]:
    return [("+Inf" if bound == float("inf") else repr(float(bound)), float(n)) for bound, n in observed.cumulative()]


class HostCollector(Collector):
    """The host's figures (see :mod:`nbhosting_core.figures`) as Prometheus metrics, computed at each scrape."""

    def __init__(self, figures: HostFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        f = self.figures.current()
        launches = HistogramMetricFamily(
            "nbhosting_launch_duration_seconds",
            "Time the hub took to open a notebook: status success or the error's slug; action "
            "create, start, reuse, replace (none for a failure).",
            labels=["status", "action"],
        )
        shown = {(SUCCESS, a) for a in LAUNCH_ACTIONS if a not in (NO_ACTION, OTHER)} | set(f.tally.launches)
        for status, action in sorted(shown):
            observed = f.tally.launches.get((status, action), Observed())
            launches.add_metric([status, action], _buckets(observed), observed.total)
        yield launches
        failures = CounterMetricFamily(
            "nbhosting_launch_failures",
            "Launches and starts that failed, by the error's slug.",
            labels=["reason"],
            created=f.since,
        )
        for reason in LAUNCH_STATUSES:
            if reason != SUCCESS:
                failures.add_metric([reason], f.tally.failures.get(reason, 0), created=f.since)
        yield failures
        ready = HistogramMetricFamily(
            "nbhosting_server_ready_duration_seconds",
            "Time from a server's start until it first answered.",
        )
        ready.add_metric([], _buckets(f.tally.ready), f.tally.ready.total)
        yield ready
        culls = CounterMetricFamily("nbhosting_culls", "Servers the culler stopped, by reason.", labels=["reason"])
        for reason in CULL_REASONS:
            culls.add_metric([reason], f.tally.culls.get(reason, 0), created=f.since)
        yield culls
        yield GaugeMetricFamily("nbhosting_running_servers", "Notebook servers running now.", f.running_servers)
        active = GaugeMetricFamily(
            "nbhosting_active_students",
            "Distinct students with a server running within the period (5m, 1h, 24h).",
            labels=["period"],
        )
        for period in ACTIVE_PERIODS:
            active.add_metric([period], f.active_students.get(period, 0))
        yield active


class HttpMetrics:
    """The app's request counts and durations, by method, route template and status code."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ["method", "route", "code"]
        self.requests = Counter("nbhosting_http_requests", "HTTP requests the app answered.", labels, registry=registry)
        self.duration = Histogram(
            "nbhosting_http_request_duration_seconds",
            "Time the app took to answer HTTP requests.",
            labels,
            registry=registry,
            buckets=HTTP_BUCKETS,
        )

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        """Count one request (``route``: its template, never the path)."""
        labels = (method if method in METHODS else OTHER, route, str(code))
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)


def route_template(routes: Sequence[BaseRoute], scope: Scope, prefix: str = "") -> str:
    """The template of the route ``scope`` goes to (``/notebookLazyCopy/{course}/{notebook:path}/{student}``),
    never the path itself (no student id, no key as a label value); :data:`UNMATCHED` if none."""
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        path = str(getattr(route, "path", ""))
        if isinstance(route, Mount):
            return route_template(route.routes, {**scope, **child}, prefix + path)
        return prefix + path if path else UNMATCHED
    return UNMATCHED


class RequestMetrics:
    """ASGI middleware: counts each HTTP request, its duration and status, by route template."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_template(self.routes, dict(scope))  # a copy: routing changes the scope as it goes
        status = 500  # what the client gets if the app raises before it answers

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


class Metrics:
    """The app's metrics: a registry of the host's figures and the requests (summed over the workers'
    files in multiprocess mode), the middleware's counters, and the ``/metrics`` endpoint behind ``guard``."""

    def __init__(
        self, figures: HostFigures, guard: MetricsGuard | AsyncMetricsGuard, *, multiprocess: Path | None = None
    ) -> None:
        self.guard = guard
        self.multiprocess = multiprocess
        self.registry = CollectorRegistry(auto_describe=False)
        if multiprocess is not None:
            MultiProcessCollector(self.registry, path=str(multiprocess))
            self.http = HttpMetrics(None)  # counted in this worker's file, read back by the collector
        else:
            self.http = HttpMetrics(self.registry)
        self.registry.register(HostCollector(figures))

    async def endpoint(self, request: Request) -> Response:
        """GET /metrics: the metrics in Prometheus's text format, to whom the guard lets in; else 401."""
        guard = self.guard
        let_in = await guard(request) if inspect.iscoroutinefunction(guard) else await run_in_threadpool(guard, request)
        if not let_in:
            return PlainTextResponse(
                "A valid token is needed (Authorization: Bearer).\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="nbhosting metrics"', "Cache-Control": "no-store"},
            )
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    def worker_exit(self) -> None:
        """This worker stops: its live files go (none: only counters and histograms, which stay summed)."""
        if self.multiprocess is not None:
            mark_process_dead(os.getpid(), str(self.multiprocess))
