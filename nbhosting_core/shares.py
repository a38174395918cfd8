"""Static copies of students' notebooks, shared behind unguessable, revocable links.

A share is one HTML page (the notebook rendered by nbconvert in the student's own container, see
:class:`~nbhosting_core.studentwork.StudentWork`), named by a token of 256 random bits. Its link is
``<site>/share?s=<token>``: anyone who has it may read the page, without an account; revoking it deletes the page.

On disk (``DATA_ROOT/shares``), written by root (the helper) only:

====================================  ===========  =====================================================
shares/pages/<sha256 of token>.html   root:app     0640 (folder 0750): what the app serves, found by the
                                                   token's hash (a listing of the folder shows no link)
shares/owners/<user>.json             root, 0600   (folder 0700) each student's shares: token, course,
                                                   notebook, when; read and written under their lock
====================================  ===========  =====================================================

The app reads a page with :func:`read_page` (it needs no privilege); a token never reaches a log line in clear
(see ``nbhosting_server.logs`` and the Caddyfile's error-log filter).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter

from .errors import OverQuota
from .settings import Settings
from .system.services import service_group
from .system.tree import ensure_dir, write_atomic

#: the longest page a share may be (a notebook with many plots inlined as images)
MAX_PAGE = 32 * 2**20
#: the most shares a student may have at once (their pages also count, all together, against workspace_quota)
MAX_SHARES = 100
#: the query parameter of a share's link (masked in every log)
SHARE_PARAM = "s"
#: the app's route of shared pages
SHARE_PATH = "/share"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Share(BaseModel):
    """One shared page of a student's notebook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str
    course: str
    notebook: str
    created: float  # epoch seconds of its last rendering
    size: int


_SHARES = TypeAdapter(list[Share])


def new_token() -> str:
    """A share's token: 256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def is_token(value: str) -> bool:
    """True if ``value`` has the shape of a share's token (pure)."""
    return bool(TOKEN_RE.match(value))


def page_name(token: str) -> str:
    """The file of the page of ``token``: the SHA-256 of the token (pure)."""
    return hashlib.sha256(token.encode()).hexdigest() + ".html"


def share_url(public_url: str, token: str) -> str:
    """The link of a share, on nbhosting's own origin (a capability: never log it)."""
    return f"{public_url.rstrip('/')}{SHARE_PATH}?{SHARE_PARAM}={token}"


def shares_dir(settings: Settings) -> Path:
    """``DATA_ROOT/shares``."""
    return settings.data_root / "shares"


def read_page(settings: Settings, token: str) -> bytes | None:
    """The shared page of ``token``, or None (no such share, revoked, or not a token). Needs no privilege."""
    if not is_token(token):
        return None
    try:
        fd = os.open(shares_dir(settings) / "pages" / page_name(token), FILE_FLAGS)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as page:
        info = os.fstat(page.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PAGE:
            return None
        return page.read(MAX_PAGE)


class ShareStore:
    """Root's side: writes, lists and deletes shared pages (call under the student's lock).

    Args:
        settings: where ``DATA_ROOT`` is, and the app's user (who may read the pages).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._root = shares_dir(settings)

    def of(self, user: str) -> list[Share]:
        """Every share of student ``user``, oldest first."""
        try:
            raw = (self._root / "owners" / f"{user}.json").read_bytes()
        except FileNotFoundError:
            return []
        return _SHARES.validate_json(raw)

    def put(self, user: str, course: str, notebook: str, html: bytes, now: float) -> Share:
        """Publish ``html`` as the share of (``user``, ``course``, ``notebook``): its link stays if it had one."""
        if len(html) > MAX_PAGE:
            raise ValueError(f"a page of {len(html)} bytes is over {MAX_PAGE}")
        self._prepare()
        shares = self.of(user)
        old = next((s for s in shares if s.course == course and s.notebook == notebook), None)
        others = [s for s in shares if s is not old]
        if len(others) >= MAX_SHARES or sum(s.size for s in others) + len(html) > self._settings.workspace_quota:
            raise OverQuota(
                "You share too much already: stop sharing some notebooks first.",
                log_detail=f"{user}: {len(others)} shares, {sum(s.size for s in others)} bytes",
            )
        token = old.token if old is not None else new_token()
        share = Share(token=token, course=course, notebook=notebook, created=now, size=len(html))
        self._write_page(token, html)
        self._write_index(user, [*(s for s in shares if s.token != token), share])
        return share

    def remove(self, user: str, course: str, notebook: str) -> Share | None:
        """Revoke the share of (``user``, ``course``, ``notebook``): its page is deleted; the share, or None."""
        shares = self.of(user)
        gone = next((s for s in shares if s.course == course and s.notebook == notebook), None)
        if gone is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._root / "pages" / page_name(gone.token))
        self._write_index(user, [s for s in shares if s.token != gone.token])
        return gone

    def _prepare(self) -> None:
        uid, gid = os.geteuid(), os.getegid()
        app_group = service_group(self._settings.app_user) if uid == 0 else None
        ensure_dir(self._root, uid, gid, 0o755)
        ensure_dir(self._root / "pages", uid, app_group if app_group is not None else gid, 0o750)
        ensure_dir(self._root / "owners", uid, gid, 0o700)

    def _write_page(self, token: str, html: bytes) -> None:
        group = os.stat(self._root / "pages").st_gid
        write_atomic(self._root / "pages", page_name(token), html, mode=0o640, gid=group)

    def _write_index(self, user: str, shares: list[Share]) -> None:
        data = _SHARES.dump_json(shares)
        write_atomic(self._root / "owners", f"{user}.json", data, mode=0o600, gid=os.getegid())
