"""The few HTML pages the app serves: progress while a server starts, errors, the front page."""

from __future__ import annotations

import html
import json
from pathlib import Path
from string import Template

from starlette.responses import HTMLResponse

_PAGE = Template((Path(__file__).parent / "templates" / "page.html").read_text())


def page(title: str, body: str, *, status: int = 200, kind: str = "", head: str = "") -> HTMLResponse:
    """An HTML page; ``body`` and ``head`` are trusted markup, everything else is escaped."""
    content = _PAGE.substitute(title=html.escape(title), body=body, kind=kind, head=head)
    return HTMLResponse(content, status_code=status, headers={"Cache-Control": "no-store"})


def error_page(status: int, title: str, message: str, *, retry_url: str | None = None) -> HTMLResponse:
    """A friendly error: what happened, and what the student can do about it."""
    retry = f'<p><a class="button" href="{html.escape(retry_url)}">Try again</a></p>' if retry_url else ""
    body = (
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{retry}"
        f'<p class="muted">Error {status}. If this persists, tell your course staff.</p>'
    )
    return page(title, body, status=status, kind="error")


_PROGRESS_SCRIPT = Template("""
<script>
(function () {
  var launch = $launch, started = Date.now(), timeoutMs = $timeout_ms, status, elapsed, note, timer;
  function fail(message) {
    clearInterval(timer);
    document.querySelector("main").className = "error";
    status.innerHTML = "";
    var p = document.createElement("p"); p.textContent = message; status.appendChild(p);
    var a = document.createElement("a"); a.className = "button"; a.href = launch; a.textContent = "Try again";
    status.appendChild(a);
  }
  function busy(message, seconds) {
    // the host is busy (503): say so, and ask again once the delay it gave has passed; the start's own
    // time limit counts from then
    note.textContent = message + " Trying again in " + seconds + " s.";
    note.hidden = false;
    started = Date.now() + seconds * 1000;
    setTimeout(poll, seconds * 1000);
  }
  function poll() {
    fetch(launch + (launch.indexOf("?") < 0 ? "?" : "&") + "status=1",
          {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        return r.json().then(function (d) { return [r.status, d, r.headers.get("Retry-After")]; });
      })
      .then(function (res) {
        var d = res[1];
        if (d.state === "ready") { location.replace(d.url); return; }
        if (res[0] === 503 && d.state === "busy") { busy(d.message, Number(d.retry_after || res[2]) || 10); return; }
        note.hidden = true;
        if (res[0] >= 400) { fail(d.message || "Your notebook server could not start."); return; }
        if (Date.now() - started > timeoutMs) { fail("Your notebook server is taking too long to start."); return; }
        // 150 ms while a start is quick; then every second: a lecture's hundred pages must not load the host
        // that starts their servers
        setTimeout(poll, Date.now() - started < 3000 ? 150 : 1000);
      })
      .catch(function () {
        if (Date.now() - started > timeoutMs) { fail("The server cannot be reached."); return; }
        setTimeout(poll, 500);
      });
  }
  function start() {
    status = document.getElementById("status");
    elapsed = document.getElementById("elapsed");
    note = document.getElementById("note");
    timer = setInterval(function () {
      elapsed.textContent = Math.max(0, (Date.now() - started) / 1000).toFixed(0) + " s";
    }, 500);
    poll();
  }
  // this script sits in the page's head: the elements it uses exist once the document is parsed
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
</script>
""")

_BUSY_SCRIPT = Template("""
<script>
(function () {
  var again = $again, until = Date.now() + $wait_ms;
  function start() {
    var left = document.getElementById("left");
    setInterval(function () { left.textContent = Math.max(0, Math.ceil((until - Date.now()) / 1000)) + " s"; }, 1000);
  }
  // the launch again, exactly as it was sent (its query string holds the platform's signature)
  setTimeout(function () { location.replace(again); }, $wait_ms);
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
</script>
""")


def script_literal(value: str) -> str:
    """``value`` as a JavaScript string literal that is safe inside an HTML <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def progress_page(launch_url: str, notebook: str, course: str, timeout: float) -> HTMLResponse:
    """Shown while a student's server starts: says so, then moves on to the notebook by itself.

    ``launch_url``: the launch's path as the browser sent it (percent-encoded), which the page polls.
    """
    head = '<noscript><meta http-equiv="refresh" content="2"></noscript>' + _PROGRESS_SCRIPT.substitute(
        launch=script_literal(launch_url), timeout_ms=int((timeout + 5) * 1000)
    )
    body = (
        f"<h1>Starting your notebook…</h1>"
        f'<div id="status"><p><span class="spinner"></span>Preparing <code>{html.escape(notebook)}</code> '
        f"for course <code>{html.escape(course)}</code> in your own Jupyter server "
        f'(<span id="elapsed">0 s</span>).</p>'
        f'<p class="muted">This usually takes a couple of seconds; the notebook opens by itself.</p>'
        f'<p id="note" class="muted" hidden></p></div>'
    )
    return page("Starting your notebook…", body, head=head)


def busy_page(retry_url: str, message: str, retry_after: int) -> HTMLResponse:
    """503 with Retry-After: the host is busy now; the page launches again by itself after ``retry_after`` s.

    ``retry_url``: the launch exactly as the browser sent it, query string included.
    """
    head = f'<noscript><meta http-equiv="refresh" content="{retry_after}"></noscript>' + _BUSY_SCRIPT.substitute(
        again=script_literal(retry_url), wait_ms=retry_after * 1000
    )
    body = (
        "<h1>Notebooks are busy right now</h1>"
        f'<div id="status"><p><span class="spinner"></span>{html.escape(message)}</p>'
        f'<p class="muted">This page tries again by itself in <span id="left">{retry_after} s</span>.</p>'
        f'<p><a class="button" href="{html.escape(retry_url)}">Try again now</a></p></div>'
    )
    response = page("Notebooks are busy right now", body, status=503, head=head)
    response.headers["Retry-After"] = str(retry_after)
    return response


def front_page() -> HTMLResponse:
    """What a person sees at the root of the site."""
    body = (
        "<h1>nbhosting</h1><p>This server hosts the Jupyter notebooks of online courses: each student "
        "gets a private copy of each notebook, in a notebook server of their own.</p>"
        "<p>Open notebooks from your course's pages.</p>"
    )
    return page("nbhosting", body)


#: what a student can do with their copy of a notebook, from the course page (the ``then`` pages of a launch)
COPY_ACTIONS = (("download", "download"), ("share", "share"), ("reset", "reset…"), ("backups", "backups"))


def course_page(course: str, tracks: list[tuple[str, list[tuple[str, list[tuple[str, str, bool]]]]]]) -> HTMLResponse:
    """A course's table of contents: tracks of sections of (notebook, link, opened by this student)."""
    parts = [f"<h1>{html.escape(course)}</h1>"]
    if not tracks:
        parts.append("<p>This course has no notebook yet.</p>")
    for track, sections in tracks:
        if len(tracks) > 1 or track != course:
            parts.append(f"<h2>{html.escape(track)}</h2>")
        for section, notebooks in sections:
            parts.append(f"<h3>{html.escape(section)}</h3><ul>")
            for name, link, opened in notebooks:
                mark = ""
                if opened:  # their copy exists: what they can do with it, through the same signed launch
                    work = " · ".join(
                        f'<a href="{html.escape(link)}&amp;then={then}">{label}</a>' for then, label in COPY_ACTIONS
                    )
                    mark = (
                        f' <span class="opened" title="you have opened it">&#10003; opened</span> <small>{work}</small>'
                    )
                parts.append(f'<li><a href="{html.escape(link)}">{html.escape(name)}</a>{mark}</li>')
            parts.append("</ul>")
    return page(course, "".join(parts), kind="course")
