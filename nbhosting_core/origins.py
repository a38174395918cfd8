"""Whose origin is whose: each notebook server's own origin, who may frame it, and which requests it takes (pure).

In origin mode ``subdomain`` (the default) every server has an origin of its own, ``https://<key>.<domain>``: a
page a student serves can reach no other student's server as same-origin, nor register a service worker over
anything but its own host. In mode ``path`` every server is under the site's origin (``/<prefix>/<key>/``).

In both modes, a request that changes something (any method but GET and HEAD) or opens a websocket must come
from the server's own origin: its ``Origin`` header must name it, and its ``Sec-Fetch-Site`` (when the browser
sends one) must not say another site. Course platforms embed notebooks in iframes, but the requests a notebook
makes come from the notebook's own document, whose origin is the server's: no platform origin needs to be
allowed here (platform origins only go into ``frame-ancestors``).
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidInput
from .naming import is_key, validate_notebook_path
from .platforms import origin_of
from .settings import Settings

#: methods that read: a request with another may change what the server holds
READ_METHODS = frozenset({"GET", "HEAD"})
#: what ``Sec-Fetch-Site`` says of a request made by a page of another origin
OTHER_SITES = frozenset({"cross-site", "same-site"})


def site_origin(settings: Settings) -> str:
    """The origin of nbhosting's own pages (launches, progress, errors): that of ``public_url``."""
    origin = origin_of(settings.public_url)
    if origin is None:
        raise ValueError(f"public_url {settings.public_url!r} is not an http(s) URL")
    return origin


def server_host(settings: Settings, key: str) -> str:
    """The host name of the server ``key`` in origin mode ``subdomain``: ``<key>.<servers domain>``."""
    if not is_key(key):
        raise ValueError(f"not a server key: {key[:60]!r}")
    return f"{key}.{settings.effective_servers_domain}"


def server_origin(settings: Settings, key: str) -> str:
    """The origin the server ``key`` is served from: its own host (scheme and port of ``public_url``) in mode
    ``subdomain``, the site's origin in mode ``path``."""
    site = site_origin(settings)
    if settings.origin_mode == "path":
        return site
    parts = urllib.parse.urlsplit(site)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{server_host(settings, key)}{port}"


def key_of_host(settings: Settings, host: str) -> str | None:
    """The key of the server whose host is ``host`` (a port is ignored), or None: mode ``subdomain`` only."""
    if settings.origin_mode != "subdomain":
        return None
    name = host.strip().lower()
    if name.startswith("["):
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    key, dot, domain = name.partition(".")
    if not dot or domain != settings.effective_servers_domain or not is_key(key):
        return None
    return key


def notebook_path(settings: Settings, key: str, notebook: str, ui: str | None = None) -> str:
    """The path of ``notebook`` in the server ``key``, in ``ui`` (a course's choice), else the settings' (pure)."""
    view = "notebooks" if (ui or settings.ui) == "notebook" else "lab/tree"
    return f"/{settings.url_prefix}/{key}/{view}/{urllib.parse.quote(notebook)}"


def notebook_of_page(settings: Settings, key: str, url: str | None) -> str | None:
    """The student's notebook (``.ipynb``) whose page in the server ``key`` is ``url`` (a Notebook 7
    ``notebooks/<path>`` or JupyterLab ``lab/tree/<path>`` URL of the server's own origin), else None (pure).

    The inverse of :func:`notebook_path`, for a ``Referer``: a hint of which notebook a page was opened from, never
    a permission (whatever it names is validated as any notebook path, and acted on only by the student's click).
    """
    if not url or len(url) > 4096:
        return None
    parts = urllib.parse.urlsplit(url)
    base = f"/{settings.url_prefix}/{key}/"
    if f"{parts.scheme}://{parts.netloc}" != server_origin(settings, key) or not parts.path.startswith(base):
        return None
    rest = parts.path.removeprefix(base)
    for view in ("notebooks/", "lab/tree/"):
        if rest.startswith(view):
            path = urllib.parse.unquote(rest.removeprefix(view))
            try:
                valid = validate_notebook_path(path)
            except InvalidInput:
                return None
            return path if valid.suffix == ".ipynb" else None
    return None


def frame_ancestors(settings: Settings, platform_origins: Iterable[str]) -> str:
    """CSP ``frame-ancestors`` sources for notebooks and nbhosting's pages: who may embed them in an iframe.

    The ``frame_ancestors`` setting when set (an explicit override); else ``'self'``, the site's origin and
    every trusted platform's origins (:meth:`~nbhosting_core.platforms.Platforms.origins`), never ``*``.
    """
    if settings.frame_ancestors is not None:
        return " ".join(settings.frame_ancestors.split())
    sources = ["'self'", site_origin(settings)]
    sources += [o for o in sorted(set(platform_origins)) if o not in sources]
    return " ".join(sources)


class OriginVerdict(str, enum.Enum):
    """Why a request was let through, or refused, by :func:`check_origin`."""

    READ = "read"  # GET or HEAD, no websocket: whoever asks (the cookie decides)
    SAME_ORIGIN = "same-origin"  # a write or a websocket from the server's own origin
    NO_ORIGIN = "no-origin"  # a write or a websocket without Origin (browsers always send one)
    OPAQUE = "opaque-origin"  # Origin "null": a sandboxed frame (e.g. an HTML file under /files/), a data: URL
    OTHER_ORIGIN = "other-origin"  # Origin names another origin: another server, a course page, any site
    OTHER_SITE = "other-site"  # Origin matches, yet Sec-Fetch-Site says the request comes from another site


@dataclass(frozen=True)
class OriginDecision:
    """Whether a request may reach a notebook server, as far as where it comes from is concerned."""

    allowed: bool
    verdict: OriginVerdict


def check_origin(
    *, method: str, websocket: bool, origin: str | None, fetch_site: str | None, own_origin: str
) -> OriginDecision:
    """Decide whether a request may reach the server whose origin is ``own_origin``, from where it comes (pure).

    Reads (GET, HEAD) that open no websocket pass: a course page's iframe loads the notebook, and a read from
    another origin cannot see the answer. A write (any other method) or a websocket handshake passes only when
    its ``Origin`` is ``own_origin`` and its ``Sec-Fetch-Site`` (when sent) does not say another site.

    Args:
        method: the request's method (as ``X-Forwarded-Method`` says it).
        websocket: whether the request is a websocket handshake.
        origin: its ``Origin`` header, if any.
        fetch_site: its ``Sec-Fetch-Site`` header, if any.
        own_origin: the origin the server is served from (:func:`server_origin`).
    """
    if method.upper() in READ_METHODS and not websocket:
        return OriginDecision(True, OriginVerdict.READ)
    if origin is None or not origin.strip():
        return OriginDecision(False, OriginVerdict.NO_ORIGIN)
    if origin.strip() == "null":
        return OriginDecision(False, OriginVerdict.OPAQUE)
    if origin.strip().lower() != own_origin:  # an Origin header is exactly scheme://host[:port]
        return OriginDecision(False, OriginVerdict.OTHER_ORIGIN)
    if fetch_site is not None and fetch_site.strip().lower() in OTHER_SITES:
        return OriginDecision(False, OriginVerdict.OTHER_SITE)
    return OriginDecision(True, OriginVerdict.SAME_ORIGIN)
