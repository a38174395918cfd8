"""The host's upkeep: reconcile the backend's records after a crash or a reboot, cull idle servers, stop servers on
an old image, and sample the host's figures. Each pass is logged (logger ``nbhosting_core.hub``, as the hub's) and
culls and samples are recorded as events; :class:`~nbhosting_core.hub.Hub` answers them by delegating here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .activity import ActivityLog
from .backend import NotebookBackend
from .culling import CullPolicy, should_cull
from .eventrecords import who
from .events import Event, EventJournal, EventKind
from .keeper import Keeper
from .models import CullDecision, CullReason, ReconcileReport, Server, ServerState
from .naming import short_key
from .sampling import host_figures, measure
from .settings import Settings
from .system.quota import Quota

log = logging.getLogger("nbhosting_core.hub")  # the hub's decisions, whichever module makes them


class Upkeep:
    """The host's periodic work on ``backend``'s servers, as the hub wires it.

    ``image_for`` says what new servers of a course run (:meth:`~nbhosting_core.hub.Hub.image_for`); ``stop`` stops a
    server by name as an admin does (:meth:`~nbhosting_core.hostadmin.HostAdmin.stop`); ``clock``, seconds since the
    epoch.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        backend: NotebookBackend,
        quota: Quota,
        activity: ActivityLog,
        policy: CullPolicy,
        events: EventJournal,
        keeper: Keeper,
        image_for: Callable[[str], str | None],
        stop: Callable[[str], Server],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.quota = quota
        self.activity = activity
        self.policy = policy
        self.events = events
        self.keeper = keeper
        self.image_for = image_for
        self.stop = stop
        self._clock = clock

    def old_servers(self, course: str | None = None) -> list[Server]:
        """Servers (of ``course``, or all) whose image is not the one new servers of their course get."""
        current: dict[str, str | None] = {}
        old = []
        for server in self.backend.list_servers():
            if course is not None and server.course != course:
                continue
            if server.course not in current:
                current[server.course] = self.image_for(server.course)
            image = current[server.course]
            if image is not None and server.image != image:
                old.append(server)
        return old

    def restart_old(self, course: str | None = None) -> list[Server]:
        """Stop the running servers (of ``course``, or all) on an old image; their students' files stay, and
        their next launch replaces them with a server on the new image. Returns the servers stopped."""
        stopped = []
        for server in self.old_servers(course):
            if server.state is ServerState.RUNNING:
                self.stop(server.name)
                stopped.append(server)
        return stopped

    def reconcile(self) -> ReconcileReport:
        """Repair the backend's records after a crash or a reboot (see :meth:`NotebookBackend.reconcile`).

        What is held for students with no running server (a mounted workspace, a podman namespace and its
        subordinate ids) is released too.
        """
        started = time.monotonic()
        report = self.backend.reconcile()
        running = {s.user for s in self.backend.list_servers() if s.state is ServerState.RUNNING}
        released = []
        for user in sorted(set(self.quota.held()) | set(self.backend.held())):
            if user not in running:
                with self.keeper.student_lock(user):
                    if self.keeper.release_if_idle(user):
                        released.append(f"resources of {user}")
        report = report.model_copy(update={"cleared": [*report.cleared, *released]})
        log.info(
            "reconcile: checked=%d adopted=%s removed=%s cleared=%d in %.3fs",
            report.checked,
            report.adopted,
            report.removed,
            len(report.cleared),
            time.monotonic() - started,
            extra={"report": report},  # the whole report, for log handlers (and tests) that want more than counts
        )
        return report

    def cull(self, *, dry_run: bool = False) -> list[CullDecision]:
        """Stop every running server the culling policy says to (see :func:`culling.should_cull`).

        Returns every decision, kept or culled; with ``dry_run`` nothing is stopped.
        """
        now = self._clock()
        decisions = []
        for server in self.backend.list_servers():
            if server.state is not ServerState.RUNNING:
                continue
            proxied = self.activity.last_seen(server.key)
            activity = self.backend.activity(server)
            decision = should_cull(server, now=now, proxied=proxied, activity=activity, policy=self.policy)
            if not decision.cull and not self.quota.hard:
                used, limit = self.quota.usage(server.user)
                if used is not None and used > limit:
                    decision = decision.model_copy(update={"cull": True, "reason": CullReason.OVER_QUOTA})
            if decision.cull and not dry_run:
                decision = self._cull_one(server, decision, proxied)
            decisions.append(decision)
        return decisions

    def sample(self) -> Event:
        """Record the host's figures now as a ``sample`` event, and return it.

        Running servers; their kernels (each server's activity: a bounded probe, within
        :data:`~nbhosting_core.sampling.PROBE_BUDGET` seconds and :data:`~nbhosting_core.sampling.MAX_PROBES`
        servers) and memory (the sum of their usage); the host's load average and memory; the disk of DATA_ROOT.
        A sample that cannot be written is logged and still returned.
        """
        started = time.monotonic()
        servers = measure(self.backend, self.backend.list_running())
        data = {**servers.as_data(), **host_figures(self.settings.data_root)}
        event = self.events.record(EventKind.SAMPLE, data=data, actor="sampler")
        log.info(
            "sample running=%d probed=%d kernels=%d memory=%dMiB load=%s in %.3fs",
            servers.running,
            servers.probed,
            servers.kernels,
            servers.memory_bytes >> 20,
            data.get("load1"),
            time.monotonic() - started,
        )
        return event or Event(time=self._clock(), kind=EventKind.SAMPLE, data=data, actor="sampler")

    def _cull_one(self, server: Server, decision: CullDecision, proxied: float | None) -> CullDecision:
        """Stop ``server`` as decided, unless its student came back meanwhile (a launch or a request)."""
        started = time.monotonic()
        with self.keeper.student_lock(server.user):  # launches hold it: one that reused this server has recorded it
            if decision.reason is not CullReason.OVER_QUOTA and self.activity.last_seen(server.key) != proxied:
                log.info(
                    "cull user=%s course=%s key=%s: seen meanwhile, kept",
                    server.user,
                    server.course,
                    short_key(server.key),
                )
                return decision.model_copy(update={"cull": False, "reason": CullReason.ACTIVE})
            self.keeper.stop_and_release(server)
        took = time.monotonic() - started
        log.info(
            "cull user=%s course=%s key=%s reason=%s idle=%.0fs age=%.0fs in %.3fs",
            server.user,
            server.course,
            short_key(server.key),
            decision.reason.value,
            decision.idle_seconds or 0,
            decision.age_seconds or 0,
            took,
        )
        self.events.record(
            EventKind.CULL,
            **who(server),
            reason=decision.reason.value,
            duration=took,
            actor="culler",
            data={"idle": decision.idle_seconds, "age": decision.age_seconds},
        )
        return decision
