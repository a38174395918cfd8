"""The statistics pages' content: a course's figures and the host's, as plots (see :mod:`.plots`) and small tables.

Pure functions from the event store's models (:mod:`nbhosting_core.eventstore`) to trusted HTML fragments, every
name in them escaped; :func:`statistics_page` wraps one in the site's page. Who may see them (staff, the course's
teachers) is the caller's to check: nothing here reads a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from html import escape

from starlette.responses import HTMLResponse

from nbhosting_core.coursestats import CourseStatistics, DayActivity, Distribution
from nbhosting_core.eventstore import HostSample

from .pages import page
from .plots import Bar, Series, bar_chart, heat_map, line_chart, number

DAY = 86400
GIB = 2**30
#: the page's own style: wider than the site's small pages, plots scale down on a narrow screen
STYLE = """<style>
  main.stats { max-width: 60rem; width: 100%; margin: 1rem; }
  .stats figure { margin: 1.2rem 0; } .stats figure svg { max-width: 100%; height: auto; }
  .stats figcaption { color: #656d76; font-size: .9rem; }
  .stats table { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
  .stats th, .stats td { text-align: right; padding: .2rem .6rem; border-bottom: 1px solid #d8dee4; }
  .stats th:first-child, .stats td:first-child { text-align: left; }
  .stats .figures { display: flex; gap: 1.5rem; flex-wrap: wrap; margin: .8rem 0; }
  .stats .figures div { font-size: .85rem; color: #656d76; } .stats .figures b { display: block; font-size: 1.4rem;
  color: #1f2328; }
</style>"""


def statistics_page(title: str, body: str) -> HTMLResponse:
    """A full page around a fragment of this module (``body``: trusted markup; ``title``: escaped)."""
    return page(title, body, kind="stats", head=STYLE)


def course_statistics_page(stats: CourseStatistics) -> str:
    """The statistics of one course, as an HTML fragment: students and notebooks per day and cumulative, the
    progress map, launch durations, failures."""
    course = escape(stats.course)
    days = stats.days
    today = days[-1] if days else None
    durations = {launch.action: launch.durations for launch in stats.launches}
    ready = durations.get("ready", Distribution())
    parts = [
        f"<h1>Statistics of <code>{course}</code></h1>",
        f'<p class="muted">{_day(stats.first_day)} to {_day(stats.last_day)} (UTC days); staff excluded '
        f"({stats.excluded_students} student id{'s' if stats.excluded_students != 1 else ''}). "
        f"Computed {_moment(stats.generated)}.</p>",
        '<div class="figures">',
        _figure("students ever", str(stats.total_students)),
        _figure("notebooks opened", str(stats.total_notebooks)),
        _figure("students today", str(today.students if today else 0)),
        _figure("median start", _seconds(ready.median)),
        _figure(f"failures in {len(days)} days", str(sum(f.count for f in stats.failures))),
        "</div>",
        "<h2>Students and notebooks</h2>",
        _plot(
            line_chart(
                f"{stats.course}: students and notebooks per day",
                [
                    Series(name="students", points=[(_x(d.day), d.students) for d in days]),
                    Series(name="notebooks", points=[(_x(d.day), d.notebooks) for d in days]),
                ],
                step=True,
                y_label="distinct, per UTC day",
            ),
            "Distinct students who opened a notebook, and distinct notebooks opened, each day.",
        ),
        _plot(
            line_chart(
                f"{stats.course}: students so far",
                [Series(name="students", points=[(_x(d.day), d.cumulative_students) for d in days])],
                step=True,
                y_label="distinct students up to each day",
            ),
            "Every student who ever opened a notebook of the course, counted from their first day.",
        ),
        _plot(
            bar_chart(
                f"{stats.course}: notebooks opened per day",
                [Bar(label=d.day.strftime("%b %d"), value=d.opens, note=f"{d.students} students") for d in days],
                y_label="opens",
            ),
            "Every click that opened a notebook (a reopened notebook counts again).",
        ),
        "<h2>Progress</h2>",
        _plot(
            heat_map(
                f"{stats.course}: who opened which notebook",
                stats.progress.students,
                stats.progress.notebooks,
                stats.progress.opened,
                more_rows=stats.progress.more_students,
                more_columns=stats.progress.more_notebooks,
            ),
            "One row per student (those who opened the most notebooks first), one column per notebook.",
        ),
        "<h2>Launches</h2>",
        _plot(
            line_chart(
                f"{stats.course}: time to a running notebook",
                [
                    _duration_series("start, median", days, "ready", "median"),
                    _duration_series("start, 90th percentile", days, "ready", "p90"),
                    _duration_series("click to answer, median", days, "open", "median"),
                ],
                y_label="seconds",
                y_format=_seconds_tick,
            ),
            "A start: from a server's start to Jupyter answering; a click: from a launch to its first answer.",
        ),
        _durations_table(stats),
        "<h2>Failures</h2>",
        _plot(
            bar_chart(
                f"{stats.course}: failures by reason",
                [Bar(label=f.reason, value=f.count) for f in stats.failures],
                y_label="failures",
                color="#D55E00",
            ),
            f"Launches that failed in the last {len(days)} days, by reason.",
        ),
    ]
    return "".join(parts)


def host_statistics_page(samples: Sequence[HostSample], *, title: str = "The host") -> str:
    """The host's figures over time, as an HTML fragment: running servers and kernels, memory, load, disk."""
    parts = [f"<h1>{escape(title)}</h1>"]
    if samples:
        last = samples[-1]
        parts.append(
            f'<p class="muted">{len(samples)} samples from {_moment(samples[0].time)} to {_moment(last.time)} '
            "(UTC).</p>"
        )

    def series(name: str, values: list[tuple[float, float | None]]) -> Series:
        return Series(name=name, points=[(t, v) for t, v in values if v is not None])

    def gib(value: int | None) -> float | None:
        return None if value is None else round(value / GIB, 2)

    parts += [
        _plot(
            line_chart(
                "Running servers and kernels",
                [
                    series("servers", [(s.time, s.running) for s in samples]),
                    series("kernels", [(s.time, s.kernels) for s in samples]),
                    series("busy kernels", [(s.time, s.busy_kernels) for s in samples]),
                ],
                y_label="count",
            ),
            "Students' servers running, and the kernels in those that answered.",
        ),
        _plot(
            line_chart(
                "Memory",
                [
                    series("students' servers", [(s.time, gib(s.memory_bytes)) for s in samples]),
                    series("host total", [(s.time, gib(s.memory_total)) for s in samples]),
                ],
                y_label="GiB",
            ),
            "Memory used by the students' servers (their sum), against the host's.",
        ),
        _plot(
            line_chart("Load", [series("load, 1 min", [(s.time, s.load1) for s in samples])], y_label="load average"),
            "The host's load average over a minute (compare with its cores).",
        ),
        _plot(
            line_chart(
                "Disk of the data",
                [
                    series("used", [(s.time, gib(s.disk_used)) for s in samples]),
                    series("size", [(s.time, gib(s.disk_total)) for s in samples]),
                ],
                y_label="GiB",
            ),
            "The file system of DATA_ROOT (students' workspaces, courses).",
        ),
    ]
    return "".join(parts)


def _plot(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _figure(label: str, value: str) -> str:
    return f"<div><b>{escape(value)}</b>{escape(label)}</div>"


def _duration_series(name: str, days: Sequence[DayActivity], kind: str, which: str) -> Series:
    points = []
    for d in days:
        dist = d.ready_durations if kind == "ready" else d.open_durations
        value = dist.median if which == "median" else dist.p90
        if value is not None:
            points.append((_x(d.day), value))
    return Series(name=name, points=points)


def _durations_table(stats: CourseStatistics) -> str:
    if not stats.launches:
        return ""
    names = {"create": "new server", "start": "server started", "replace": "server replaced", "reuse": "server reused"}
    rows = "".join(
        f"<tr><td>{escape(names.get(launch.action, 'start to answer' if launch.action == 'ready' else launch.action))}"
        f"</td><td>{launch.durations.count}</td><td>{_seconds(launch.durations.median)}</td>"
        f"<td>{_seconds(launch.durations.p90)}</td><td>{_seconds(launch.durations.max)}</td></tr>"
        for launch in stats.launches
    )
    return (
        "<table><thead><tr><th>launch</th><th>count</th><th>median</th><th>90%</th><th>longest</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _x(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _day(day: date) -> str:
    return day.strftime("%a %b %d, %Y")


def _moment(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%b %d %H:%M UTC")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s" if value < 100 else f"{value / 60:.0f} min"


def _seconds_tick(value: float) -> str:
    return f"{number(value)} s"
