"""The web-facing half of nbhosting: what the app does with the signing secret and read-only state.

:class:`Gate` hands access over and checks it: access cookies, one-time tickets (made, and redeemed once: their
``spent`` files), Caddy's forward-auth (the cookie, the server found by its key in the records and alive in
/proc, the request noted as activity), the servers' origins and URLs, and on-demand TLS's question. It needs no
privilege: in production it runs in the app, as the app's own user, which owns ``RUN_DIR/activity``,
``RUN_DIR/tickets`` and the secret, and may read the server records. Everything that acts on the host (accounts,
workspaces, containers) is the :class:`~nbhosting_core.launcher.Launcher`'s.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from . import access, origins, tickets
from .activity import ActivityLog
from .containers import student_base
from .errors import InvalidInput, LaunchRefused
from .models import AccessCookie, Launch, Server, ServerState
from .settings import Settings
from .system.records import Records
from .system.secretfile import load_or_create_secret, secret_owners
from .system.spent import SpentNonces

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)
#: where a server's origin takes a one-time ticket and sets its access cookie (served by the app through Caddy)
TICKET_PATH = "/_nbh/ticket"


#: the students' pages a launch may lead to instead of the notebook (``then=``): each a page that shows, or asks
#: to confirm; nothing changes without the student's own click on their server's origin
THEN_PAGES = ("reset", "backups", "download", "download-workspace", "share")


def then_path(settings: Settings, key: str, notebook: str, then: str) -> str:
    """The students' page ``then`` (one of :data:`THEN_PAGES`) of ``notebook`` in the server ``key`` (pure).

    Raises:
        InvalidInput: ``then`` is not one of them.
    """
    if then not in THEN_PAGES:
        raise InvalidInput(f"Unknown page {then[:40]!r}: use one of {', '.join(THEN_PAGES)}.")
    return f"{student_base(settings, key)}/{then}?{urllib.parse.urlencode({'notebook': notebook})}"


class ServerFinder(Protocol):
    """Finds a server by its key, cheaply (no engine call): the records, or the fake backend's memory."""

    def find(self, key: str) -> Server | None:
        """The server whose key is ``key``, or None."""
        ...


class Gate:
    """Access to notebook servers: cookies, tickets, forward-auth, origins.

    Args:
        settings: paths and knobs.
        finder: finds servers by key; default the server records (read-only: ``DATA_ROOT/servers``,
            ``RUN_DIR/servers``, liveness from /proc).
        secret: the signing secret; default read from ``settings.secret_file`` (it must exist, be private, and
            belong to this process's user or to the app's).
        clock: seconds since the epoch; tests pass a fake.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        finder: ServerFinder | None = None,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.secret = (
            secret
            if secret is not None
            else load_or_create_secret(settings.secret_file, owners=secret_owners(settings.app_user))
        )
        self.finder: ServerFinder = finder or Records(settings.servers_dir, settings.running_dir)
        self.activity = ActivityLog(settings.activity_dir, flush=settings.activity_flush, clock=clock)
        self.spent = SpentNonces(settings.tickets_dir)
        #: seconds since the epoch, as this gate tells time (a fake in tests)
        self.clock = clock

    @classmethod
    def of(cls, hub: Hub) -> Gate:
        """The gate of an in-process ``hub`` (scripts, tests): its settings, secret, clock; its backend finds."""
        return cls(hub.settings, finder=hub.backend, secret=hub.secret, clock=hub.clock)

    def notebook_url(self, key: str, notebook: str) -> str:
        """Where the browser goes for ``notebook`` in the server ``key`` (path only)."""
        return origins.notebook_path(self.settings, key, notebook)

    def server_origin(self, key: str) -> str:
        """The origin the server ``key`` is served from (see :mod:`nbhosting_core.origins`)."""
        return origins.server_origin(self.settings, key)

    def access_cookie(self, launch: Launch) -> AccessCookie:
        """The cookie that lets this browser reach the server of ``launch`` (and no other).

        It is set by the server's origin (see :meth:`redeem_ticket`) and has no Domain: in origin mode
        ``subdomain`` it is sent to that server's host only (path ``/``); in mode ``path``, only with that server's
        paths (``/<prefix>/<key>/``).
        """
        return self._access_cookie(launch.key, launch.user)

    def ticket_url(self, launch: Launch, then: str | None = None) -> str:
        """Where a browser goes once ``launch`` is ready (absolute): the server's own origin, with a one-time
        ticket that sets the access cookie there, then on to the notebook, or to the students' page ``then``
        of that notebook (see :func:`then_path`). A capability: never log it.
        """
        ticket = tickets.make_ticket(self.secret, launch.key, launch.user, now=self.clock())
        target = then_path(self.settings, launch.key, launch.notebook, then) if then else launch.url
        query = urllib.parse.urlencode({"t": ticket, "next": target})
        return f"{self.server_origin(launch.key)}{TICKET_PATH}?{query}"

    def redeem_ticket(self, text: str, *, host_key: str | None) -> AccessCookie:
        """The access cookie a ticket hands over, once: the ticket is checked, then spent.

        Args:
            text: the ticket (see :mod:`nbhosting_core.tickets`).
            host_key: the key of the server's host the browser brought it to (in origin mode ``subdomain``, as
                Caddy routed it); None on the site's own origin (mode ``path``).

        Raises:
            LaunchRefused: the ticket is malformed, forged, expired, spent, or not for this host's server.
        """
        now = self.clock()
        try:
            ticket = tickets.read_ticket(self.secret, text, now=now)
            expected = ticket.key if self.settings.origin_mode == "subdomain" else None
            if host_key != expected:
                raise tickets.refused_host(ticket, host_key)
            if not self.spent.spend(ticket.nonce, ticket.expires, now=now):
                raise tickets.refused_spent(ticket)
        except LaunchRefused as exc:
            log.info("ticket refused [%s]: %s", exc.why, exc.log_detail)
            raise
        log.info("ticket user=%s key=%s: access cookie handed over", ticket.user, ticket.key[:8])
        return self._access_cookie(ticket.key, ticket.user)

    def may_certify(self, host: str) -> bool:
        """On-demand TLS's question (Caddy's ``ask``): may a certificate be obtained for ``host``?

        Yes only for the host of an existing server, in origin mode ``subdomain``: no one can make Caddy ask a CA
        for certificates of invented names.
        """
        key = origins.key_of_host(self.settings, host)
        allowed = key is not None and self.finder.find(key) is not None
        shown = f"server {key[:8]}" if key is not None else repr(host[:80])
        log.info("tls ask for %s: %s", shown, "yes" if allowed else "no")
        return allowed

    def authorize(self, uri: str, cookie_values: list[str]) -> access.AccessDecision:
        """Caddy's forward_auth question: may a request for ``uri`` with these cookies go through?

        A valid cookie for a server that is not running any more is refused (410) with a clear reason.
        An allowed request counts as the student's activity (see :mod:`nbhosting_core.activity`).
        """
        decision = access.decide(self.secret, self.settings.url_prefix, uri, cookie_values, self.clock())
        if not decision.allowed:
            return decision
        server = self.finder.find(decision.key)
        if server is None or server.state is not ServerState.RUNNING:
            return access.AccessDecision(False, 410, "gone", key=decision.key, user=decision.user)
        self.activity.touch(decision.key)
        return decision

    def _access_cookie(self, key: str, user: str) -> AccessCookie:
        s = self.settings
        value = access.access_cookie_value(self.secret, key, user, self.clock(), s.cookie_max_age)
        path = "/" if s.origin_mode == "subdomain" else access.cookie_path(s.url_prefix, key)
        return AccessCookie(name=access.COOKIE_NAME, value=value, key=key, path=path, max_age=s.cookie_max_age)
