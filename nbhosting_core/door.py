"""The door's side effects: may this launch make something now? The decision is :mod:`nbhosting_core.throttle`'s
(pure); :class:`Door` reads what runs, settles the decision in the shared counters, and logs it.

Only the host's privileged side asks the door (:class:`~nbhosting_core.hub.Hub`, in one process or in the helper):
the counters are root's (``RUN_DIR/throttle``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import throttle
from .errors import Busy
from .models import Server, ServerState
from .naming import container_name
from .system.counters import Counters
from .throttle import Need, Requester, ThrottlePolicy

log = logging.getLogger("nbhosting_core.hub")  # the hub's decisions, whichever module makes them

BUSY_CAP = "All notebook servers are in use right now; yours will start as soon as one is free."
BUSY_RATE = "Too many notebooks are being opened from here right now; yours will open in a moment."


class Door:
    """Asks the throttle whether a launch may make a server run, with the counters every process shares.

    Args:
        policy: the limits.
        counters: the shared counters (rates, claims on the cap).
        running: the servers that run now (cheap: the backend's ``list_running``).
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        policy: ThrottlePolicy,
        counters: Counters,
        running: Callable[[], list[Server]],
        clock: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.counters = counters
        self._running = running
        self._clock = clock

    def for_server(self, current: Server | None, user: str, course: str, requester: Requester | None) -> str | None:
        """Ask for a launch of ``user`` in ``course`` whose server is ``current`` now (call under the student's
        lock); the claim, or None if it runs (reopening asks nothing).

        Raises:
            Busy: a rate limit or the cap refuses it.
        """
        if current is not None and current.state is ServerState.RUNNING:
            return None
        stopped = current is not None and current.state is ServerState.STOPPED
        need, what = (Need.START, "stopped server") if stopped else (Need.CREATE, "new server")
        if current is not None and not stopped:
            what = f"{current.state.value} server replaced"
        return self.ask(need, container_name(user, course), user, requester, what)

    def ask(self, need: Need, server: str, user: str, requester: Requester | None, what: str) -> str:
        """May ``server`` be made to run now (``need``)? Its name, which the counters now hold a claim on.

        Raises:
            Busy: a rate limit or the cap refuses it.
        """
        now = self._clock()
        rates = throttle.buckets(self.policy, requester) if requester is not None and need is Need.CREATE else {}

        def decide(counts: throttle.Counts) -> throttle.Verdict:
            # read under the counters' lock: a start that finished meanwhile shows here as running, or its
            # claim (released only once it runs) shows in ``counts``: never neither
            running = frozenset(s.name for s in self._running())
            return throttle.decide(
                self.policy, need, server=server, rates=rates, counts=counts, running=running, now=now
            )

        verdict = self.counters.settle(
            now=now, buckets=list(rates), claim=server, ttl=self.policy.claim_ttl, decide=decide
        )
        who = (
            f"user={user} platform={requester.platform} client={requester.address}"
            if requester is not None
            else f"user={user} (admin)"
        )
        load = f"running {verdict.in_use}/{verdict.max_running}"
        if not verdict.allowed:
            log.warning(
                "door: refused %s (%s) %s: %s, %s, retry in %.0fs",
                need.value,
                what,
                who,
                verdict.why,
                load,
                verdict.retry_after,
            )
            raise Busy(
                BUSY_CAP if verdict.why == "cap" else BUSY_RATE,
                retry_after=verdict.retry_after,
                why=verdict.why,
                log_detail=f"{who}: {verdict.why}, {load}",
            )
        log.info("door: allowed %s (%s) %s, %s", need.value, what, who, load)
        return server

    def release(self, claim: str) -> None:
        """The claimed server runs now (and counts as such), or it will not: the claim has done its work."""
        self.counters.release(claim)
