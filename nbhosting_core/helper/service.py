"""``nbh helper``: the privileged helper as a process: the hub on its socket, the host's culler and sampler.

Stopped by SIGTERM or SIGINT: the socket goes, every student's server stays (the next helper finds them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from ..courses import PullResult
from ..culling import Culler
from ..events import Event
from ..hub import Hub
from ..settings import Settings
from ..system.courseimages import Pruned
from ..system.services import service_user
from .server import HelperServer, bind_socket

log = logging.getLogger("nbhosting_core.helper")


def run_helper(settings: Settings, hub: Hub | None = None, *, cull: bool = True) -> None:
    """Serve ``hub`` (default: a :class:`Hub` on ``settings``) on ``settings.helper_socket`` until a signal.

    Only the app's user (``settings.app_user``) and root may connect; without that user (a host set up for
    scripts), root alone.
    """
    hub = hub or Hub(settings)
    app = service_user(settings.app_user)
    allowed = frozenset({0, os.geteuid()} | ({app.uid} if app is not None else set()))
    settings.helper_socket.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    sock = bind_socket(settings.helper_socket, app.gid if app is not None else None)
    server = HelperServer(
        hub,
        allowed=allowed,
        workers=settings.helper_workers,
        timeout=settings.helper_timeout,
        work=hub.work,
        admin=hub,
    )
    culler = Culler(hub.cull, lock_path=settings.locks_dir / "culler.lock", interval=settings.cull_interval)
    if cull:
        culler.start()
    puller = course_puller(hub)
    if puller is not None:
        puller.start()
    sampler = host_sampler(hub)
    if sampler is not None:
        sampler.start()
    pruner = image_pruner(hub)
    if pruner is not None:
        pruner.start()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await server.serve(sock, stop)

    try:
        asyncio.run(main())
    finally:
        culler.stop()
        if puller is not None:
            puller.stop()
        if sampler is not None:
            sampler.stop()
        if pruner is not None:
            pruner.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(settings.helper_socket)
        sock.close()
        log.info("helper: stopped (students' servers keep running)")


def course_puller(hub: Hub) -> Culler[PullResult] | None:
    """The automatic pull of the host's courses, every ``course_pull_interval`` seconds (None when 0: off): every
    active course with a remote, in one process per host (a ``flock``), each result recorded as ``nbh course show``
    reports it."""
    interval = hub.settings.course_pull_interval
    if not interval:
        return None
    lock = hub.settings.locks_dir / "course-pull.lock"
    courses = hub.courses

    def pull_all() -> list[PullResult]:
        return courses.pull_all(by="the automatic pull")

    return Culler(pull_all, lock_path=lock, interval=interval, name="course puller")


def host_sampler(hub: Hub) -> Culler[Event] | None:
    """The host's samples (:meth:`Hub.sample`), every ``sample_interval`` seconds (None when 0: off), in one
    process per host (a ``flock``, as the culler); each pass also removes the journal's files older than
    ``events_keep_days``."""
    interval = hub.settings.sample_interval
    if not interval:
        return None

    def sample() -> list[Event]:
        hub.events.prune(hub.settings.events_keep_days)
        return [hub.sample()]

    return Culler(sample, lock_path=hub.settings.locks_dir / "sampler.lock", interval=interval, name="sampler")


def image_pruner(hub: Hub) -> Culler[Pruned] | None:
    """The automatic prune of image versions no server uses (:meth:`Hub.prune_images`), every
    ``image_prune_interval`` seconds (None when 0: off), in one process per host (a ``flock``); a version published
    or started on within ``image_prune_grace`` seconds stays (another nbhosting may share the images folder)."""
    interval = hub.settings.image_prune_interval
    if not interval:
        return None
    grace = hub.settings.image_prune_grace

    def prune() -> list[Pruned]:
        return [hub.prune_images(keep_used_within=grace)]

    return Culler(prune, lock_path=hub.settings.locks_dir / "image-prune.lock", interval=interval, name="image pruner")
