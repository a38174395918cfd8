"""Abuse at the door: may this launch make something now? (pure)

The door (:mod:`nbhosting_core.launches`) says *who* may launch; this module says *how much* they may make. Two
questions, asked only by launches that would make something (the hub knows: see :meth:`Hub.open_notebook`):

* **Rates.** A launch that would **create** (a new account, or a new or replaced container) draws on two rate
  limits: one for the platform that vouched for it, one for the client address it came from (an IPv6 client by
  its /64, what one subscriber usually holds). Each is a burst and a sustained rate, kept as GCRA (a token bucket
  stored as one number per key: the *theoretical arrival time*, ``tat``; the bucket is full once ``tat`` is in the
  past). Reopening a server that runs never draws; starting a stopped one does not either (it creates nothing,
  and it is the student's own).
* **The cap.** A launch that would make a server **run** (create, replace or start it) meets the cap of running
  servers: the servers running now, plus the starts admitted and not finished yet (*claims*: the hub releases
  one once its server runs, or fails; one whose process died mid-start expires after ``claim_ttl``), so that
  concurrent launches in several processes cannot overshoot.

A refusal says which limit and when to try again (``retry_after``). Nothing is drawn from any bucket unless the
launch is allowed: a refused launch costs its sender nothing more.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings


@dataclass(frozen=True)
class Requester:
    """Who asks for a launch: the platform that vouched for it, and the client address it came from."""

    platform: str
    address: str


@dataclass(frozen=True)
class Rate:
    """A burst of ``burst`` launches at once, then ``per_minute`` on average."""

    burst: int
    per_minute: float

    @property
    def interval(self) -> float:
        """Seconds between two launches at the sustained rate."""
        return 60.0 / self.per_minute


@dataclass(frozen=True)
class ThrottlePolicy:
    """The door's limits (see the settings ``creation_*``, ``max_running``, ``busy_retry_after``)."""

    platform: Rate
    client: Rate
    max_running: int
    #: seconds a launch refused at the cap is told to wait (when a server stops cannot be known)
    cap_retry_after: float
    #: seconds an admitted start counts as running before it shows as running (the start timeout)
    claim_ttl: float

    @classmethod
    def from_settings(cls, settings: Settings, *, mem_total: int) -> ThrottlePolicy:
        """The policy of ``settings``, on a host with ``mem_total`` bytes of memory (for the default cap)."""
        s = settings
        return cls(
            platform=Rate(s.creation_platform_burst, s.creation_platform_per_minute),
            client=Rate(s.creation_client_burst, s.creation_client_per_minute),
            max_running=s.max_running
            or default_max_running(mem_total, s.students_memory_fraction, s.server_memory_estimate),
            cap_retry_after=s.busy_retry_after,
            claim_ttl=s.start_timeout,
        )


def default_max_running(mem_total: int, fraction: float, estimate: int) -> int:
    """As many servers as the students' share of the host holds at ``estimate`` bytes each (pure). At least one.

    Not their memory limit: a server uses far less than its limit most of the time (~50 MiB idle, ~110-160 MiB
    with a kernel, measured), and the students' group (``students_memory_fraction`` of the host) already keeps the
    host safe when many use a lot at once (their own kernels are killed, not the host's processes). The cap is
    there so that a host is not asked for more servers than it can serve well.
    """
    return max(1, int(mem_total * fraction) // estimate)


class Need(str, enum.Enum):
    """What a launch would make."""

    CREATE = "create"  # a new account, or a new or replaced container: the rates and the cap
    START = "start"  # a stopped server started again: the cap only


def client_key(address: str) -> str:
    """The client a rate limit counts for ``address`` (pure): an IPv4 address, or an IPv6 /64.

    An IPv6 subscriber usually holds a whole /64: counting by address would give them 2^64 buckets. An
    IPv4-mapped IPv6 address counts as its IPv4 address; anything that is not an address counts as itself.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def buckets(policy: ThrottlePolicy, requester: Requester) -> dict[str, Rate]:
    """The buckets a creation by ``requester`` draws on, by name, with their rates (pure)."""
    return {
        f"platform:{requester.platform}": policy.platform,
        f"client:{client_key(requester.address)}": policy.client,
    }


@dataclass(frozen=True)
class Counts:
    """What the door's counters hold now."""

    #: bucket name -> theoretical arrival time (absent: a full bucket)
    tats: Mapping[str, float] = field(default_factory=dict)
    #: server name -> when its start was admitted
    claims: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The door's answer to one launch that would make something."""

    allowed: bool
    #: "ok", "cap", or the bucket that refused ("platform:<name>", "client:<address>")
    why: str
    #: seconds until trying again may succeed (0 when allowed)
    retry_after: float
    #: servers that run or are being started (this one excluded), and the cap
    in_use: int
    max_running: int
    #: the buckets' new theoretical arrival times, to store when allowed
    tats: Mapping[str, float] = field(default_factory=dict)


def gcra(tat: float | None, now: float, rate: Rate) -> tuple[bool, float, float]:
    """One launch against one bucket (pure): (allowed, the bucket's new tat, seconds to wait if refused).

    A bucket allows ``burst`` launches at once, then one every ``rate.interval`` seconds.
    """
    start = now if tat is None or tat < now else tat
    tolerance = (rate.burst - 1) * rate.interval
    if start - now > tolerance:
        return False, start, start - tolerance - now
    return True, start + rate.interval, 0.0


def decide(
    policy: ThrottlePolicy,
    need: Need,
    *,
    server: str,
    rates: Mapping[str, Rate],
    counts: Counts,
    running: frozenset[str],
    now: float,
) -> Verdict:
    """May a launch that would make ``server`` run (``need``) go on now? (pure)

    Args:
        rates: the buckets it draws on (:func:`buckets`); none for a start, or for a launch from no platform.
        counts: what the counters hold now.
        running: names of the servers that run now.
        now: seconds since the epoch.

    The cap counts the servers that run and the unexpired claims of others that do not run yet; the rates
    count only for :attr:`Need.CREATE`. Every limit is checked, and the longest wait is told; nothing is drawn
    unless all allow.
    """
    pending = {
        name
        for name, at in counts.claims.items()
        if name not in running and name != server and now - at < policy.claim_ttl
    }
    in_use = len(running - {server}) + len(pending)
    refusals: list[tuple[float, str]] = []
    if in_use >= policy.max_running:
        refusals.append((policy.cap_retry_after, "cap"))
    tats: dict[str, float] = {}
    if need is Need.CREATE:
        for name, rate in rates.items():
            allowed, tat, wait = gcra(counts.tats.get(name), now, rate)
            if allowed:
                tats[name] = tat
            else:
                refusals.append((wait, name))
    if refusals:
        wait, why = max(refusals)
        return Verdict(False, why, wait, in_use, policy.max_running)
    return Verdict(True, "ok", 0.0, in_use, policy.max_running, tats)


def retry_after_header(seconds: float) -> int:
    """``seconds`` as a Retry-After value: whole seconds, at least 1 (pure)."""
    return max(1, math.ceil(seconds))
