"""Reading the admin pages' forms with a bound on their size, and where a login may send the browser after it."""

from __future__ import annotations

import urllib.parse

from starlette.requests import Request

from .refusals import AdminRefused

#: a form of the admin pages is at most this many bytes (a login is a few hundred)
FORM_LIMIT = 8 * 1024
#: at most this many fields in one form
MAX_FIELDS = 50
#: where a login goes when it was given nowhere (or somewhere not local)
HOME = "/admin/"


async def form_of(request: Request, limit: int = FORM_LIMIT) -> dict[str, str]:
    """The fields of the request's urlencoded form (the first value of each), read once (kept in
    ``request.state``), at most ``limit`` bytes. Raises AdminRefused (400, 413, 415)."""
    cached = getattr(request.state, "form", None)
    if isinstance(cached, dict):
        return cached
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise AdminRefused(415, "This expects a form.")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise AdminRefused(413, "This form is too large.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise AdminRefused(413, "This form is too large.")
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise AdminRefused(400, "This form cannot be read.") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    request.state.form = fields
    return fields


def safe_next(value: str | None) -> str:
    """``value`` if it is a local path of this site (``/…``, not ``//…`` nor ``/\\…``, printable, short), else
    :data:`HOME`: a login never sends the browser to another site (pure)."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or not value.isprintable()
        or not value.isascii()
        or len(value) > 2048
    ):
        return HOME
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    return value
