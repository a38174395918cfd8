"""What students can do with their notebooks, as pages on their server's own origin, and shared pages.

On a server's origin, with that server's access cookie (so only its student acts; an admin uses ``nbh student``):

==========================================  ======  ==================================================
``/_nbh/student/``                          GET     the student's notebooks in the course, each with its
                                                    actions; the backups and shares
``/_nbh/student/reset?notebook=P``          GET     asks to confirm; POST: resets (the student's copy
                                                    becomes a backup, the course's version is copied in)
``/_nbh/student/backups[?notebook=P]``      GET     the backups, each with a restore button
``/_nbh/student/restore?notebook=P&backup=B`` POST  restores (the current copy is backed up first)
``/_nbh/student/download?notebook=P``       GET     the notebook, as a file
``/_nbh/student/download-workspace``        GET     the course's whole workspace, as a zip
``/_nbh/student/share?notebook=P``          GET     its link if shared; POST: shares (again: same link)
``/_nbh/student/unshare?notebook=P``        POST    revokes the link
==========================================  ======  ==================================================

In origin mode ``path`` the same routes are under the server's path: ``/<prefix>/<key>/_nbh/student/...`` (where
the access cookie is sent). Caddy sends them to the app with the key it routed on (``X-Nbh-Key``); the cookie must
be valid for exactly that key, and a POST must come from the server's own origin (as forward-auth's writes).

On nbhosting's own origin, ``/share?s=<token>`` serves a shared page to anyone who has the link: no scripts run
(``Content-Security-Policy: sandbox``: a unique origin, no cookie of anyone's), nothing is sniffed, nothing indexed.
"""

from __future__ import annotations

import html
import logging
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from nbhosting_core import InvalidInput, NbhostingError, validate_notebook_path
from nbhosting_core.access import COOKIE_NAME
from nbhosting_core.containers import STUDENT_PATH, student_base
from nbhosting_core.errors import LaunchRefused
from nbhosting_core.gate import Gate
from nbhosting_core.models import Server
from nbhosting_core.origins import check_origin, notebook_of_page, site_origin
from nbhosting_core.shares import SHARE_PARAM, SHARE_PATH, Share, read_page, share_url
from nbhosting_core.studentfiles import Backup, NotebookFile, NotebookList
from nbhosting_core.studentwork import Download, StudentActions

from . import pages
from .errors import http_status

log = logging.getLogger("nbhosting.student")
ACTIONS = ("", "reset", "backups", "restore", "download", "download-workspace", "share", "unshare")
#: what a shared page may do: nothing active (no script, no form, no plugin), in an origin of its own
SHARE_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow, noarchive",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _cookie_values(header: str) -> list[str]:
    values = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE_NAME and value.isascii():
            values.append(value.strip('"'))
    return values


def _stream(source: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := source.read(256 * 1024):
            yield chunk
    finally:
        source.close()


def _attachment(download: Download) -> StreamingResponse:
    quoted = urllib.parse.quote(download.filename, safe="")
    return StreamingResponse(
        _stream(download.stream),
        media_type=download.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}",
            "Content-Length": str(download.size),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


class StudentEndpoints:
    """The student's pages (on their server's origin) and shared pages (on nbhosting's).

    Args:
        work: what students can do (the privileged helper's client, or a hub's ``work``).
        gate: checks the access cookie and finds the server by its key.
    """

    def __init__(self, work: StudentActions, gate: Gate) -> None:
        self.work = work
        self.gate = gate

    def routes(self) -> list[Route]:
        """The app's routes of this module, for the settings' origin mode."""
        s = self.gate.settings
        base = STUDENT_PATH if s.origin_mode == "subdomain" else f"/{s.url_prefix}/{{key}}{STUDENT_PATH}"
        methods = ["GET", "POST", "HEAD"]
        return [
            Route(SHARE_PATH, self.shared, methods=["GET", "HEAD"]),
            Route(f"{base}/", self.student, methods=methods),
            *(Route(f"{base}/{action}", self.student, methods=methods) for action in ACTIONS if action),
        ]

    async def shared(self, request: Request) -> Response:
        """GET /share?s=<token>: a shared page, to anyone with the link (the token is never logged)."""
        page = await run_in_threadpool(read_page, self.gate.settings, request.query_params.get(SHARE_PARAM, ""))
        if page is None:
            response = pages.error_page(404, "Nothing shared here", "This link does not exist, or was revoked.")
            response.headers.update(SHARE_HEADERS)
            return response
        return Response(page, media_type="text/html; charset=utf-8", headers=SHARE_HEADERS)

    async def student(self, request: Request) -> Response:
        """Every route on the server's origin: who asks is the owner of the server whose key Caddy routed on."""
        action = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        action = "" if action == "student" else action
        try:
            server = self._owner(request)
            if request.method == "POST":
                self._check_origin(request, server)
            return await self._act(request, action, server)
        except NbhostingError as exc:
            status, title = http_status(exc)
            log.info("student %s %s refused: %s [%s]", request.method, action or "index", exc, exc.reason)
            return pages.error_page(status, title, exc.message)

    def _owner(self, request: Request) -> Server:
        """The server this browser owns, as Caddy routed to it (its key in X-Nbh-Key)."""
        s = self.gate.settings
        key = request.headers.get("x-nbh-key", "")
        in_path = request.path_params.get("key")
        if not key or (s.origin_mode == "path" and in_path != key):
            raise LaunchRefused("This page is only served on your notebook server.", why="no-key")
        decision = self.gate.authorize(f"/{s.url_prefix}/{key}/", _cookie_values(request.headers.get("cookie", "")))
        server = self.gate.finder.find(key) if decision.allowed else None
        if server is None:
            raise LaunchRefused(
                "This browser has no access to this notebook server: open the notebook again from your course.",
                why=decision.reason or "gone",
            )
        return server

    def _check_origin(self, request: Request, server: Server) -> None:
        origin = check_origin(
            method="POST",
            websocket=False,
            origin=request.headers.get("origin"),
            fetch_site=request.headers.get("sec-fetch-site"),
            own_origin=self.gate.server_origin(server.key),
        )
        if not origin.allowed:
            raise LaunchRefused(
                "Changes to your notebooks can only be asked from your notebook server's own pages.",
                why=origin.verdict.value,
            )

    def _base(self, server: Server) -> str:
        return student_base(self.gate.settings, server.key)

    async def _act(self, request: Request, action: str, server: Server) -> Response:
        query = request.query_params
        notebook = query.get("notebook")
        if notebook is not None:
            notebook = str(validate_notebook_path(notebook))
        post = request.method == "POST"
        course, student = server.course, server.student_id
        if action == "download-workspace":
            return _attachment(await run_in_threadpool(self.work.download_workspace, course, student))
        if action == "backups" or (action == "" and not post):
            listed = await run_in_threadpool(self.work.notebooks, course, student) if action == "" else None
            backups = await run_in_threadpool(self.work.backups, course, notebook, student)
            shares = await run_in_threadpool(self.work.shares, course, student) if action == "" else None
            # the "My work" menu opens this page from the notebook's: the Referer names it (a hint; never sent: no harm)
            current = notebook_of_page(self.gate.settings, server.key, request.headers.get("referer"))
            return self._overview(server, backups, shares, listed, current)
        if notebook is None:
            raise InvalidInput("Say which notebook: ?notebook=<its path in the course>.")
        if action == "download":
            return _attachment(await run_in_threadpool(self.work.download_notebook, course, notebook, student))
        if action == "reset" and post:
            reset = await run_in_threadpool(self.work.reset, course, notebook, student)
            kept = f"Your version is kept as backup <code>{reset.backup.id}</code>." if reset.backup else ""
            return self._done(server, notebook, "Notebook reset", f"It is the course's version again. {kept}")
        if action == "reset":
            return self._confirm(server, notebook)
        if action == "restore" and post:
            backup = query.get("backup", "")
            restored = await run_in_threadpool(self.work.restore, course, notebook, student, backup)
            kept = (
                f" Your previous copy is kept as backup <code>{restored.backup.id}</code>." if restored.backup else ""
            )
            said = f"Backup <code>{html.escape(backup)}</code> is your copy again.{kept}"
            return self._done(server, notebook, "Backup restored", said)
        if action == "share" and post:
            share = await run_in_threadpool(self.work.share, course, notebook, student)
            return self._share_page(server, notebook, share)
        if action == "share":
            found = await run_in_threadpool(self.work.shares, course, student)
            return self._share_page(server, notebook, next((s for s in found if s.notebook == notebook), None))
        if action == "unshare" and post:
            gone = await run_in_threadpool(self.work.unshare, course, notebook, student)
            said = "Its link works no more." if gone is not None else "It was not shared."
            return self._done(server, notebook, "Sharing stopped", said)
        return pages.error_page(405, "Not here", "Use the buttons of your notebook's pages.")

    # ------------------------------------------------------------------------------------------- pages

    def _form(self, server: Server, action: str, label: str, **params: str) -> str:
        url = f"{self._base(server)}/{action}?{urllib.parse.urlencode(params)}"
        return f'<form method="post" action="{html.escape(url)}"><button>{html.escape(label)}</button></form>'

    def _link(self, server: Server, action: str, label: str, **params: str) -> str:
        url = f"{self._base(server)}/{action}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        return f'<a href="{html.escape(url)}">{html.escape(label)}</a>'

    def _open(self, server: Server, notebook: str) -> str:
        url = self.gate.notebook_url(server.key, notebook)
        return f'<a class="button" href="{html.escape(url)}">Open the notebook</a>'

    def _confirm(self, server: Server, notebook: str) -> HTMLResponse:
        body = (
            f"<h1>Reset <code>{html.escape(notebook)}</code>?</h1>"
            "<p>Your copy is replaced by the course's current version. Nothing is lost: your version is kept as a "
            "backup, which you can restore at any time. Close the notebook's tab first, or Jupyter may save your "
            "version over the new one.</p>"
            f"{self._form(server, 'reset', 'Reset to the course version', notebook=notebook)}"
            f'<p class="muted">{self._link(server, "backups", "Backups of this notebook", notebook=notebook)}</p>'
        )
        return pages.page("Reset a notebook", body)

    def _done(self, server: Server, notebook: str, title: str, said: str) -> HTMLResponse:
        body = (
            f"<h1>{html.escape(title)}</h1><p><code>{html.escape(notebook)}</code>: {said}</p>"
            f"<p>{self._open(server, notebook)}</p>"
            f'<p class="muted">{self._link(server, "backups", "Backups of this notebook", notebook=notebook)}</p>'
        )
        return pages.page(title, body)

    def _share_page(self, server: Server, notebook: str, share: Share | None) -> HTMLResponse:
        name = html.escape(notebook)
        if share is None:
            body = (
                f"<h1>Share <code>{name}</code></h1><p>A static copy of the notebook (as it is now, outputs "
                "included) is published behind a secret link: anyone who has the link can read it, without an "
                "account. You can stop sharing at any time.</p>"
                f"{self._form(server, 'share', 'Share a static copy', notebook=notebook)}"
            )
        else:
            link = html.escape(share_url(site_origin(self.gate.settings), share.token))
            body = (
                f"<h1><code>{name}</code> is shared</h1>"
                f'<p>Its link: <a href="{link}" rel="noreferrer" target="_blank"><code>{link}</code></a></p>'
                f'<p class="muted">Copy of {_when(share.created)}; sharing again updates it (same link).</p>'
                f"{self._form(server, 'share', 'Update the copy', notebook=notebook)}"
                f"{self._form(server, 'unshare', 'Stop sharing', notebook=notebook)}"
            )
        return pages.page("Share a notebook", body)

    def _overview(
        self,
        server: Server,
        backups: list[Backup],
        shares: list[Share] | None,
        listed: NotebookList | None,
        current: str | None = None,
    ) -> HTMLResponse:
        """The course's notebooks (``listed``, on the menu's page; ``current``, the one the student came from, first),
        each with its actions; then the backups, and the shares of notebooks not listed (``shares``); on
        ``/backups``, the backups alone."""
        body = f"<h1>Your work in <code>{html.escape(server.course)}</code></h1>"
        if listed is not None and shares is not None:
            body += self._notebooks(server, listed, backups, shares, current)
            body += f"<p>{self._link(server, 'download-workspace', 'Download the whole workspace (zip)')}</p>"
            body += (
                f'<form method="get" action="{html.escape(self._base(server))}/reset"><p class="muted">A course '
                "notebook you deleted or renamed: get the course's version back. "
                '<input name="notebook" placeholder="its path, e.g. w1/intro.ipynb" required> '
                "<button>Reset…</button></p></form>"
            )
        rows = "".join(
            f"<li><code>{html.escape(b.notebook)}</code> {html.escape(b.id)} ({b.size:,} bytes) "
            f"{self._form(server, 'restore', 'Restore', notebook=b.notebook, backup=b.id)}</li>"
            for b in reversed(backups)
        )
        body += "<h2>Backups</h2>"
        body += f"<ul>{rows}</ul>" if rows else "<p class='muted'>No backup: a reset makes one.</p>"
        names = {n.notebook for n in listed.notebooks} if listed is not None else set()
        others = [s for s in shares or () if s.notebook not in names]
        if others:
            body += "<h2>Also shared</h2><ul>" + "".join(self._shared(server, s) for s in others) + "</ul>"
        return pages.page("Your work", body)

    def _notebooks(
        self, server: Server, listed: NotebookList, backups: list[Backup], shares: list[Share], current: str | None
    ) -> str:
        """The student's notebooks, each with Download, Share (or its link and Revoke), Reset… and Backups; first,
        the one they came from (``current``) if it is listed."""
        if not listed.notebooks:
            return "<p class='muted'>No notebook in your workspace yet: open one from your course.</p>"
        kept = Counter(b.notebook for b in backups)
        shared = {s.notebook: s for s in shares}
        rows = [self._row(server, n, kept[n.notebook], shared.get(n.notebook)) for n in listed.notebooks]
        here = next((n for n in listed.notebooks if n.notebook == current), None)
        body = ""
        if here is not None:
            row = self._row(server, here, kept[here.notebook], shared.get(here.notebook), "current")
            body = f"<h2>The notebook you came from</h2><ul>{row}</ul>"
        body += f"<h2>Your notebooks</h2><ul>{''.join(rows)}</ul>"
        if listed.truncated:
            body += f"<p class='muted'>Only the first {len(listed.notebooks)} notebooks are listed.</p>"
        return body

    def _row(self, server: Server, n: NotebookFile, backups: int, share: Share | None, extra: str = "") -> str:
        name = n.notebook
        actions = [
            self._link(server, "download", "Download", notebook=name),
            self._shared(server, share, item=False) if share else self._link(server, "share", "Share…", notebook=name),
            self._link(server, "reset", "Reset…", notebook=name),
            self._link(server, "backups", f"Backups ({backups})", notebook=name),
        ]
        open_url = html.escape(self.gate.notebook_url(server.key, name))
        return (
            f'<li class="{f"notebook {extra}".strip()}"><a href="{open_url}"><code>{html.escape(name)}</code></a> '
            f'<span class="muted">{n.size:,} bytes, {_when(n.modified)}</span><br>{" · ".join(actions)}</li>'
        )

    def _shared(self, server: Server, share: Share, *, item: bool = True) -> str:
        """A shared notebook's link and its Revoke button (as a list item, or inline in a notebook's row)."""
        link = html.escape(share_url(site_origin(self.gate.settings), share.token))
        url = html.escape(f"{self._base(server)}/unshare?{urllib.parse.urlencode({'notebook': share.notebook})}")
        said = (
            f'<a href="{link}" rel="noreferrer" target="_blank">shared link</a> ({_when(share.created)}) '
            f'<form class="inline" method="post" action="{url}"><button>Revoke</button></form>'
        )
        return f"<li><code>{html.escape(share.notebook)}</code> {said}</li>" if item else said
