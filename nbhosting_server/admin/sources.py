"""Where the staff pages get what they show, and how they call it: the host's :class:`ServerAdmin` (the hub in
this process, or the privileged helper), the app's database (events, statistics), and the clock.

Every call that may block (the helper's socket, the database, a course's checkout) runs in a worker thread
(:func:`call`), logged with who asked, what, and how long it took; an nbhosting error becomes the page's refusal
(:class:`AdminRefused` with the error's status and its message for people).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar, cast

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from nbhosting_core import NbhostingError, Settings
from nbhosting_core.events import EventJournal
from nbhosting_core.eventstore import ingest
from nbhosting_core.launcher import Launcher
from nbhosting_core.roles import Principal
from nbhosting_core.serveradmin import ServerAdmin

from ..errors import http_status
from .refusals import AdminRefused

log = logging.getLogger("nbhosting.admin")
T = TypeVar("T")


def server_admin_of(request: Request) -> ServerAdmin:
    """The app's :class:`ServerAdmin` (``app.state.server_admin``: its hub, or its helper client); AdminRefused
    (503) when the app has none."""
    admin = getattr(request.app.state, "server_admin", None)
    if admin is None:
        raise AdminRefused(503, "This app cannot reach the host's servers (no hub, no helper).")
    return cast(ServerAdmin, admin)


def launcher_of(request: Request) -> Launcher:
    """The app's launcher (its hub, or the helper's client): what the Try action opens a notebook with."""
    return cast(Launcher, request.app.state.launcher)


def settings_of(request: Request) -> Settings:
    """The app's settings (its gate's)."""
    settings = request.app.state.gate.settings
    assert isinstance(settings, Settings)
    return settings


def now_of(request: Request) -> float:
    """Seconds since the epoch, by the app's clock (its gate's: a test's fake clock too)."""
    return float(request.app.state.gate.clock())


def engine_of(request: Request) -> Engine:
    """The app's database (events, statistics, staff)."""
    engine = getattr(request.app.state, "database", None)
    if not isinstance(engine, Engine):
        raise AdminRefused(503, "This app has no database.")
    return engine


async def call(request: Request, principal: Principal, what: str, function: Callable[[], T]) -> T:
    """``function()`` in a worker thread, logged (who, ``what``, how long); an :class:`NbhostingError` becomes an
    :class:`AdminRefused` with its status and message (logged with its detail)."""
    started = time.monotonic()
    try:
        result = await run_in_threadpool(function)
    except NbhostingError as exc:
        status, _ = http_status(exc)
        log.info(
            "%s: %s failed in %.3fs: %s [%s]", principal.username, what, time.monotonic() - started, exc, exc.reason
        )
        raise AdminRefused(status, exc.message) from exc
    log.info("%s: %s in %.3fs", principal.username, what, time.monotonic() - started)
    return result


async def ingested(request: Request, principal: Principal) -> Engine:
    """The app's database, after copying the journal's new events into it (what a page of events or figures
    reads)."""
    engine = engine_of(request)
    journal = EventJournal(settings_of(request).events_dir)
    await call(request, principal, "ingest events", lambda: ingest(engine, journal))
    return engine
