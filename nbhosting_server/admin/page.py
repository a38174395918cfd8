"""The admin pages' frame: the site's page style with a few rules of their own, never framed by another site."""

from __future__ import annotations

from starlette.responses import HTMLResponse

from .. import pages

#: the admin pages' few extra rules, on top of the site's page style
STYLE = """<style>
  form.stacked label { display: block; margin: .8rem 0 .2rem; font-weight: 600; }
  form.stacked input[type=text], form.stacked input[type=password] { width: 100%; box-sizing: border-box;
      padding: .45rem .6rem; font-size: 1rem; border: 1px solid #d0d7de; border-radius: 6px; }
  form.stacked button { margin-top: 1.2rem; }
  form.inline { display: inline; }
  .alert { color: #b42318; }
  table.perms { border-collapse: collapse; margin: .5rem 0; }
  table.perms td, table.perms th { border-bottom: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; }
</style>"""

#: unlike students' pages (which course platforms frame), a staff page is framed by nobody (no clickjacking),
#: posts its forms to this site only, and loads no plugin
CSP = "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"


def admin_page(title: str, body: str, *, status: int = 200, head: str = "", kind: str = "admin") -> HTMLResponse:
    """A staff page: ``body`` and ``head`` are trusted markup (escape what goes in them); not cached, not framed,
    no referrer sent to another site. ``kind``: the class of its ``<main>`` (``wide`` for the pages with tables)."""
    response = pages.page(title, body, status=status, kind=kind, head=STYLE + head)
    protect(response)
    return response


def protect(response: HTMLResponse) -> None:
    """The headers of every staff page (an error page of the admin surface too)."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    # "same-origin", not "no-referrer": under "no-referrer" a browser sends `Origin: null` with a form's POST, and the
    # origin check of every write (and of the login) refuses it; "same-origin" still sends nothing to other sites
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
